//! Base image operations: import from an upload, list, get, remove (`image.set` is in
//! `image_set`).

use vm_proto::names::validate_name;
use vm_proto::types::{EventKind, Image, ImageImport, OsFamily, Usage};

use super::access::image_object;
use super::events::Draft;
use super::image_set::new_image_info;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::{self, Action};
use crate::auth::Subject;
use crate::storage::{self, PreparedBase};
use crate::store::{self, ImageRow, NewImage, StoreError};

impl Manager {
    /// `image.import`: converts the caller's upload into a read-only base named `req.name`.
    pub async fn import_image(&self, subject: &Subject, req: ImageImport) -> Result<Image, Error> {
        validate_name("image", &req.name).map_err(Error::Invalid)?;
        self.host_allows(subject, Action::Administer)?;
        let (os, description) =
            new_image_info(req.os, req.description, || OsFamily::guess(&req.name))?;
        let _guard = self.lock("image", &req.name, "import").await?;
        self.check_space_floor("import an image").await?;
        if self.find_image(&req.name).await?.is_some() {
            return Err(Error::ImageExists(req.name));
        }
        let upload = self
            .uploads
            .take(&req.upload_id, subject.user_id)
            .ok_or(Error::UploadNotFound(req.upload_id))?;
        let prepared = self
            .storage
            .prepare_base(&upload.path, &req.name, req.cloud_init.is_none())
            .await;
        storage::remove_quietly(&upload.path);
        let prepared = prepared.map_err(|source| Error::Import {
            name: req.name.clone(),
            source,
        })?;
        // A sparse upload's digest was being computed meanwhile.
        let sha256 = upload_digest(&upload).await?;
        let row = NewImage {
            id: 0,
            name: req.name.clone(),
            file_name: format!("{}.qcow2", req.name),
            source_format: prepared.source_format.as_str().into(),
            virtual_size_bytes: prepared.virtual_size_bytes,
            sha256,
            owner: subject.owner(),
            public: true,
            created_at: now_secs(),
            sealed: true,
            firmware: "bios".into(),
            os,
            description,
            cloud_init: req.cloud_init.or(prepared.cloud_init).unwrap_or(false),
        };
        self.commit_image(row, prepared).await?;
        tracing::info!(image = %req.name, user = %subject.name, size_bytes = upload.size_bytes, "image imported");
        let msg = format!("imported ({} bytes uploaded)", upload.size_bytes);
        self.events
            .emit(Draft::image(EventKind::ImageImported, &req.name, msg))
            .await?;
        self.image(&req.name).await
    }

    pub(super) async fn commit_image(
        &self,
        row: NewImage,
        prepared: PreparedBase,
    ) -> Result<(), Error> {
        let final_path = self.storage.image_path(&row.file_name);
        let tmp = prepared.tmp_path.clone();
        let auth = self.config.auth.clone();
        // Public images count against nobody's disk quota.
        let adding = Usage {
            disk_bytes: row.virtual_size_bytes,
            ..Usage::default()
        };
        let result = self
            .db(move |s| {
                s.with_tx(|tx| {
                    if !row.public {
                        super::quota::admit(tx, &auth, row.owner.id, &adding)?;
                    }
                    store::insert_image(tx, &row)?;
                    storage::rename(&tmp, &final_path).map_err(Error::from)
                })
            })
            .await;
        if result.is_err() {
            storage::remove_quietly(&prepared.tmp_path);
        }
        result
    }

    /// `image.list`: the images the caller may see.
    pub async fn list_images(&self, subject: &Subject) -> Result<Vec<Image>, Error> {
        let rows = self
            .db(|s| {
                Ok(s.read(|c| {
                    store::list_images(c)?
                        .into_iter()
                        .map(|r| Ok((store::image_users(c, r.id)?, r)))
                        .collect::<Result<Vec<_>, StoreError>>()
                })?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, row)| policy::authorize(subject, Action::Read, image_object(row)).is_ok())
            .map(|(users, row)| self.image_view(subject, row, users))
            .collect())
    }

    /// `image.get`.
    pub async fn get_image(&self, subject: &Subject, name: &str) -> Result<Image, Error> {
        self.image_for(subject, name, Action::Read).await?;
        let mut image = self.image(name).await?;
        if !subject.is_admin() {
            // Other users' VM names are theirs to know.
            image.used_by.clear();
        }
        Ok(image)
    }

    /// The image called `name` (internal use: the caller was authorized).
    pub(super) async fn image(&self, name: &str) -> Result<Image, Error> {
        let key = name.to_string();
        let found = self
            .db(move |s| {
                Ok(s.read(|c| match store::get_image(c, &key)? {
                    Some(r) => Ok(Some((store::image_users(c, r.id)?, r))),
                    None => Ok(None),
                })?)
            })
            .await?;
        let (users, row) = found.ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
        Ok(self.image_view(&Subject::daemon(), row, users))
    }

    /// `image.remove`: refused while VMs use the image.
    pub async fn remove_image(&self, subject: &Subject, name: &str) -> Result<(), Error> {
        let _guard = self.lock("image", name, "remove").await?;
        let row = self.image_for(subject, name, Action::Modify).await?;
        let (owner, public) = (row.owner.clone(), row.public);
        let path = self.storage.image_path(&row.file_name);
        let trash = self
            .storage
            .hidden_path(self.storage.images_dir(), "trash", name);
        let (id, image_name, trash2) = (row.id, row.name.clone(), trash.clone());
        self.db(move |s| {
            remove_with_file(s, &path, &trash2, |tx| {
                let users = store::image_users(tx, id)?;
                if !users.is_empty() {
                    return Err(Error::ImageInUse {
                        name: image_name,
                        users,
                    });
                }
                Ok(store::delete_image(tx, id)?)
            })
        })
        .await?;
        storage::remove_quietly(&trash);
        tracing::info!(image = %name, "image removed");
        self.events
            .emit(
                Draft::image(EventKind::ImageRemoved, name, "removed")
                    .owned_by(&owner)
                    .public(public),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn find_image(&self, name: &str) -> Result<Option<ImageRow>, Error> {
        let name = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::get_image(c, &name))?))
            .await
    }

    fn image_view(&self, subject: &Subject, row: ImageRow, mut used_by: Vec<String>) -> Image {
        if !subject.is_admin() {
            // Other users' VM names are theirs to know.
            used_by.clear();
        }
        // Until it is sealed, the disk is the install VM's, in overlays/.
        let path = match row.sealed {
            true => self.storage.image_path(&row.file_name),
            false => self.storage.overlay_path(&row.file_name),
        };
        Image {
            name: row.name,
            format: "qcow2".into(),
            source_format: row.source_format,
            virtual_size_bytes: row.virtual_size_bytes,
            disk_usage_bytes: storage::disk_usage(&path),
            sha256: row.sha256,
            owner: row.owner.name,
            public: row.public,
            created_at: rfc3339(row.created_at),
            used_by,
            path: path.display().to_string(),
            sealed: row.sealed,
            firmware: vm_proto::types::Firmware::parse(&row.firmware).unwrap_or_default(),
            os: row.os,
            description: row.description,
            cloud_init: row.cloud_init,
        }
    }
}

/// The SHA-256 of a staged upload, waiting for it when it is still being computed.
pub(super) async fn upload_digest(upload: &super::uploads::StagedUpload) -> Result<String, Error> {
    upload.sha256.clone().wait().await.map_err(|e| {
        Error::Storage(storage::StorageError::Io {
            op: "hash",
            path: upload.path.display().to_string(),
            source: std::io::Error::other(e),
        })
    })
}

/// Runs `delete` and moves `path` aside to `trash` in one transaction. If the commit fails
/// after the move (a full disk), the file is moved back: a failed removal changes nothing.
pub(super) fn remove_with_file(
    store: &crate::store::Store,
    path: &std::path::Path,
    trash: &std::path::Path,
    delete: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let result = store.with_tx(|tx| {
        delete(tx)?;
        move_aside(path, trash)
    });
    if result.is_err() && trash.exists() {
        if let Err(err) = std::fs::rename(trash, path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot move a file back after a failed removal");
        }
    }
    result
}

/// Renames `path` to `trash` inside a transaction; a file already missing is not an error
/// (the row is being dropped to repair a reported inconsistency).
pub(super) fn move_aside(path: &std::path::Path, trash: &std::path::Path) -> Result<(), Error> {
    match std::fs::rename(path, trash) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|source| {
            Error::Storage(storage::StorageError::Io {
                op: "move aside",
                path: path.display().to_string(),
                source,
            })
        }),
    }
}
