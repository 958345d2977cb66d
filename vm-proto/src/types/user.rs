//! Accounts, roles, quotas, tokens and sessions.
//!
//! Identity is never a request field: on the socket the caller is the kernel's peer uid, or the
//! account of the `Authorization: Bearer` token the HTTP request carries. Requests here only
//! name the account an admin acts on.

use serde::{Deserialize, Serialize};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, on every user's objects.
    Admin,
    /// Own VMs, public images, own private images, ISOs read-only.
    User,
}

impl Role {
    /// `admin` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-user limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quota {
    /// VMs owned.
    pub max_vms: Option<u64>,
    /// VMs with a QEMU process.
    pub max_running: Option<u64>,
    /// vCPUs of the VMs with a process.
    pub max_vcpus: Option<u64>,
    /// Memory of the VMs with a process, MiB.
    pub max_memory_mib: Option<u64>,
    /// Virtual sizes of the user's overlays and private images, bytes.
    pub max_disk_bytes: Option<u64>,
}

/// What a user uses, measured like [`Quota`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// VMs owned.
    pub vms: u64,
    /// VMs with a QEMU process.
    pub running: u64,
    /// vCPUs of the VMs with a process.
    pub vcpus: u64,
    /// Memory of the VMs with a process, MiB.
    pub memory_mib: u64,
    /// Virtual sizes of the user's overlays and private images, bytes.
    pub disk_bytes: u64,
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Unique name (a login name or a DNS-label-like name).
    pub name: String,
    /// Stored role. A local account in the admin group acts as admin whatever this says
    /// (see `effective_role` in [`WhoAmI`]).
    pub role: Role,
    /// The local uid linked to the account, if any.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Whether a password is set (web login).
    pub has_password: bool,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Limits in force (per-user overrides, else the configured defaults).
    pub quota: Quota,
    /// The per-user overrides alone (`None`: the default applies).
    pub quota_overrides: Quota,
    /// Current use.
    pub usage: Usage,
    /// Names of the VMs the user owns.
    pub vms: Vec<String>,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// The kernel's peer credentials on the Unix socket.
    Peer,
    /// An API token (`token.create`).
    Token,
    /// A login session token (`auth.login`).
    Session,
    /// A one-shot console ticket (`vm.console_ticket`), good for one console or VNC attach.
    Ticket,
}

/// Answer of `auth.whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// Account name.
    pub user: String,
    /// The role the caller acts with now.
    pub role: Role,
    /// How the caller was identified.
    pub via: AuthMethod,
    /// The local uid of the connection (peer credentials), if any.
    #[serde(default)]
    pub peer_uid: Option<u32>,
    /// For token and session callers: the token's id.
    #[serde(default)]
    pub token_id: Option<u64>,
    /// For token and session callers: when the credential expires, RFC 3339 UTC.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Limits in force.
    pub quota: Quota,
    /// Current use.
    pub usage: Usage,
}

/// Parameters of `user.add`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    /// Unique account name.
    pub name: String,
    /// Make it an admin.
    #[serde(default)]
    pub admin: bool,
    /// Link a local uid: connections from that uid act as this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Initial password (web login). Never stored or logged in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A new value for one quota of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LimitUpdate {
    /// This limit.
    Value(u64),
    /// `"default"` (back to the configured default) or `"unlimited"`.
    Word(LimitWord),
}

/// The words a [`LimitUpdate`] may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LimitWord {
    /// Drop the override: the configured default applies.
    Default,
    /// No limit for this user.
    Unlimited,
}

/// Parameters of `user.set`; absent fields are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserSet {
    /// The account.
    pub name: String,
    /// New stored role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Link (or re-link) a local uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// VMs owned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vms: Option<LimitUpdate>,
    /// VMs running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<LimitUpdate>,
    /// vCPUs of running VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vcpus: Option<LimitUpdate>,
    /// Memory of running VMs, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<LimitUpdate>,
    /// Disk (virtual sizes), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_bytes: Option<LimitUpdate>,
}

/// Parameters of `user.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserRemove {
    /// The account.
    pub name: String,
    /// Also remove the user's VMs (stopping them) and private images. Without it the removal
    /// is refused (`in_use`) while the user owns VMs or private images. Either way the user's
    /// tokens go, and public images and ISOs they imported pass to the admin removing them.
    #[serde(default)]
    pub force: bool,
}

/// Answer of `user.remove`: what went with the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRemoved {
    /// The account.
    pub name: String,
    /// VMs removed.
    pub vms: Vec<String>,
    /// Private images removed.
    pub images: Vec<String>,
    /// Tokens and sessions revoked.
    pub tokens: u64,
}

/// Parameters of `user.passwd`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPasswd {
    /// The account (users may only name themselves).
    pub name: String,
    /// The new password; `None` removes it (no web login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The password now: needed when a user changes their own password with a token or a
    /// session (not over the socket's peer credentials, and not for admins), so that a stolen
    /// session cannot lock its owner out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// Least password length.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted (argon2 input bound).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// Kinds of bearer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Made with `token.create`, for scripts and services.
    Api,
    /// Made by `auth.login`, ended by `auth.logout` or its expiry.
    Session,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// Id (for `token.revoke`).
    pub id: u64,
    /// Owner.
    pub user: String,
    /// Api or session.
    pub kind: TokenKind,
    /// Label given at creation.
    #[serde(default)]
    pub name: Option<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Expiry, RFC 3339 UTC; `None`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Last use, RFC 3339 UTC (recorded at most once a minute).
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// Parameters of `token.create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// Whose token (admins only; default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Lifetime in seconds; default: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// A label (`ci`, `vmd-web`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Answer of `token.create` and `auth.login`: the secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenSecret {
    /// Send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// What was created.
    pub info: Token,
    /// The role the token's user has.
    pub role: Role,
}

/// Parameters of `auth.login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Account name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Display for Login {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "login of {}", self.user)
    }
}

/// Parameters of `vm.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VmFilter {
    /// Every user's VMs (admins only).
    #[serde(default)]
    pub all: bool,
    /// That user's VMs (admins only, or the caller's own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Label selectors, all of which must match: `key` (has the label) or `key=value`
    /// (see [`super::LabelSelector`]). Since 2.5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Debug output of the types that carry a secret: the secret is never shown.
macro_rules! redacted_debug {
    ($ty:ident, $($field:ident),*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(UserAdd, name, admin, uid);
redacted_debug!(UserPasswd, name);
redacted_debug!(Login, user);
redacted_debug!(TokenSecret, info, role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let login = Login {
            user: "ann".into(),
            password: "hunter22secret".into(),
        };
        assert!(!format!("{login:?} {login}").contains("hunter22"));
        let add = UserAdd {
            name: "ann".into(),
            admin: false,
            uid: None,
            password: Some("hunter22secret".into()),
        };
        assert!(!format!("{add:?}").contains("hunter22"));
    }

    #[test]
    fn limit_updates_take_numbers_and_words() {
        let set: UserSet = serde_json::from_str(
            r#"{"name":"a","max_vms":3,"max_disk_bytes":"unlimited","max_running":"default"}"#,
        )
        .expect("parse");
        assert_eq!(set.max_vms, Some(LimitUpdate::Value(3)));
        assert_eq!(
            set.max_disk_bytes,
            Some(LimitUpdate::Word(LimitWord::Unlimited))
        );
        assert_eq!(set.max_running, Some(LimitUpdate::Word(LimitWord::Default)));
        assert!(serde_json::from_str::<UserSet>(r#"{"name":"a","max_vms":"lots"}"#).is_err());
    }
}
