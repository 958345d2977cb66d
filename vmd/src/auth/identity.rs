//! Authentication: turns a connection's peer uid or a request's bearer token into a
//! [`Subject`]. Blocking (database and NSS lookups): call from a blocking task.
//!
//! - Peer uid 0 is always the admin account `root` (created on first contact).
//! - Another uid is the account linked to it. Without one, and with
//!   `auto_register_local_users`, an account named after the login name is created (role
//!   `user`); a name already taken by an unlinked account is never linked automatically.
//! - A local account acts as admin when its stored role is admin or the uid is in
//!   `admin_group` (checked on every request, so group changes apply at once).
//! - A bearer token acts as its account, with the same role rule; a malformed, unknown,
//!   expired or revoked token is refused, never downgraded to the peer.

use vm_proto::types::{AuthMethod, Role};

use super::{secret, Subject};
use crate::store::{self, NewUser, Store, StoreError, UserRow};

/// Identity settings from the config.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Members of this group are admins.
    pub admin_group: String,
    /// Create accounts for local users on first contact.
    pub auto_register: bool,
}

/// Why a caller could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bearer token is not valid; the reason stays in the debug log, not the answer.
    #[error("invalid or expired token")]
    BadToken(&'static str),
    /// No account for the peer uid and auto-registration is off.
    #[error("uid {0} has no vmd account")]
    NoAccount(u32),
    /// The login name is taken by an account not linked to this uid.
    #[error("an account named {name} exists but is not linked to uid {uid}")]
    NameTaken {
        /// The login name.
        name: String,
        /// The peer uid.
        uid: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The subject of a connection from `uid`.
pub fn from_peer(
    store: &Store,
    cfg: &IdentityConfig,
    uid: u32,
    now: i64,
) -> Result<Subject, AuthError> {
    let row = match store.read(|c| store::user_by_uid(c, uid))? {
        Some(row) => row,
        None => register(store, cfg, uid, now)?,
    };
    Ok(subject(row, cfg, AuthMethod::Peer, Some(uid)))
}

/// The subject of a request bearing `token` on a connection from `peer_uid`.
pub fn from_token(
    store: &Store,
    cfg: &IdentityConfig,
    token: &str,
    peer_uid: u32,
    now: i64,
) -> Result<Subject, AuthError> {
    let id = secret::token_id(token).ok_or(AuthError::BadToken("malformed"))?;
    let row = store
        .read(|c| store::token_by_id(c, id))?
        .ok_or(AuthError::BadToken("unknown id"))?;
    if !secret::matches(token, &row.digest) {
        return Err(AuthError::BadToken("digest mismatch"));
    }
    if row.expires_at.is_some_and(|t| t <= now) {
        return Err(AuthError::BadToken("expired"));
    }
    let user = store
        .read(|c| store::user_by_id(c, row.user_id))?
        .ok_or(AuthError::BadToken("account gone"))?;
    // Best effort (a failed touch must not refuse a valid token), and at most once a minute,
    // so that requests with a token do not each write to the database.
    if row.last_used_at.is_none_or(|t| t < now - 60) {
        let _ = store.with_tx(|tx| store::touch_token(tx, id, now));
    }
    let via = match row.kind {
        vm_proto::types::TokenKind::Api => AuthMethod::Token,
        vm_proto::types::TokenKind::Session => AuthMethod::Session,
    };
    let mut s = subject(user, cfg, via, Some(peer_uid));
    (s.token_id, s.expires_at) = (Some(id), row.expires_at);
    Ok(s)
}

fn subject(row: UserRow, cfg: &IdentityConfig, via: AuthMethod, peer_uid: Option<u32>) -> Subject {
    Subject {
        role: effective_role(row.role, row.uid, &cfg.admin_group),
        user_id: row.id,
        name: row.name,
        via,
        peer_uid,
        token_id: None,
        expires_at: None,
    }
}

/// The role an account acts with: admin when stored so, for uid 0, or when its linked uid
/// is in `admin_group`.
pub fn effective_role(stored: Role, uid: Option<u32>, admin_group: &str) -> Role {
    match (stored, uid) {
        (Role::Admin, _) | (_, Some(0)) => Role::Admin,
        (_, Some(uid)) if in_group(uid, admin_group) => Role::Admin,
        _ => Role::User,
    }
}

/// Whether local `uid` is a member of group `group` (primary or supplementary).
fn in_group(uid: u32, group: &str) -> bool {
    use nix::unistd::{Group, Uid, User};
    let Ok(Some(g)) = Group::from_name(group) else {
        return false;
    };
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.gid == g.gid || g.mem.contains(&u.name),
        _ => false,
    }
}

/// Creates the account of `uid` (root always; others with auto-registration).
fn register(store: &Store, cfg: &IdentityConfig, uid: u32, now: i64) -> Result<UserRow, AuthError> {
    if uid != 0 && !cfg.auto_register {
        return Err(AuthError::NoAccount(uid));
    }
    let name = login_name(uid);
    let new = NewUser {
        name: name.clone(),
        role: if uid == 0 { Role::Admin } else { Role::User },
        uid: Some(uid),
        password: None,
        created_at: now,
    };
    let row = store.with_tx(|tx| {
        // Another connection of the same uid may have registered it meanwhile.
        if let Some(row) = store::user_by_uid(tx, uid)? {
            return Ok(row);
        }
        if store::user_by_name(tx, &name)?.is_some() {
            return Err(AuthError::NameTaken {
                name: name.clone(),
                uid,
            });
        }
        let id = store::insert_user(tx, &new)?;
        store::user_by_id(tx, id)?.ok_or(AuthError::NoAccount(uid))
    })?;
    tracing::info!(user = %row.name, uid, "account registered for a local user");
    Ok(row)
}

/// The account name for `uid`: its login name when valid, else `uid-N`.
pub fn login_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .filter(|n| vm_proto::names::validate_account_name(n).is_ok())
        .unwrap_or_else(|| format!("uid-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(auto_register: bool) -> IdentityConfig {
        IdentityConfig {
            admin_group: "vmd-admin-test-none".into(),
            auto_register,
        }
    }

    #[test]
    fn root_is_admin_and_others_register_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let root = from_peer(&store, &cfg(false), 0, 1).expect("root");
        assert_eq!((root.name.as_str(), root.role), ("root", Role::Admin));
        assert!(matches!(
            from_peer(&store, &cfg(false), 4242, 1),
            Err(AuthError::NoAccount(4242))
        ));
        let a = from_peer(&store, &cfg(true), 4242, 1).expect("registered");
        let b = from_peer(&store, &cfg(true), 4242, 2).expect("again");
        assert_eq!((a.user_id, a.role), (b.user_id, Role::User));
    }

    #[test]
    fn tokens_are_checked_never_downgraded() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let root = from_peer(&store, &cfg(false), 0, 1).expect("root");
        let hex = secret::random_hex().expect("rand");
        let id = store
            .with_tx(|tx| {
                store::insert_token(
                    tx,
                    &store::NewToken {
                        user_id: root.user_id,
                        kind: vm_proto::types::TokenKind::Api,
                        name: None,
                        digest: vec![],
                        created_at: 1,
                        expires_at: Some(100),
                        parent_id: None,
                    },
                )
            })
            .expect("insert");
        let made = secret::token_for(id, &hex);
        store
            .with_tx(|tx| -> Result<(), StoreError> {
                tx.execute("UPDATE tokens SET digest = ?1", [&made.digest])?;
                Ok(())
            })
            .expect("digest");
        let s = from_token(&store, &cfg(false), &made.token, 1000, 50).expect("valid");
        assert_eq!(
            (s.name.as_str(), s.via, s.token_id),
            ("root", AuthMethod::Token, Some(id))
        );
        assert!(matches!(
            from_token(&store, &cfg(false), &made.token, 1000, 100),
            Err(AuthError::BadToken("expired"))
        ));
        let forged = secret::token_for(id, &secret::random_hex().expect("rand"));
        assert!(from_token(&store, &cfg(false), &forged.token, 1000, 50).is_err());
        assert!(from_token(&store, &cfg(false), "garbage", 1000, 50).is_err());
    }
}
