//! Stored VM state: preconditions of operations and compare-and-set transitions, each
//! recorded as a `state_changed` event. The only writer of `vms.state`.
//!
//! A start's `→ starting` write also runs the quota and host memory admission
//! ([`super::quota::admit_start`]) in its transaction, so a refused start changes nothing.

use rusqlite::Connection;
use vm_proto::types::{EventKind, VmState};

use super::events::Draft;
use super::{Error, Manager};
use crate::store::{self, VmRow};

/// States in which the VM's QEMU runs, so its consoles can be attached.
pub(super) const WITH_PROCESS: [VmState; 3] =
    [VmState::Running, VmState::Paused, VmState::Stopping];

impl Manager {
    /// The VM row, if its state is one of `allowed`; otherwise a `wrong_state` error saying
    /// `action`.
    pub(super) async fn require(
        &self,
        name: &str,
        allowed: &[VmState],
        action: &'static str,
    ) -> Result<VmRow, Error> {
        let row = self
            .find_vm(name)
            .await?
            .ok_or_else(|| Error::VmNotFound(name.into()))?;
        if !allowed.contains(&row.state) {
            return Err(Error::WrongState {
                name: name.into(),
                state: row.state,
                action,
            });
        }
        Ok(row)
    }

    /// Moves `name` to `to` if that transition is valid from its current state; records
    /// `reason` (cleared when `None`) and emits an event. A no-op when already in `to`.
    pub(super) async fn transition(
        &self,
        name: &str,
        to: VmState,
        reason: Option<String>,
    ) -> Result<VmState, Error> {
        self.set_state(name, to, reason, Rule::Checked, None).await
    }

    /// `stopped|crashed → starting` for `vm.start`, if the owner's quotas and the host's
    /// memory admit it; checked in the same transaction as the write.
    pub(super) async fn admit_start(&self, name: &str) -> Result<(), Error> {
        let auth = self.config.auth.clone();
        let admit: Admit = Box::new(move |tx, row| super::quota::admit_start(tx, &auth, row));
        self.set_state(name, VmState::Starting, None, Rule::Checked, Some(admit))
            .await
            .map(drop)
    }

    /// Moves `name` from exactly `from` to `to`; `false` (and nothing changes) otherwise.
    pub(super) async fn transition_if(&self, name: &str, from: VmState, to: VmState) -> bool {
        match self.find_vm(name).await {
            Ok(Some(row)) if row.state == from => self.transition(name, to, None).await.is_ok(),
            _ => false,
        }
    }

    /// Moves `name` from exactly `from` to `to` (compare-and-set); `wrong_state` saying
    /// `action` when another change got there first.
    pub(super) async fn transition_from(
        &self,
        name: &str,
        from: VmState,
        to: VmState,
        action: &'static str,
    ) -> Result<(), Error> {
        self.set_state(name, to, None, Rule::From(from, action), None)
            .await
            .map(drop)
    }

    /// Sets a state without transition rules (re-adoption reports what QEMU says is true).
    pub(super) async fn force_state(
        &self,
        name: &str,
        to: VmState,
        reason: Option<String>,
    ) -> Result<(), Error> {
        self.set_state(name, to, reason, Rule::Any, None)
            .await
            .map(drop)
    }

    /// The one writer of `vms.state`: compare-and-set in a transaction (checking `rule`, and
    /// `admit` when the state changes), then a `state_changed` event if the state changed.
    async fn set_state(
        &self,
        name: &str,
        to: VmState,
        reason: Option<String>,
        rule: Rule,
        admit: Option<Admit>,
    ) -> Result<VmState, Error> {
        let key = name.to_string();
        let why = reason.clone();
        let from = self
            .db(move |s| {
                s.with_tx_retry(|tx| {
                    let row =
                        store::get_vm(tx, &key)?.ok_or_else(|| Error::VmNotFound(key.clone()))?;
                    let from = row.state;
                    rule.check(&key, from, to)?;
                    if let (Some(admit), true) = (&admit, from != to) {
                        admit(tx, &row)?;
                    }
                    store::set_state(tx, row.id, to, why.as_deref())?;
                    Ok(from)
                })
            })
            .await?;
        if from != to {
            let message = match &reason {
                Some(r) => format!("{from} -> {to}: {r}"),
                None => format!("{from} -> {to}"),
            };
            let mut draft = Draft::vm(EventKind::StateChanged, name, message);
            draft.state = Some(to);
            self.events.emit(draft).await?;
        }
        Ok(from)
    }
}

/// A check run inside a state write's transaction (start admission).
type Admit = Box<dyn Fn(&Connection, &VmRow) -> Result<(), Error> + Send>;

/// What a state write checks against the stored state.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// [`VmState::can_transition_to`].
    Checked,
    /// Exactly this state now (the `&str` says what to do otherwise).
    From(VmState, &'static str),
    /// Nothing (adoption records what QEMU says).
    Any,
}

impl Rule {
    fn check(self, name: &str, from: VmState, to: VmState) -> Result<(), Error> {
        match self {
            Rule::Checked if from != to && !from.can_transition_to(to) => Err(Error::Transition {
                name: name.into(),
                from,
                to,
            }),
            Rule::From(expected, action) if from != expected => Err(Error::WrongState {
                name: name.into(),
                state: from,
                action,
            }),
            _ => Ok(()),
        }
    }
}
