//! Re-adoption at start-up: VMs whose state says a QEMU process exists are checked against the
//! process table (pid plus start time, so a reused pid is not mistaken for the guest). Live ones
//! are reconnected over QMP and watched again; dead ones are marked `crashed`. This runs before
//! the daemon reports ready. vmd never kills a guest because of its own restart.

use std::time::Duration;

use vm_proto::types::{EventKind, VmState};

use super::events::Draft;
use super::{Error, Manager};
use crate::qemu::process;
use crate::qemu::qmp::{Qmp, RunState};
use crate::store::{self, VmRow};

/// How long re-adoption waits for a live QEMU's QMP socket.
const ADOPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Manager {
    /// Re-adopts or buries every VM that had a process. Returns how many were adopted.
    pub async fn adopt(&self) -> Result<usize, Error> {
        let rows = self.db(|s| Ok(s.read(store::list_vms)?)).await?;
        let mut adopted = 0;
        for row in rows {
            if row.state.has_process() {
                adopted += usize::from(self.adopt_one(row).await?);
            }
        }
        Ok(adopted)
    }

    async fn adopt_one(&self, row: VmRow) -> Result<bool, Error> {
        let name = row.name.clone();
        let Some(rt) = row
            .runtime
            .clone()
            .filter(|rt| process::is_same_process(rt.pid, rt.pid_start_time))
        else {
            let id = row.id;
            self.db(move |s| Ok(s.with_tx(|tx| store::clear_runtime(tx, id))?))
                .await?;
            let reason = "QEMU exited while vmd was not running".to_string();
            self.note(&name, &reason);
            self.force_state(&name, VmState::Crashed, Some(reason))
                .await?;
            return Ok(false);
        };
        let qmp_path = std::path::Path::new(&rt.run_dir).join("qmp");
        let qmp = match Qmp::connect(&qmp_path, ADOPT_TIMEOUT).await {
            Ok(q) => q,
            Err(err) => {
                tracing::warn!(vm = %name, pid = rt.pid, error = %err, "cannot reconnect to a live QEMU; leaving it running");
                return Ok(false);
            }
        };
        let events = qmp.events();
        let status = qmp.query_status().await.map(|s| s.status);
        let state = match status {
            Ok(RunState::Paused) => VmState::Paused,
            Ok(RunState::Running) => VmState::Running,
            ref other => {
                tracing::warn!(vm = %name, status = ?other, "adopted QEMU is not running a guest");
                VmState::Running
            }
        };
        self.force_state(&name, state, None).await?;
        self.attach_monitor(&row, qmp, events, None, rt.pid, rt.pid_start_time);
        let msg = format!(
            "re-adopted QEMU pid {} by vmd pid {}",
            rt.pid,
            std::process::id()
        );
        self.note(&name, &msg);
        self.events
            .emit(Draft::vm(EventKind::Adopted, &name, msg))
            .await?;
        tracing::info!(vm = %name, pid = rt.pid, state = %state, "vm re-adopted");
        if matches!(status, Ok(RunState::InternalError)) {
            let _ = process::kill(rt.pid, rt.pid_start_time);
        }
        Ok(true)
    }
}
