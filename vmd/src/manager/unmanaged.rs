//! VMs whose QEMU vmd cannot control: the stored state says a QEMU exists, but adoption could
//! not reconnect to it over QMP (its socket is gone, or it does not answer). vmd still knows
//! its pid and start time, so such a VM is never stuck: a forced stop kills the process, and
//! once the process is gone the VM is settled (`stopped` or `crashed`) by the next operation.

use std::time::Duration;

use vm_proto::types::{Vm, VmState};

use super::{Error, Manager};
use crate::qemu::process;
use crate::store::{self, VmRow};

/// How long a forced stop of an unmanaged QEMU waits after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Manager {
    /// A forced stop of a VM without a runtime: SIGKILL its recorded process if it still runs,
    /// then record `stopped`. A VM with no process is returned as it is.
    pub(super) async fn stop_unmanaged(&self, name: &str) -> Result<Vm, Error> {
        let row = self.row(name).await?;
        if !row.state.has_process() || self.runtime(name).is_some() {
            return self.vm(name).await;
        }
        if let Some(rt) = row.runtime.as_ref().filter(|rt| rt.pid != 0) {
            let _ = process::kill(rt.pid, rt.pid_start_time);
            if !process::wait_gone(rt.pid, rt.pid_start_time, KILL_WAIT).await {
                return Err(Error::StopFailed {
                    name: name.into(),
                    pid: rt.pid,
                });
            }
        }
        let reason = "forced stop of a QEMU that vmd could not reach over QMP";
        self.note(name, reason);
        self.settle(&row, VmState::Stopped, reason).await?;
        self.vm(name).await
    }

    /// Records the end of an unmanaged VM whose process is gone (`crashed`); a no-op for any
    /// other VM. Called before operations that need the VM stopped.
    pub(super) async fn settle_if_gone(&self, name: &str) -> Result<(), Error> {
        let Some(row) = self.find_vm(name).await? else {
            return Ok(());
        };
        let alive = row
            .runtime
            .as_ref()
            .is_some_and(|rt| rt.pid != 0 && process::is_same_process(rt.pid, rt.pid_start_time));
        if !row.state.has_process() || self.runtime(name).is_some() || alive {
            return Ok(());
        }
        let reason = "QEMU exited while vmd could not reach it";
        self.note(name, reason);
        self.settle(&row, VmState::Crashed, reason).await
    }

    async fn settle(&self, row: &VmRow, to: VmState, reason: &str) -> Result<(), Error> {
        let id = row.id;
        self.db(move |s| Ok(s.with_tx_retry(|tx| store::clear_runtime(tx, id))?))
            .await?;
        if let Some(rt) = &row.runtime {
            let _ = std::fs::remove_dir_all(&rt.run_dir);
        }
        self.force_state(&row.name, to, Some(reason.into())).await
    }

    async fn row(&self, name: &str) -> Result<VmRow, Error> {
        self.find_vm(name)
            .await?
            .ok_or_else(|| Error::VmNotFound(name.into()))
    }
}
