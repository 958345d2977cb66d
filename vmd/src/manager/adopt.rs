//! Re-adoption at start-up, before the daemon reports ready. vmd never kills a guest because
//! of its own restart.
//!
//! First every QEMU of this instance is found in `/proc` by the run directory on its command
//! line ([`crate::qemu::scan`]). Then each VM whose state says a QEMU may exist claims the one
//! in the run directory its runtime row names (pid plus start time when the pid was recorded,
//! so a reused pid is not mistaken for the guest): a live one is reconnected over QMP and
//! watched again — including a QEMU spawned by a vmd that died before recording its pid —
//! and a VM with none is `crashed` (or `stopped` when its start never got as far as QEMU).
//! A QEMU that no VM claims (its start was abandoned, its VM is gone) is stopped and reported
//! with an `orphan_stopped` event, so nothing writes to a disk vmd does not account for.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use vm_proto::types::{EventKind, VmState};

use super::events::Draft;
use super::{Error, Manager};
use crate::qemu::process;
use crate::qemu::qmp::{Qmp, RunState};
use crate::qemu::scan::{self, FoundQemu};
use crate::store::{self, DiskFull as _, RuntimeRow, VmRow};

/// How long re-adoption waits for a live QEMU's QMP socket (a QEMU spawned just before vmd
/// died may still be starting).
const ADOPT_TIMEOUT: Duration = Duration::from_secs(10);

impl Manager {
    /// Re-adopts or buries every VM that had a process and stops unclaimed QEMUs. Returns how
    /// many were adopted.
    pub async fn adopt(&self) -> Result<usize, Error> {
        let rows = self
            .db(|s| Ok(s.read(|c| store::list_vms(c, None))?))
            .await?;
        let run_dir = self.config.run_dir.clone();
        let mut found = tokio::task::spawn_blocking(move || scan::scan(&run_dir)).await?;
        let names: HashMap<i64, String> = rows.iter().map(|r| (r.id, r.name.clone())).collect();
        let claims: Vec<(VmRow, Option<FoundQemu>)> = rows
            .into_iter()
            .filter(|r| r.state.has_process())
            .map(|row| {
                let claimed = claim(&mut found, &row);
                (row, claimed)
            })
            .collect();
        // Concurrently: a busy guest's QMP greeting can take seconds under TCG, and READY
        // waits for all of them.
        let outcomes = futures::future::join_all(
            claims
                .into_iter()
                .map(|(row, claimed)| self.adopt_one(row, claimed)),
        )
        .await;
        let mut adopted = 0;
        for outcome in outcomes {
            match outcome {
                Ok(true) => adopted += 1,
                Ok(false) => {}
                // A full disk must not keep vmd from serving (removing VMs frees space).
                Err(err) if err.is_disk_full() => {
                    tracing::warn!(error = %err, "cannot record an adoption: state file system full")
                }
                Err(err) => return Err(err),
            }
        }
        for stray in found {
            let vm = scan::vm_id_of(&stray.run_dir).and_then(|id| names.get(&id));
            self.stop_stray(stray, vm.map(String::as_str)).await?;
        }
        Ok(adopted)
    }

    async fn adopt_one(&self, row: VmRow, claimed: Option<FoundQemu>) -> Result<bool, Error> {
        let Some(qemu) = claimed else {
            self.bury(&row).await?;
            return Ok(false);
        };
        self.record_found(&row, &qemu).await?;
        let qmp = match Qmp::connect(&qemu.run_dir.join("qmp"), ADOPT_TIMEOUT).await {
            Ok(q) => q,
            Err(err) if row.state == VmState::Starting => {
                tracing::warn!(vm = %row.name, pid = qemu.pid, error = %err, "half-started QEMU does not answer; stopping it");
                self.stop_qemu(&qemu).await;
                self.bury(&row).await?;
                return Ok(false);
            }
            Err(err) => {
                tracing::warn!(vm = %row.name, pid = qemu.pid, error = %err, "cannot reconnect to a live QEMU; leaving it running");
                // A stop in progress is not resumed; `vmctl stop --force` kills it by pid.
                if row.state == VmState::Stopping {
                    self.force_state(&row.name, VmState::Running, None).await?;
                }
                return Ok(false);
            }
        };
        if matches!(
            qmp.query_status().await.map(|s| s.status),
            Ok(RunState::Inmigrate)
        ) {
            // A clone's restore that vmd did not see through: nothing ran yet, and its next
            // start restores again.
            tracing::warn!(vm = %row.name, pid = qemu.pid, "QEMU still waits for a template's state; stopping it");
            drop(qmp);
            self.stop_qemu(&qemu).await;
            self.bury(&row).await?;
            return Ok(false);
        }
        if row.restore_pending {
            // The state was loaded before vmd could record it: the guest is the clone's now.
            let (id, template) = (row.id, row.template.as_ref().map(|t| t.id));
            self.db(move |s| {
                Ok(s.with_tx_retry(|tx| store::set_restore_pending(tx, id, template, false))?)
            })
            .await?;
        }
        self.take_over(&row, qmp, &qemu).await?;
        Ok(true)
    }

    /// Watches an adopted QEMU again and records what it says it is doing.
    async fn take_over(&self, row: &VmRow, qmp: Qmp, qemu: &FoundQemu) -> Result<(), Error> {
        let name = &row.name;
        let events = qmp.events();
        let status = qmp.query_status().await.map(|s| s.status);
        let (state, reason) = match &status {
            Ok(RunState::Running) => (VmState::Running, None),
            // `postmigrate`: a template was saved but vmd died before QEMU quit; `cont` works.
            Ok(status) if status.is_resumable_pause() => (VmState::Paused, None),
            Ok(RunState::IoError) => (
                VmState::Paused,
                Some(super::monitor::IO_ERROR_REASON.to_string()),
            ),
            other => {
                tracing::warn!(vm = %name, status = ?other, "adopted QEMU is not running a guest");
                (VmState::Running, None)
            }
        };
        let unchanged = row.state == state && row.reason == reason;
        if !unchanged {
            self.force_state(name, state, reason).await?;
        }
        let (pid, start_time) = (qemu.pid, qemu.start_time);
        self.attach_monitor(row, qmp, events, None, pid, start_time, &qemu.run_dir);
        let msg = format!(
            "re-adopted QEMU pid {pid} by vmd pid {}",
            std::process::id()
        );
        self.note(name, &msg);
        if let Err(err) = self
            .events
            .emit(Draft::vm(EventKind::Adopted, name, msg))
            .await
        {
            tracing::warn!(vm = %name, error = %err, "cannot record the adoption event");
        }
        tracing::info!(vm = %name, pid, state = %state, "vm re-adopted");
        if matches!(status, Ok(RunState::InternalError)) {
            let _ = process::kill(pid, start_time);
        }
        Ok(())
    }

    /// Records the pid of a QEMU found for `row` when the row does not have it yet (vmd died
    /// between spawning it and recording it).
    async fn record_found(&self, row: &VmRow, qemu: &FoundQemu) -> Result<(), Error> {
        let Some(rt) = &row.runtime else {
            return Ok(());
        };
        if rt.pid == qemu.pid && rt.pid_start_time == qemu.start_time {
            return Ok(());
        }
        let runtime = RuntimeRow {
            pid: qemu.pid,
            pid_start_time: qemu.start_time,
            ..rt.clone()
        };
        tracing::info!(vm = %row.name, pid = qemu.pid, "found the QEMU of an interrupted start");
        let id = row.id;
        self.db(move |s| Ok(s.with_tx_retry(|tx| store::set_runtime(tx, id, &runtime))?))
            .await
    }

    /// No QEMU for a VM whose state says there is one: `stopped` if its start never got a
    /// running QEMU, else `crashed`.
    async fn bury(&self, row: &VmRow) -> Result<(), Error> {
        let id = row.id;
        self.db(move |s| Ok(s.with_tx_retry(|tx| store::clear_runtime(tx, id))?))
            .await?;
        if let Some(rt) = &row.runtime {
            let _ = std::fs::remove_dir_all(&rt.run_dir);
        }
        let (to, reason) = match row.state {
            VmState::Starting => (
                VmState::Stopped,
                "start interrupted: vmd stopped before QEMU was running",
            ),
            VmState::Stopping => (
                VmState::Stopped,
                "QEMU exited while vmd was not running (a stop was in progress)",
            ),
            _ => (VmState::Crashed, "QEMU exited while vmd was not running"),
        };
        self.note(&row.name, reason);
        self.force_state(&row.name, to, Some(reason.into())).await
    }

    /// Stops a QEMU of this instance that no VM accounts for, and says so.
    async fn stop_stray(&self, qemu: FoundQemu, vm: Option<&str>) -> Result<(), Error> {
        self.stop_qemu(&qemu).await;
        let msg = format!(
            "stopped QEMU pid {} that no vm accounts for (run directory {})",
            qemu.pid,
            qemu.run_dir.display()
        );
        tracing::warn!(pid = qemu.pid, run_dir = %qemu.run_dir.display(), vm = vm.unwrap_or(""), "stopped an orphaned QEMU");
        let mut draft = Draft::vm(EventKind::OrphanStopped, vm.unwrap_or(""), msg);
        if vm.is_none() {
            draft.vm = None;
        }
        if let Err(err) = self.events.emit(draft).await {
            tracing::warn!(error = %err, "cannot record the orphan_stopped event");
        }
        Ok(())
    }

    async fn stop_qemu(&self, qemu: &FoundQemu) {
        let _ = process::kill(qemu.pid, qemu.start_time);
        if !process::wait_gone(qemu.pid, qemu.start_time, Duration::from_secs(10)).await {
            tracing::warn!(pid = qemu.pid, "QEMU did not exit after SIGKILL");
        }
        let _ = std::fs::remove_dir_all(&qemu.run_dir);
    }
}

/// The found QEMU that belongs to `row`: the one in the run directory its runtime row names
/// (with the recorded pid when there is one), or the recorded process if `/proc` still has
/// it under another command line.
fn claim(found: &mut Vec<FoundQemu>, row: &VmRow) -> Option<FoundQemu> {
    let rt = row.runtime.as_ref()?;
    let dir = Path::new(&rt.run_dir);
    let ours = |f: &FoundQemu| {
        f.run_dir == dir && (rt.pid == 0 || (f.pid == rt.pid && f.start_time == rt.pid_start_time))
    };
    if let Some(at) = found.iter().position(ours) {
        return Some(found.remove(at));
    }
    (rt.pid != 0 && process::is_same_process(rt.pid, rt.pid_start_time)).then(|| FoundQemu {
        pid: rt.pid,
        start_time: rt.pid_start_time,
        run_dir: dir.to_path_buf(),
    })
}
