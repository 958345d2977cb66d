//! What people read about a base image: its OS family and description, given when it is made
//! (`image.import`, `image.create`, `image.publish`) and changed by `image.set`, which also
//! changes its visibility.
//!
//! `image.set` is authorized like `image.remove` (admins on any image, a user on their own
//! private ones); making an image public is `Create` of a public image, which only admins may.
//! Making one private admits its size against the owner's disk quota in the same transaction
//! that writes the row.

use vm_proto::types::{validate_image_description, EventKind, Image, ImageSet, OsFamily, Usage};

use super::access::allow;
use super::events::Draft;
use super::{Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::Subject;
use crate::store::{self, ImageInfo, ImageRow};

/// The OS family and description of a new image: as given (the description checked), else
/// `fallback` and none.
pub(super) fn new_image_info(
    os: Option<OsFamily>,
    description: Option<String>,
    fallback: impl FnOnce() -> OsFamily,
) -> Result<(OsFamily, String), Error> {
    let description = description.unwrap_or_default();
    validate_image_description(&description).map_err(Error::ImageDescription)?;
    Ok((os.unwrap_or_else(fallback), description))
}

impl Manager {
    /// `image.set`.
    pub async fn set_image(&self, subject: &Subject, req: ImageSet) -> Result<Image, Error> {
        if req.is_empty() {
            return Err(Error::Invalid(
                "nothing to change: give os, description, public or cloud_init".into(),
            ));
        }
        if let Some(text) = &req.description {
            validate_image_description(text).map_err(Error::ImageDescription)?;
        }
        self.image_for(subject, &req.name, Action::Modify).await?;
        let _guard = self.lock("image", &req.name, "set").await?;
        let row = self.image_for(subject, &req.name, Action::Modify).await?;
        if req.public == Some(true) && !row.public {
            let public = Object::Image {
                owner: row.owner.id,
                public: true,
                sealed: true,
            };
            allow(subject, Action::Create, public, || {
                Error::Forbidden("only admins make images public")
            })?;
        }
        let new = ImageInfo {
            os: req.os.unwrap_or(row.os),
            description: req.description.clone().unwrap_or(row.description.clone()),
            public: req.public.unwrap_or(row.public),
            cloud_init: req.cloud_init.unwrap_or(row.cloud_init),
        };
        let changes = changes(&row, &new);
        if changes.is_empty() {
            return self.get_image(subject, &req.name).await;
        }
        self.write_image_info(&row, new.clone()).await?;
        let message = changes.join(", ");
        tracing::info!(image = %req.name, user = %subject.name, changes = %message, "image changed");
        // Whoever saw it before or sees it now hears of the change.
        let draft = Draft::image(EventKind::ImageChanged, &req.name, message)
            .owned_by(&row.owner)
            .public(row.public || new.public);
        self.events.emit(draft).await?;
        self.get_image(subject, &req.name).await
    }

    /// Writes `new` on image `row`; an image made private is admitted against its owner's
    /// disk quota first, in the same transaction.
    async fn write_image_info(&self, row: &ImageRow, new: ImageInfo) -> Result<(), Error> {
        let auth = self.config.auth.clone();
        let (id, owner) = (row.id, row.owner.id);
        let adding = Usage {
            disk_bytes: row.virtual_size_bytes,
            ..Usage::default()
        };
        let made_private = row.public && !new.public;
        self.db(move |s| {
            s.with_tx(|tx| {
                if made_private {
                    super::quota::admit(tx, &auth, owner, &adding)?;
                }
                Ok(store::set_image_info(tx, id, &new)?)
            })
        })
        .await
    }
}

/// What `image.set` changes, in words for the event: `os debian → ubuntu`, `description
/// set`, `made private`.
fn changes(row: &ImageRow, new: &ImageInfo) -> Vec<String> {
    let mut out = Vec::new();
    if new.os != row.os {
        out.push(format!("os {} → {}", row.os, new.os));
    }
    if new.description != row.description {
        let what = match new.description.is_empty() {
            true => "description cleared",
            false => "description set",
        };
        out.push(what.to_string());
    }
    if new.public != row.public {
        let what = match new.public {
            true => "made public",
            false => "made private",
        };
        out.push(what.to_string());
    }
    if new.cloud_init != row.cloud_init {
        out.push(format!(
            "cloud-init {}",
            if new.cloud_init { "on" } else { "off" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Owner;

    fn row() -> ImageRow {
        ImageRow {
            id: 1,
            name: "base".into(),
            file_name: "base.qcow2".into(),
            source_format: "raw".into(),
            virtual_size_bytes: 1,
            sha256: String::new(),
            owner: Owner {
                id: 1,
                name: "root".into(),
                uid: Some(0),
            },
            public: true,
            created_at: 0,
            sealed: true,
            firmware: "bios".into(),
            os: OsFamily::Debian,
            description: String::new(),
            cloud_init: false,
        }
    }

    #[test]
    fn changes_name_what_moved() {
        let same = ImageInfo {
            os: OsFamily::Debian,
            description: String::new(),
            public: true,
            cloud_init: false,
        };
        assert!(changes(&row(), &same).is_empty());
        let all = ImageInfo {
            os: OsFamily::Ubuntu,
            description: "lab base".into(),
            public: false,
            cloud_init: true,
        };
        assert_eq!(
            changes(&row(), &all),
            [
                "os debian → ubuntu",
                "description set",
                "made private",
                "cloud-init on"
            ]
        );
    }

    #[test]
    fn new_images_take_what_is_given_or_the_fallback() {
        let guessed = new_image_info(None, None, || OsFamily::guess("win11")).expect("valid");
        assert_eq!(guessed, (OsFamily::Windows, String::new()));
        let given = new_image_info(Some(OsFamily::Alpine), Some("tiny".into()), || {
            OsFamily::Other
        });
        assert_eq!(given.expect("valid"), (OsFamily::Alpine, "tiny".into()));
        let bad = new_image_info(None, Some("a\nb".into()), || OsFamily::Other);
        assert!(matches!(bad, Err(Error::ImageDescription(m)) if m.contains("control character")));
    }
}
