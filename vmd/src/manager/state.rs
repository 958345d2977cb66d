//! Stored VM state: preconditions of operations and compare-and-set transitions, each
//! recorded as a `state_changed` event. The only writer of `vms.state`.

use vm_proto::types::{EventKind, VmState};

use super::events::Draft;
use super::{Error, Manager};
use crate::store::{self, VmRow};

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
        self.set_state(name, to, reason, true).await
    }

    /// Moves `name` from exactly `from` to `to`; `false` (and nothing changes) otherwise.
    pub(super) async fn transition_if(&self, name: &str, from: VmState, to: VmState) -> bool {
        match self.find_vm(name).await {
            Ok(Some(row)) if row.state == from => {
                self.transition(name, to, None).await.is_ok()
            }
            _ => false,
        }
    }

    /// Sets a state without transition rules (re-adoption reports what QEMU says is true).
    pub(super) async fn force_state(
        &self,
        name: &str,
        to: VmState,
        reason: Option<String>,
    ) -> Result<(), Error> {
        self.set_state(name, to, reason, false).await.map(drop)
    }

    /// The one writer of `vms.state`: compare-and-set in a transaction (checking the
    /// transition rules when `checked`), then a `state_changed` event if the state changed.
    async fn set_state(
        &self,
        name: &str,
        to: VmState,
        reason: Option<String>,
        checked: bool,
    ) -> Result<VmState, Error> {
        let key = name.to_string();
        let why = reason.clone();
        let from = self
            .db(move |s| {
                s.with_tx(|tx| {
                    let row =
                        store::get_vm(tx, &key)?.ok_or_else(|| Error::VmNotFound(key.clone()))?;
                    let from = row.state;
                    if checked && from != to && !from.can_transition_to(to) {
                        return Err(Error::Transition {
                            name: key.clone(),
                            from,
                            to,
                        });
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
