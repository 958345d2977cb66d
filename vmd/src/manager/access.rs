//! Authorization inside the manager: every operation asks [`policy::authorize`] about the
//! object it found, so the decision is taken on the row the operation then works on.
//! An object the caller may not see is reported exactly like a missing one.

use crate::auth::policy::{self, Action, Denial, Object};
use crate::auth::Subject;
use crate::store::{ImageRow, IsoRow, VmRow};

use super::locks::NameGuard;
use super::{Error, Manager};

/// `Ok` if `subject` may take `action` on `object`; `hidden` is the not-found error to give
/// when the caller may not know the object exists.
pub(super) fn allow(
    subject: &Subject,
    action: Action,
    object: Object,
    hidden: impl FnOnce() -> Error,
) -> Result<(), Error> {
    policy::authorize(subject, action, object).map_err(|denial| match denial {
        Denial::Hidden => hidden(),
        Denial::Forbidden(why) => Error::Forbidden(why),
    })
}

/// The policy's view of a VM row.
pub(super) fn vm_object(row: &VmRow) -> Object {
    Object::Vm {
        owner: row.owner.id,
    }
}

/// The policy's view of an image row.
pub(super) fn image_object(row: &ImageRow) -> Object {
    Object::Image {
        owner: row.owner.id,
        public: row.public,
        sealed: row.sealed,
    }
}

impl Manager {
    /// VM `name` if `subject` may take `action` on it.
    pub(super) async fn vm_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<VmRow, Error> {
        let row = self.find_vm(name).await?;
        let row = row.ok_or_else(|| Error::VmNotFound(name.into()))?;
        allow(subject, action, vm_object(&row), || {
            Error::VmNotFound(name.into())
        })?;
        Ok(row)
    }

    /// Locks VM `name` for `operation` once `subject` may take `action` on it, and checks
    /// again under the lock (the name may have changed hands while the lock was awaited). A
    /// VM the caller may not see is not found without its lock being touched, so a refusal
    /// never tells what its owner is doing.
    pub(super) async fn lock_vm_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
        operation: &'static str,
    ) -> Result<(NameGuard, VmRow), Error> {
        self.vm_for(subject, name, action).await?;
        let guard = self.lock("vm", name, operation).await?;
        let row = self.vm_for(subject, name, action).await?;
        Ok((guard, row))
    }

    /// Image `name` if `subject` may take `action` on it.
    pub(super) async fn image_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<ImageRow, Error> {
        let row = self.find_image(name).await?;
        let row = row.ok_or_else(|| Error::ImageNotFound(name.into()))?;
        allow(subject, action, image_object(&row), || {
            Error::ImageNotFound(name.into())
        })?;
        Ok(row)
    }

    /// ISO `name` if `subject` may take `action` on it.
    pub(super) async fn iso_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<IsoRow, Error> {
        let row = self.find_iso(name).await?;
        let row = row.ok_or_else(|| Error::IsoNotFound(name.into()))?;
        allow(subject, action, Object::Iso, || {
            Error::IsoNotFound(name.into())
        })?;
        Ok(row)
    }

    /// `Ok` if `subject` may upload (uploads feed imports, which are for admins).
    pub fn may_upload(&self, subject: &Subject) -> Result<(), Error> {
        let own = Object::Upload {
            owner: subject.user_id,
        };
        allow(subject, Action::Administer, own, || {
            Error::Forbidden("uploads are for admins")
        })
    }

    /// `Ok` if `subject` may take `action` on the host as a whole (admin operations).
    pub(super) fn host_allows(&self, subject: &Subject, action: Action) -> Result<(), Error> {
        allow(subject, action, Object::Host, || {
            Error::Forbidden("this needs the admin role")
        })
    }
}
