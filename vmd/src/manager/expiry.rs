//! Ephemeral VMs: lifetimes (`ttl_secs`, `on_expiry`, `session`), `vm.extend`, and the worker
//! that carries out expiry actions.
//!
//! Deadlines are stored (`vms.expires_at`, `vms.session_id`), so expiry survives restarts: the
//! worker starts after adoption and first handles every deadline that passed while vmd was
//! down. It sleeps until the next deadline (at most [`MAX_NAP`], so that session expiry and
//! missed wake-ups are caught), or until told that a deadline or session changed. An expiry
//! stops the VM (forced), then removes it, wipes it or leaves it stopped; VMs that stay lose
//! their deadline and session. Each expiry is an event (`vm_expired`) with no actor.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vm_proto::types::{AuthMethod, EventKind, ExpiryAction, Vm, VmCreate, VmExtend, TTL_SECS_MAX};

use super::events::Draft;
use super::sessions::check_ttl;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::store;

/// Longest sleep between checks.
const MAX_NAP: Duration = Duration::from_secs(30);
/// How often stored events beyond the kept number are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Wait before retrying an expiry that failed (the VM was busy, say).
const RETRY: Duration = Duration::from_secs(5);

/// The lifetime a new VM gets.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NewExpiry {
    pub deadline: Option<i64>,
    pub action: Option<ExpiryAction>,
    pub session_id: Option<i64>,
}

impl Manager {
    /// The lifetime `req` asks for, checked.
    pub(super) fn expiry_for(&self, subject: &Subject, req: &VmCreate) -> Result<NewExpiry, Error> {
        let session_id = match req.session {
            false => None,
            true if subject.via == AuthMethod::Session => subject.token_id,
            true => return Err(Error::Invalid(
                "session: the VM can only be tied to a login session (auth.login / vmctl login)"
                    .into(),
            )),
        };
        let deadline = req
            .ttl_secs
            .map(check_ttl)
            .transpose()?
            .map(|ttl| now_secs().saturating_add(ttl as i64));
        let ephemeral = deadline.is_some() || session_id.is_some();
        if req.on_expiry.is_some() && !ephemeral {
            return Err(Error::Invalid("on_expiry needs ttl_secs or session".into()));
        }
        Ok(NewExpiry {
            deadline,
            action: ephemeral.then(|| req.on_expiry.unwrap_or_default()),
            session_id,
        })
    }

    /// `vm.extend`: moves the deadline `by_secs` later.
    pub async fn extend_vm(&self, subject: &Subject, req: VmExtend) -> Result<Vm, Error> {
        let (_guard, row) = self
            .lock_vm_for(subject, &req.name, Action::Modify, "extend")
            .await?;
        let by = check_ttl(req.by_secs)? as i64;
        let now = now_secs();
        let Some(deadline) = row.expiry.deadline else {
            return Err(Error::Invalid(format!(
                "vm {} has no deadline to extend",
                req.name
            )));
        };
        let new = deadline.max(now).saturating_add(by);
        if new - now > TTL_SECS_MAX as i64 {
            return Err(Error::Invalid(format!(
                "a deadline may be at most {TTL_SECS_MAX} s (a year) away"
            )));
        }
        let (id, action, session) = (
            row.id,
            row.expiry.action.clone(),
            row.expiry.session.map(|s| s.0),
        );
        self.db(move |s| {
            Ok(s.with_tx(|tx| store::set_expiry(tx, id, Some(new), action.as_deref(), session))?)
        })
        .await?;
        tracing::info!(vm = %req.name, until = %rfc3339(new), by = %subject.name, "vm deadline extended");
        let msg = format!("deadline moved to {}", rfc3339(new));
        self.events
            .emit(Draft::vm(EventKind::VmExtended, &req.name, msg))
            .await?;
        self.expiry_changed();
        self.vm(&req.name).await
    }

    /// Wakes the expiry worker (a deadline or session changed).
    pub(super) fn expiry_changed(&self) {
        self.expiry_wake.notify_one();
    }

    /// Runs the expiry worker until `shutdown`.
    pub fn spawn_expiry(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut pruned = std::time::Instant::now();
            loop {
                let nap = me.expire_due().await;
                // The event table is also kept bounded while vmd runs, not only at start-up.
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = std::time::Instant::now();
                    if let Err(err) = me.events.prune().await {
                        tracing::warn!(error = %err, "cannot prune events");
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = me.expiry_wake.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                }
            }
        })
    }

    /// Expires every VM whose lifetime ended; returns how long to sleep.
    async fn expire_due(&self) -> Duration {
        let now = now_secs();
        let due = match self
            .db(move |s| Ok(s.read(|c| store::expired_vms(c, now))?))
            .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read vm deadlines");
                return RETRY;
            }
        };
        let mut failed = false;
        for (id, name) in due {
            if let Err(err) = self.expire(id, &name).await {
                tracing::warn!(vm = %name, error = %err, "vm expiry failed; will retry");
                failed = true;
            }
        }
        // Expired tokens go once the VMs that ended with them were handled.
        let pruned = self
            .db(move |s| Ok(s.with_tx(|tx| store::prune_expired_tokens(tx, now))?))
            .await;
        if let Err(err) = pruned {
            tracing::warn!(error = %err, "cannot prune expired tokens");
        }
        let next = self
            .db(|s| Ok(s.read(store::next_expiry)?))
            .await
            .ok()
            .flatten();
        let until_next = next.map(|t| Duration::from_secs((t - now_secs()).max(1) as u64));
        let nap = until_next.unwrap_or(MAX_NAP).min(MAX_NAP);
        if failed {
            nap.min(RETRY)
        } else {
            nap
        }
    }

    /// Carries out the expiry action of VM `id`, called `name` when the due list was read.
    /// Under the VM's lock the row is read again and acted on only if it is the same VM and
    /// still due: its owner may have extended it, or removed it and someone else taken the
    /// name, in between.
    async fn expire(&self, id: i64, name: &str) -> Result<(), Error> {
        let _guard = self.lock("vm", name, "expire").await?;
        let now = now_secs();
        let row = match self.find_vm(name).await? {
            Some(row) if row.id == id && row.expiry.ends_at(now).is_some_and(|end| end <= now) => {
                row
            }
            _ => return Ok(()),
        };
        let action = row
            .expiry
            .action
            .as_deref()
            .and_then(ExpiryAction::parse)
            .unwrap_or_default();
        if row.state.has_process() {
            if let Err(err) = self.force_stop_now(name).await {
                if err.code() != vm_proto::ErrorCode::WrongState {
                    return Err(err);
                }
            }
        }
        match action {
            ExpiryAction::Remove => self.remove_locked(name).await,
            ExpiryAction::Wipe => self.wipe_locked(name).await.map(drop),
            ExpiryAction::Stop => Ok(()),
        }?;
        if action != ExpiryAction::Remove {
            self.db(move |s| Ok(s.with_tx(|tx| store::set_expiry(tx, id, None, None, None))?))
                .await?;
        }
        // Recorded once the action is done, so that a retried expiry is one event.
        tracing::info!(vm = %name, owner = %row.owner.name, action = action.as_str(), "vm expired");
        let msg = format!("lifetime ended: {}", action.as_str());
        let draft = Draft::vm(EventKind::VmExpired, name, msg).owned_by(&row.owner);
        self.events.emit(draft).await?;
        Ok(())
    }
}
