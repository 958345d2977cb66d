//! The authorization policy: one function decides whether a subject may take an action on an
//! object. Every RPC method, subscription, console and upload endpoint asks it, and list and
//! event filtering use the same rules. `docs/security.md` has the resulting matrix, which the
//! isolation test (`vmd/tests/isolation.rs`) reads and checks against real accounts.
//!
//! Rules, for the `user` role (admins may do everything):
//! - VMs: the owner may do everything; anyone else is told the VM does not exist.
//! - Images: a user sees and uses public sealed images and their own private ones; they may
//!   remove their own private images; importing and creating from ISOs is for admins, and
//!   so is everything on public images beyond using them.
//! - ISOs: users may list them and insert them in their own VMs; managing them is for admins.
//! - Accounts: a user sees their own and may change their own password; managing accounts
//!   is for admins. Tokens: a user manages their own.
//! - Uploads feed imports, so only admins upload; an upload is usable only by its uploader.
//! - Events: a user sees the events of their own objects and public ones.
//! - Networks: a user manages their own; admins' networks are shared: every user sees and
//!   uses them (attaches VMs), only admins change or remove them.
//! - Warm templates: like networks: a user manages their own; admins' templates are shared:
//!   every user sees them and creates clones of them, only admins remove them.

use vm_proto::types::EventKind;

use super::Subject;
use crate::store::{Audience, Viewer};

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See it (get, list, logs, follow).
    Read,
    /// Use it from an object of one's own (create a VM on an image, insert an ISO).
    Use,
    /// Run it (start, stop, reboot, pause, resume, console, VNC, media).
    Operate,
    /// Change or delete it (wipe, remove, extend, passwd, seal).
    Modify,
    /// Create one of one's own (VM, private image by publishing, token).
    Create,
    /// Bring new content in or manage for others (import, create from ISO, upload, accounts).
    Administer,
}

/// What the action is on, with the facts the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A VM and its owner.
    Vm {
        /// `users.id` of the owner.
        owner: i64,
    },
    /// A base image.
    Image {
        /// `users.id` of the owner.
        owner: i64,
        /// Whether every user may use it.
        public: bool,
        /// Whether it is sealed (ready).
        sealed: bool,
    },
    /// An ISO of the library.
    Iso,
    /// An account.
    Account {
        /// `users.id`.
        id: i64,
    },
    /// An API token or session.
    Token {
        /// `users.id` of the owner.
        owner: i64,
    },
    /// A lab network.
    Network {
        /// `users.id` of the owner.
        owner: i64,
        /// Whether every user may attach VMs to it (an admin's network).
        shared: bool,
    },
    /// A warm template.
    Template {
        /// `users.id` of the owner.
        owner: i64,
        /// Whether every user may clone it (an admin's template).
        shared: bool,
    },
    /// A staged upload.
    Upload {
        /// `users.id` of the uploader.
        owner: i64,
    },
    /// The host and the daemon.
    Host,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The caller may not know the object exists: answer `not_found`.
    Hidden,
    /// The caller sees the object but may not do this: answer `permission_denied`.
    Forbidden(&'static str),
}

/// Whether `subject` may take `action` on `object`.
pub fn authorize(subject: &Subject, action: Action, object: Object) -> Result<(), Denial> {
    if subject.is_admin() {
        return Ok(());
    }
    match object {
        Object::Vm { owner } | Object::Token { owner } | Object::Upload { owner } => {
            own(subject, owner, action, object)
        }
        Object::Image {
            owner,
            public,
            sealed,
        } => image(subject, action, owner, public && sealed),
        Object::Iso => shared(action, "ISOs are managed by admins"),
        Object::Network { owner, shared } => shared_or_own(
            subject,
            action,
            owner,
            shared,
            "shared networks are managed by admins",
        ),
        Object::Template { owner, shared } => shared_or_own(
            subject,
            action,
            owner,
            shared,
            "shared templates are managed by admins",
        ),
        Object::Account { id } => account(subject, action, id),
        Object::Host => shared(action, "this needs the admin role"),
    }
}

/// Objects that belong to one account: the owner may do everything but bring content in.
fn own(subject: &Subject, owner: i64, action: Action, object: Object) -> Result<(), Denial> {
    match (action, object) {
        (Action::Administer, Object::Upload { .. }) => Err(Denial::Forbidden(
            "uploads feed image and ISO imports, which are for admins",
        )),
        (Action::Administer, _) => Err(Denial::Forbidden("this needs the admin role")),
        _ if subject.owns(owner) => Ok(()),
        _ => Err(Denial::Hidden),
    }
}

fn image(subject: &Subject, action: Action, owner: i64, shared: bool) -> Result<(), Denial> {
    let mine = subject.owns(owner);
    match action {
        Action::Administer => Err(Denial::Forbidden(
            "importing and installing images is for admins",
        )),
        _ if !mine && !shared => Err(Denial::Hidden),
        Action::Read | Action::Use => Ok(()),
        Action::Create | Action::Modify if mine && !shared => Ok(()),
        _ => Err(Denial::Forbidden("public images are managed by admins")),
    }
}

/// A user's own network or template is theirs to manage; shared ones (an admin's) are only
/// seen and used.
fn shared_or_own(
    subject: &Subject,
    action: Action,
    owner: i64,
    shared: bool,
    why: &'static str,
) -> Result<(), Denial> {
    let mine = subject.owns(owner);
    match action {
        Action::Administer => Err(Denial::Forbidden("this needs the admin role")),
        _ if !mine && !shared => Err(Denial::Hidden),
        Action::Read | Action::Use => Ok(()),
        _ if mine && !shared => Ok(()),
        _ => Err(Denial::Forbidden(why)),
    }
}

/// Objects every user may see and use but only admins manage.
fn shared(action: Action, why: &'static str) -> Result<(), Denial> {
    match action {
        Action::Read | Action::Use => Ok(()),
        _ => Err(Denial::Forbidden(why)),
    }
}

fn account(subject: &Subject, action: Action, id: i64) -> Result<(), Denial> {
    match action {
        Action::Administer | Action::Create => {
            Err(Denial::Forbidden("managing accounts is for admins"))
        }
        _ if !subject.owns(id) => Err(Denial::Hidden),
        Action::Read | Action::Modify => Ok(()),
        _ => Err(Denial::Forbidden("managing accounts is for admins")),
    }
}

/// Whose events `subject` sees.
pub fn viewer(subject: &Subject) -> Viewer {
    match subject.is_admin() {
        true => Viewer::Admin,
        false => Viewer::User(subject.user_id),
    }
}

/// Who may see an event of `kind` about an object owned by `owner` (`public`: the image or
/// object is visible to every user).
pub fn audience(kind: EventKind, owner: Option<i64>, public: bool) -> Audience {
    use EventKind::*;
    let everyone = match kind {
        SpaceLow | SpaceOk | IsoImported | IsoRemoved => true,
        ImageImported | ImageRemoved | ImageChanged => public,
        _ => false,
    };
    Audience {
        user_id: owner,
        public: everyone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_proto::types::{AuthMethod, Role};

    fn user(id: i64) -> Subject {
        Subject {
            user_id: id,
            name: format!("u{id}"),
            role: Role::User,
            via: AuthMethod::Peer,
            peer_uid: None,
            token_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn users_act_only_on_their_own_vms_and_others_are_hidden() {
        let (ann, bob) = (user(1), user(2));
        let vm = Object::Vm { owner: 1 };
        for action in [Action::Read, Action::Operate, Action::Modify] {
            assert_eq!(authorize(&ann, action, vm), Ok(()));
            assert_eq!(authorize(&bob, action, vm), Err(Denial::Hidden));
        }
        assert_eq!(authorize(&Subject::daemon(), Action::Modify, vm), Ok(()));
    }

    #[test]
    fn images_public_private_and_unsealed() {
        let ann = user(1);
        let public = Object::Image {
            owner: 9,
            public: true,
            sealed: true,
        };
        let installing = Object::Image {
            owner: 9,
            public: true,
            sealed: false,
        };
        let mine = Object::Image {
            owner: 1,
            public: false,
            sealed: true,
        };
        let theirs = Object::Image {
            owner: 2,
            public: false,
            sealed: true,
        };
        assert_eq!(authorize(&ann, Action::Use, public), Ok(()));
        assert!(matches!(
            authorize(&ann, Action::Modify, public),
            Err(Denial::Forbidden(_))
        ));
        assert_eq!(
            authorize(&ann, Action::Read, installing),
            Err(Denial::Hidden)
        );
        assert_eq!(authorize(&ann, Action::Modify, mine), Ok(()));
        assert_eq!(authorize(&ann, Action::Create, mine), Ok(()));
        assert_eq!(authorize(&ann, Action::Read, theirs), Err(Denial::Hidden));
        assert!(matches!(
            authorize(&ann, Action::Administer, mine),
            Err(Denial::Forbidden(_))
        ));
    }

    #[test]
    fn accounts_uploads_and_events() {
        let ann = user(1);
        assert_eq!(
            authorize(&ann, Action::Read, Object::Account { id: 1 }),
            Ok(())
        );
        assert_eq!(
            authorize(&ann, Action::Read, Object::Account { id: 2 }),
            Err(Denial::Hidden)
        );
        assert!(authorize(&ann, Action::Administer, Object::Account { id: 1 }).is_err());
        assert!(authorize(&ann, Action::Administer, Object::Upload { owner: 1 }).is_err());
        assert_eq!(
            authorize(&ann, Action::Use, Object::Upload { owner: 2 }),
            Err(Denial::Hidden)
        );
        let shared = Object::Network {
            owner: 9,
            shared: true,
        };
        assert_eq!(authorize(&ann, Action::Use, shared), Ok(()));
        assert!(authorize(&ann, Action::Modify, shared).is_err());
        let theirs = Object::Network {
            owner: 2,
            shared: false,
        };
        assert_eq!(authorize(&ann, Action::Use, theirs), Err(Denial::Hidden));
        let mine = Object::Network {
            owner: 1,
            shared: false,
        };
        assert_eq!(authorize(&ann, Action::Modify, mine), Ok(()));
        let v = viewer(&ann);
        assert!(v.sees(audience(EventKind::StateChanged, Some(1), false)));
        assert!(!v.sees(audience(EventKind::StateChanged, Some(2), false)));
        assert!(v.sees(audience(EventKind::SpaceLow, None, false)));
        assert!(!v.sees(audience(EventKind::OrphanStopped, None, false)));
        assert!(!v.sees(audience(EventKind::ImageImported, Some(2), false)));
    }
}
