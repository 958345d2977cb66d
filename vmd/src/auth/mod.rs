//! Who is calling and what they may do: the one place vmd decides.
//!
//! - [`Subject`]: the authenticated caller of a request (an account, its role, how it was
//!   identified). Built per request from the kernel's peer credentials or a bearer token
//!   ([`identity`]), never from request fields.
//! - [`policy`]: the one authorization function, `authorize(subject, action, object)`, used by
//!   every method, subscription, console and upload, and by list and event filtering.
//! - [`secret`]: token secrets (SHA-256 digests, constant-time comparison) and passwords
//!   (argon2id PHC strings).
//! - [`throttle`]: failed-login rate limiting per account name.
//! - [`actor`]: the account on whose behalf the current task acts, for event records.

pub mod actor;
pub mod identity;
pub mod policy;
pub mod secret;
pub mod throttle;

use vm_proto::types::{AuthMethod, Role};

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `users.id`.
    pub user_id: i64,
    /// Account name.
    pub name: String,
    /// The role in force for this request.
    pub role: Role,
    /// How the caller was identified.
    pub via: AuthMethod,
    /// The connection's peer uid.
    pub peer_uid: Option<u32>,
    /// For bearer callers: the token id.
    pub token_id: Option<i64>,
    /// For bearer callers: when the token expires, unix seconds.
    pub expires_at: Option<i64>,
}

impl Subject {
    /// Whether the caller acts as an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether `user_id` is the caller's own account.
    pub fn owns(&self, user_id: i64) -> bool {
        self.user_id == user_id
    }

    /// vmd itself, acting on its own (expiry, clean-up): an admin with no account. Events it
    /// causes carry no actor.
    pub fn daemon() -> Subject {
        Subject {
            user_id: 0,
            name: "vmd".into(),
            role: Role::Admin,
            via: AuthMethod::Peer,
            peer_uid: None,
            token_id: None,
            expires_at: None,
        }
    }

    /// The caller as the owner of what it creates.
    pub fn owner(&self) -> crate::store::Owner {
        crate::store::Owner {
            id: self.user_id,
            name: self.name.clone(),
            uid: self.peer_uid,
        }
    }

    /// Whether this is [`Subject::daemon`].
    pub fn is_daemon(&self) -> bool {
        self.user_id == 0
    }
}
