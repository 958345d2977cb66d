//! Accounts: `user.add/list/get/remove/passwd/set`, and the quota view of an account.
//!
//! Account management is for admins; a user may read their own account and change their own
//! password. Passwords are hashed (argon2id) on a blocking thread before the transaction;
//! a password change ends the account's sessions.

use vm_proto::names::validate_account_name;
use vm_proto::types::{
    EventKind, LimitUpdate, LimitWord, Role, User, UserAdd, UserPasswd, UserRemove, UserRemoved,
    UserSet,
};

use super::access::allow;
use super::events::Draft;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::{secret, Subject};
use crate::store::{self, Limit, NewUser, UserRow};

impl Manager {
    /// `user.add`.
    pub async fn add_user(&self, subject: &Subject, req: UserAdd) -> Result<User, Error> {
        admin_only(subject)?;
        validate_account_name(&req.name).map_err(Error::Invalid)?;
        let password = self.hash(req.password).await?;
        let new = NewUser {
            name: req.name.clone(),
            role: if req.admin { Role::Admin } else { Role::User },
            uid: req.uid,
            password,
            created_at: now_secs(),
        };
        let row = self
            .db(move |s| {
                s.with_tx(|tx| {
                    check_free(tx, &new.name, new.uid, None)?;
                    let id = store::insert_user(tx, &new)?;
                    store::user_by_id(tx, id)?
                        .ok_or_else(|| Error::AccountNotFound(new.name.clone()))
                })
            })
            .await?;
        tracing::info!(user = %row.name, role = %row.role, uid = ?row.uid, by = %subject.name, "account added");
        self.user_event(EventKind::UserAdded, &row, format!("added as {}", row.role))
            .await?;
        self.user_view(row).await
    }

    /// `user.list`: every account for admins, the caller's own otherwise.
    pub async fn list_users(&self, subject: &Subject) -> Result<Vec<User>, Error> {
        let rows = self.db(|s| Ok(s.read(store::list_users)?)).await?;
        let mut users = Vec::new();
        for row in rows {
            if allow(
                subject,
                Action::Read,
                Object::Account { id: row.id },
                || Error::AccountNotFound(String::new()),
            )
            .is_ok()
            {
                users.push(self.user_view(row).await?);
            }
        }
        Ok(users)
    }

    /// `user.get`.
    pub async fn get_user(&self, subject: &Subject, name: &str) -> Result<User, Error> {
        let row = self.account_for(subject, name, Action::Read).await?;
        self.user_view(row).await
    }

    /// `user.passwd`: sets or clears a password and ends the account's sessions.
    pub async fn set_password(&self, subject: &Subject, req: UserPasswd) -> Result<(), Error> {
        let mut row = self.account_for(subject, &req.name, Action::Modify).await?;
        self.check_current_password(subject, &row, req.current_password)
            .await?;
        row.password = self.hash(req.password).await?;
        let ended = self
            .db(move |s| {
                s.with_tx(|tx| {
                    store::update_user(tx, &row)?;
                    Ok(store::delete_tokens_of(
                        tx,
                        row.id,
                        Some(vm_proto::types::TokenKind::Session),
                    )?)
                })
            })
            .await?;
        tracing::info!(user = %req.name, by = %subject.name, sessions_ended = ended, "password changed");
        if ended > 0 {
            // VMs tied to those sessions end now.
            self.expiry_changed();
        }
        Ok(())
    }

    /// `user.set`: role, uid link and quota overrides.
    pub async fn set_user(&self, subject: &Subject, req: UserSet) -> Result<User, Error> {
        admin_only(subject)?;
        let mut row = self
            .account_for(subject, &req.name, Action::Administer)
            .await?;
        if req.uid.is_some() && (row.uid == Some(0) || req.uid == Some(0)) {
            return Err(Error::Invalid(
                "uid 0 belongs to the root account; it cannot be moved".into(),
            ));
        }
        row.role = req.role.unwrap_or(row.role);
        row.uid = req.uid.or(row.uid);
        let l = &mut row.limits;
        for (slot, update) in [
            (&mut l.vms, req.max_vms),
            (&mut l.running, req.max_running),
            (&mut l.vcpus, req.max_vcpus),
            (&mut l.memory_mib, req.max_memory_mib),
            (&mut l.disk_bytes, req.max_disk_bytes),
        ] {
            if let Some(update) = update {
                *slot = limit(update);
            }
        }
        let new = row.clone();
        self.db(move |s| {
            s.with_tx(|tx| {
                check_free(tx, &new.name, new.uid, Some(new.id))?;
                Ok(store::update_user(tx, &new)?)
            })
        })
        .await?;
        tracing::info!(user = %row.name, role = %row.role, by = %subject.name, "account changed");
        self.user_event(
            EventKind::UserChanged,
            &row,
            "role, uid or quotas changed".into(),
        )
        .await?;
        self.user_view(row).await
    }

    /// `user.remove`: refused while the account owns VMs or images unless `force`, which
    /// removes them first (stopping running VMs).
    pub async fn remove_user(
        &self,
        subject: &Subject,
        req: UserRemove,
    ) -> Result<UserRemoved, Error> {
        admin_only(subject)?;
        let row = self
            .account_for(subject, &req.name, Action::Administer)
            .await?;
        if row.uid == Some(0) {
            return Err(Error::Invalid("the root account cannot be removed".into()));
        }
        let id = row.id;
        let (vms, images, networks, templates) = self
            .db(move |s| {
                Ok(s.read(|c| {
                    Ok::<_, store::StoreError>((
                        store::vms_of(c, id)?,
                        store::images_of(c, id)?,
                        private_networks_of(c, id)?,
                        private_templates_of(c, id)?,
                    ))
                })?)
            })
            .await?;
        let owns_any =
            !vms.is_empty() || !images.is_empty() || !networks.is_empty() || !templates.is_empty();
        if !req.force && owns_any {
            let owned = described(&vms, "vm")
                .into_iter()
                .chain(described(&templates, "template"))
                .chain(described(&images, "image"))
                .chain(described(&networks, "network"))
                .collect();
            return Err(Error::AccountInUse {
                name: row.name,
                owned,
            });
        }
        self.check_networks_free(id, &networks).await?;
        self.check_templates_free(id, &templates).await?;
        for vm in &vms {
            self.remove_owned_vm(id, vm).await?;
        }
        for template in &templates {
            self.remove_template(subject, template).await?;
        }
        for image in &images {
            self.remove_image(subject, image).await?;
        }
        for network in &networks {
            self.remove_network(subject, network).await?;
        }
        let heir = subject.user_id;
        let tokens = self
            .db(move |s| {
                s.with_tx(|tx| {
                    store::transfer_shared(tx, id, heir)?;
                    let n = store::delete_tokens_of(tx, id, None)?;
                    store::delete_user(tx, id)?;
                    Ok(n)
                })
            })
            .await?;
        tracing::info!(user = %row.name, by = %subject.name, vms = vms.len(), images = images.len(), tokens, "account removed");
        self.user_event(EventKind::UserRemoved, &row, "removed".into())
            .await?;
        Ok(UserRemoved {
            name: row.name,
            vms,
            images,
            tokens,
        })
    }

    /// Before anything of account `id` is removed: no other account's VM is a clone of one of
    /// its `templates` (a forced removal would otherwise stop half-way).
    async fn check_templates_free(&self, id: i64, templates: &[String]) -> Result<(), Error> {
        for name in templates {
            let Some(t) = self.find_template(name).await? else {
                continue;
            };
            let tid = t.id;
            let clones = self
                .db(move |s| Ok(s.read(|c| store::clones_of(c, tid))?))
                .await?;
            let foreign: Vec<String> = clones
                .into_iter()
                .filter(|(_, owner)| *owner != id)
                .map(|(vm, _)| vm)
                .collect();
            if !foreign.is_empty() {
                return Err(super::template_error::TemplateError::InUse {
                    name: name.clone(),
                    clones: foreign,
                    hidden: 0,
                }
                .into());
            }
        }
        Ok(())
    }

    /// Before anything of account `id` is removed: no other account's VM has a NIC on one of
    /// its `networks` (a forced removal would otherwise stop half-way).
    async fn check_networks_free(&self, id: i64, networks: &[String]) -> Result<(), Error> {
        let names = networks.to_vec();
        let blocked = self
            .db(move |s| Ok(s.read(|c| foreign_nics(c, id, &names))?))
            .await?;
        match blocked {
            Some((name, users)) => Err(super::net_error::NetError::InUse { name, users }.into()),
            None => Ok(()),
        }
    }

    /// Renames the accounts that the schema migration made for owner uids (`uid-N`) after
    /// their login names, where one exists and is free. Failures are logged.
    pub async fn name_placeholder_accounts(&self) {
        let renamed = self
            .db(|s| {
                let rows = s.read(store::list_users)?;
                let mut renamed = Vec::new();
                for mut row in rows {
                    let Some(uid) = row.uid.filter(|u| row.name == format!("uid-{u}")) else {
                        continue;
                    };
                    let login = crate::auth::identity::login_name(uid);
                    if login == row.name || s.read(|c| store::user_by_name(c, &login))?.is_some() {
                        continue;
                    }
                    row.name = login;
                    s.with_tx(|tx| store::update_user(tx, &row))?;
                    renamed.push(row.name);
                }
                Ok(renamed)
            })
            .await;
        match renamed {
            Ok(names) if !names.is_empty() => {
                tracing::info!(accounts = ?names, "accounts named after their login names")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot name accounts after login names"),
        }
    }

    /// Stops (forced) and removes VM `name` if account `owner` still owns it, under its lock
    /// (the name may have changed hands since the account's VMs were listed).
    async fn remove_owned_vm(&self, owner: i64, name: &str) -> Result<(), Error> {
        let _guard = self.lock("vm", name, "remove user").await?;
        match self.find_vm(name).await? {
            Some(row) if row.owner.id == owner => {}
            _ => return Ok(()),
        }
        if let Err(err) = self.force_stop_now(name).await {
            ignore_not_running(err)?;
        }
        self.remove_locked(name).await
    }

    /// The account `name` if `subject` may take `action` on it.
    pub(super) async fn account_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<UserRow, Error> {
        let row = self.account(name).await?;
        allow(subject, action, Object::Account { id: row.id }, || {
            Error::AccountNotFound(name.into())
        })?;
        Ok(row)
    }

    /// The account called `name`.
    pub(super) async fn account(&self, name: &str) -> Result<UserRow, Error> {
        let key = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::user_by_name(c, &key))?))
            .await?
            .ok_or_else(|| Error::AccountNotFound(name.into()))
    }

    /// The API view of an account, with its quotas and use.
    pub(super) async fn user_view(&self, row: UserRow) -> Result<User, Error> {
        let id = row.id;
        let (usage, vms) = self
            .db(move |s| {
                Ok(s.read(|c| {
                    Ok::<_, store::StoreError>((store::usage(c, id)?, store::vms_of(c, id)?))
                })?)
            })
            .await?;
        Ok(User {
            quota: super::quota::limits_in_force(&row, &self.config.auth),
            quota_overrides: row.limits.overrides(),
            has_password: row.password.is_some(),
            created_at: rfc3339(row.created_at),
            role: row.role,
            uid: row.uid,
            name: row.name,
            usage,
            vms,
        })
    }

    /// A user changing their own password with a bearer credential proves they know it.
    async fn check_current_password(
        &self,
        subject: &Subject,
        row: &UserRow,
        given: Option<String>,
    ) -> Result<(), Error> {
        let bearer = subject.via != vm_proto::types::AuthMethod::Peer;
        if subject.is_admin() || !bearer || row.password.is_none() {
            return Ok(());
        }
        let stored = row.password.clone();
        let given = given.unwrap_or_default();
        let ok = self
            .argon(move || secret::verify_password(&given, stored.as_deref()))
            .await?;
        match ok {
            true => Ok(()),
            false => Err(Error::Unauthenticated(
                "the current password is wrong or missing".into(),
            )),
        }
    }

    async fn hash(&self, password: Option<String>) -> Result<Option<String>, Error> {
        let Some(password) = password else {
            return Ok(None);
        };
        secret::check_password(&password).map_err(Error::Invalid)?;
        let phc = self.argon(move || secret::hash_password(&password)).await?;
        phc.map(Some)
            .map_err(|e| Error::Invalid(format!("cannot hash the password: {e}")))
    }

    async fn user_event(
        &self,
        kind: EventKind,
        row: &UserRow,
        message: String,
    ) -> Result<(), Error> {
        let owner = store::Owner {
            id: row.id,
            name: row.name.clone(),
            uid: row.uid,
        };
        let mut draft = Draft::vm(kind, "", message).owned_by(&owner);
        draft.vm = None;
        self.events.emit(draft).await?;
        Ok(())
    }
}

/// Account management is for admins; checked before any lookup, so that a refusal does not
/// tell which names exist.
fn admin_only(subject: &Subject) -> Result<(), Error> {
    let own = Object::Account {
        id: subject.user_id,
    };
    allow(subject, Action::Administer, own, || {
        Error::Forbidden("managing accounts is for admins")
    })
}

/// Inside a transaction: no other account (than `except`) has `name` or `uid`.
fn check_free(
    tx: &rusqlite::Connection,
    name: &str,
    uid: Option<u32>,
    except: Option<i64>,
) -> Result<(), Error> {
    if store::user_by_name(tx, name)?.is_some_and(|u| Some(u.id) != except) {
        return Err(Error::AccountExists(format!("user {name}")));
    }
    if let Some(uid) = uid {
        if let Some(other) = store::user_by_uid(tx, uid)?.filter(|u| Some(u.id) != except) {
            return Err(Error::AccountExists(format!(
                "an account for uid {uid} ({})",
                other.name
            )));
        }
    }
    Ok(())
}

fn limit(update: LimitUpdate) -> Limit {
    match update {
        LimitUpdate::Value(n) => Limit::Max(n),
        LimitUpdate::Word(LimitWord::Default) => Limit::Default,
        LimitUpdate::Word(LimitWord::Unlimited) => Limit::Unlimited,
    }
}

/// The first of `networks` on which VMs of other accounts than `id` have NICs, with them.
fn foreign_nics(
    conn: &rusqlite::Connection,
    id: i64,
    networks: &[String],
) -> Result<Option<(String, Vec<String>)>, store::StoreError> {
    for name in networks {
        let Some(net) = store::get_network(conn, name)? else {
            continue;
        };
        let users: Vec<String> = store::nics_on_network(conn, net.id)?
            .into_iter()
            .filter(|n| n.vm_owner != id)
            .map(|n| n.vm_name)
            .collect();
        if !users.is_empty() {
            return Ok(Some((name.clone(), users)));
        }
    }
    Ok(None)
}

/// The names of the templates `id` owns that are not shared (shared ones pass to the heir).
fn private_templates_of(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Vec<String>, store::StoreError> {
    Ok(store::list_templates(conn)?
        .into_iter()
        .filter(|t| t.owner.id == id && !t.shared)
        .map(|t| t.name)
        .collect())
}

/// The names of the networks `id` owns that are not shared (shared ones pass to the heir).
fn private_networks_of(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Vec<String>, store::StoreError> {
    Ok(store::list_networks(conn)?
        .into_iter()
        .filter(|n| n.owner.id == id && !n.shared)
        .map(|n| n.name)
        .collect())
}

fn described(names: &[String], what: &str) -> Vec<String> {
    names.iter().map(|n| format!("{what} {n}")).collect()
}

fn ignore_not_running(err: Error) -> Result<(), Error> {
    match err.code() {
        vm_proto::ErrorCode::WrongState => Ok(()),
        _ => Err(err),
    }
}
