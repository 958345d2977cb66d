//! Credentials: API tokens (`token.create/list/revoke`) and login sessions
//! (`auth.login/logout/whoami`). Secrets are shown once and stored as SHA-256 digests.
//!
//! Failed logins are throttled per account name ([`crate::auth::throttle`]) and logged with
//! the name only. A session is a token of kind `session` that expires after
//! `session_ttl_secs`; logging out deletes it, which ends the VMs tied to it.

use std::time::Instant;

use vm_proto::types::{
    AuthMethod, Login, Token, TokenCreate, TokenKind, TokenSecret, WhoAmI, TTL_SECS_MAX,
};

use super::access::allow;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::{secret, Subject};
use crate::store::{self, NewToken, TokenRow, UserRow};

impl Manager {
    /// `token.create`: for the caller, or (admins) for any account.
    pub async fn create_token(
        &self,
        subject: &Subject,
        req: TokenCreate,
    ) -> Result<TokenSecret, Error> {
        let user = match &req.user {
            Some(name) => self.account(name).await?,
            None => self.account(&subject.name).await?,
        };
        allow(
            subject,
            Action::Create,
            Object::Token { owner: user.id },
            || Error::AccountNotFound(user.name.clone()),
        )?;
        if let Some(name) = &req.name {
            vm_proto::names::validate_name("token", name).map_err(Error::Invalid)?;
        }
        let ttl = req.ttl_secs.map(check_ttl).transpose()?;
        // A token made with a bearer credential lives no longer than that credential, so a
        // stolen session cannot mint a token that outlives its logout.
        let ttl = match (subject.expires_at, ttl) {
            (Some(end), ttl) => {
                let left = (end - now_secs()).max(1) as u64;
                Some(ttl.map_or(left, |t| t.min(left)))
            }
            (None, ttl) => ttl,
        };
        // It also ends with the credential it was made with (logout, revoke, password change).
        let parent = subject.token_id;
        let made = self
            .issue(&user, TokenKind::Api, req.name, ttl, parent)
            .await?;
        tracing::info!(user = %user.name, token = made.info.id, by = %subject.name, "token created");
        Ok(made)
    }

    /// `token.list`: the caller's tokens (admins: everyone's).
    pub async fn list_tokens(&self, subject: &Subject) -> Result<Vec<Token>, Error> {
        let only = (!subject.is_admin()).then_some(subject.user_id);
        let rows = self
            .db(move |s| Ok(s.read(|c| store::list_tokens(c, only))?))
            .await?;
        Ok(rows.into_iter().map(token_view).collect())
    }

    /// `token.revoke`.
    pub async fn revoke_token(&self, subject: &Subject, id: u64) -> Result<(), Error> {
        let id = i64::try_from(id).map_err(|_| Error::TokenNotFound(i64::MAX))?;
        let row = self
            .db(move |s| Ok(s.read(|c| store::token_by_id(c, id))?))
            .await?;
        let row = row.ok_or(Error::TokenNotFound(id))?;
        allow(
            subject,
            Action::Modify,
            Object::Token { owner: row.user_id },
            || Error::TokenNotFound(id),
        )?;
        self.db(move |s| Ok(s.with_tx(|tx| store::delete_token(tx, id))?))
            .await?;
        tracing::info!(user = %row.user_name, token = id, by = %subject.name, "token revoked");
        self.expiry_changed();
        Ok(())
    }

    /// `auth.login`: checks the password and opens a session.
    pub async fn login(&self, req: Login) -> Result<TokenSecret, Error> {
        let refused = || Error::Unauthenticated("wrong user name or password".into());
        if vm_proto::names::validate_account_name(&req.user).is_err() {
            return Err(refused());
        }
        if let Err(wait) = self.throttle.check(&req.user, Instant::now()) {
            if let Some(suppressed) = self
                .login_log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(Instant::now())
            {
                tracing::warn!(user = %req.user, retry_secs = wait.as_secs(), suppressed, "login refused: too many failures");
            }
            return Err(Error::Unauthenticated(format!(
                "too many failed logins for {}; retry in {} s",
                req.user,
                wait.as_secs().max(1)
            )));
        }
        let name = req.user.clone();
        let row = self
            .db(move |s| Ok(s.read(|c| store::user_by_name(c, &name))?))
            .await?;
        let stored = row.as_ref().and_then(|r| r.password.clone());
        let password = req.password;
        let ok = self
            .argon(move || secret::verify_password(&password, stored.as_deref()))
            .await?;
        let Some(user) = row.filter(|_| ok) else {
            let lock = self.throttle.failed(&req.user, Instant::now());
            tracing::warn!(user = %req.user, locked_secs = lock.map(|d| d.as_secs()), "login failed");
            return Err(refused());
        };
        self.throttle.succeeded(&user.name);
        let ttl = self.config.auth.session_ttl_secs;
        let made = self
            .issue(&user, TokenKind::Session, None, Some(ttl), None)
            .await?;
        tracing::info!(user = %user.name, session = made.info.id, "logged in");
        Ok(made)
    }

    /// `auth.logout`: ends the caller's session; VMs tied to it expire.
    pub async fn logout(&self, subject: &Subject) -> Result<(), Error> {
        let Some(id) = subject
            .token_id
            .filter(|_| subject.via == AuthMethod::Session)
        else {
            return Err(Error::Invalid("not logged in with a session token".into()));
        };
        self.db(move |s| Ok(s.with_tx(|tx| store::delete_token(tx, id))?))
            .await?;
        tracing::info!(user = %subject.name, session = id, "logged out");
        self.expiry_changed();
        Ok(())
    }

    /// The caller as it stands now: a WebSocket keeps the identity of its upgrade request, so
    /// each call checks again that the account still exists, that its token was not revoked,
    /// logged out or expired since, and takes the role in force now (demotions and admin
    /// group changes apply to open connections at once).
    pub async fn refresh(&self, subject: &Subject) -> Result<Subject, Error> {
        if subject.is_daemon() {
            return Ok(subject.clone());
        }
        let (user_id, token_id) = (subject.user_id, subject.token_id);
        let (user, token) = self
            .db(move |s| {
                Ok(s.read(|c| {
                    let token = token_id.map(|id| store::token_by_id(c, id)).transpose()?;
                    Ok::<_, store::StoreError>((store::user_by_id(c, user_id)?, token))
                })?)
            })
            .await?;
        let gone = || Error::Unauthenticated("invalid or expired token".into());
        let user = user.ok_or_else(gone)?;
        match token {
            Some(Some(t)) if t.expires_at.is_some_and(|e| e <= now_secs()) => return Err(gone()),
            Some(None) => return Err(gone()),
            _ => {}
        }
        let admin_group = &self.config.auth.identity.admin_group;
        let role = crate::auth::identity::effective_role(user.role, user.uid, admin_group);
        Ok(Subject {
            role,
            ..subject.clone()
        })
    }

    /// `auth.whoami`.
    pub async fn whoami(&self, subject: &Subject) -> Result<WhoAmI, Error> {
        let user = self.user_view(self.account(&subject.name).await?).await?;
        Ok(WhoAmI {
            user: subject.name.clone(),
            role: subject.role,
            via: subject.via,
            peer_uid: subject.peer_uid,
            token_id: subject.token_id.map(|id| id as u64),
            expires_at: subject.expires_at.map(rfc3339),
            quota: user.quota,
            usage: user.usage,
        })
    }

    /// Stores a new token for `user` and returns its secret.
    async fn issue(
        &self,
        user: &UserRow,
        kind: TokenKind,
        name: Option<String>,
        ttl_secs: Option<u64>,
        parent_id: Option<i64>,
    ) -> Result<TokenSecret, Error> {
        let hex =
            secret::random_hex().map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let now = now_secs();
        let new = NewToken {
            user_id: user.id,
            kind,
            name,
            digest: Vec::new(),
            created_at: now,
            expires_at: ttl_secs.map(|t| now.saturating_add(t as i64)),
            parent_id,
        };
        let (row, token) = self
            .db(move |s| {
                s.with_tx(|tx| {
                    make_room(tx, new.user_id, new.kind)?;
                    let id = store::insert_token(tx, &new)?;
                    let made = secret::token_for(id, &hex);
                    tx.execute(
                        "UPDATE tokens SET digest = ?2 WHERE id = ?1",
                        rusqlite::params![id, made.digest],
                    )
                    .map_err(store::StoreError::from)?;
                    let row = store::token_by_id(tx, id)?.ok_or(Error::TokenNotFound(id))?;
                    Ok((row, made.token))
                })
            })
            .await?;
        let role = crate::auth::identity::effective_role(
            user.role,
            user.uid,
            &self.config.auth.identity.admin_group,
        );
        Ok(TokenSecret {
            token,
            info: token_view(row),
            role,
        })
    }
}

/// Most API tokens one account may hold.
const MAX_API_TOKENS: u64 = 100;
/// Most sessions one account may hold; a login beyond it ends the oldest.
const MAX_SESSIONS: u64 = 20;

/// Inside the issuing transaction: an account holds a bounded number of credentials.
fn make_room(tx: &rusqlite::Connection, user_id: i64, kind: TokenKind) -> Result<(), Error> {
    let held = store::count_tokens(tx, user_id, kind)?;
    match kind {
        TokenKind::Api if held >= MAX_API_TOKENS => Err(Error::Invalid(format!(
            "the account holds {held} API tokens, the most allowed; revoke some (vmctl token ls, token revoke)"
        ))),
        TokenKind::Session if held >= MAX_SESSIONS => {
            let oldest = store::list_tokens(tx, Some(user_id))?
                .into_iter()
                .filter(|t| t.kind == TokenKind::Session)
                .min_by_key(|t| t.id);
            if let Some(t) = oldest {
                store::delete_token(tx, t.id)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A lifetime within bounds.
pub(super) fn check_ttl(secs: u64) -> Result<u64, Error> {
    match secs {
        0 => Err(Error::Invalid(
            "a lifetime must be at least 1 second".into(),
        )),
        s if s > TTL_SECS_MAX => Err(Error::Invalid(format!(
            "a lifetime may be at most {TTL_SECS_MAX} s (a year)"
        ))),
        s => Ok(s),
    }
}

fn token_view(row: TokenRow) -> Token {
    Token {
        id: row.id as u64,
        user: row.user_name,
        kind: row.kind,
        name: row.name,
        created_at: rfc3339(row.created_at),
        expires_at: row.expires_at.map(rfc3339),
        last_used_at: row.last_used_at.map(rfc3339),
    }
}
