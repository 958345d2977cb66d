//! The per-VM monitor: one task per QEMU process. It turns QMP events into state changes and
//! events, and on process exit records the outcome (`stopped` or `crashed` with a reason),
//! forgets the runtime and cleans the run directory. A hung QEMU never blocks it beyond the
//! QMP call timeouts, and it never blocks other VMs.

use std::sync::Arc;

use tokio::process::Child;
use tokio::sync::{broadcast, watch};
use vm_proto::types::{EventKind, VmState};

use super::events::Draft;
use super::runtime::Runtime;
use super::Manager;
use crate::qemu::process;
use crate::qemu::qmp::{Qmp, QmpEvent, RunState};
use crate::store::{self, VmRow};

/// Why a VM is paused after QEMU stopped it on a failed disk write.
pub(super) const IO_ERROR_REASON: &str = "QEMU paused the guest: a disk write failed (is the state file system full?); free space, then `vmctl resume`";

/// How often a running VM's console log is checked against its size cap.
const ROTATE_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// How a QEMU process ended.
enum Exit {
    /// We were its parent and saw its status.
    Status(std::process::ExitStatus),
    /// It was adopted after a vmd restart; the status is not ours to see.
    Unknown,
}

/// What the monitor learned from QMP before the exit.
#[derive(Default)]
struct Seen {
    /// The guest shut itself down (SHUTDOWN event).
    shutdown: bool,
    /// The monitor decided the VM failed (internal error, guest panic).
    crash: Option<String>,
}

impl Manager {
    /// Registers the runtime and spawns its monitor task.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attach_monitor(
        &self,
        row: &VmRow,
        qmp: Qmp,
        events: broadcast::Receiver<QmpEvent>,
        child: Option<Child>,
        pid: u32,
        start_time: u64,
        run_dir: &std::path::Path,
    ) -> Arc<Runtime> {
        let (gone_tx, gone_rx) = watch::channel(false);
        let rt = Arc::new(Runtime {
            qmp: qmp.clone(),
            pid,
            start_time,
            gone: gone_rx,
            console: Default::default(),
            run_dir: run_dir.to_path_buf(),
            guest: Default::default(),
        });
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(row.name.clone(), rt.clone());
        let Some(me) = self.me.upgrade() else {
            return rt;
        };
        me.clone().spawn_guest_poller(row.name.clone(), rt.clone());
        let (name, id, watched) = (row.name.clone(), row.id, rt.clone());
        tokio::spawn(async move {
            let (exit, seen) = me.watch(&name, watched.clone(), events, child).await;
            me.finish(&name, id, &watched.run_dir, exit, seen).await;
            let _ = gone_tx.send(true);
        });
        rt
    }

    async fn watch(
        &self,
        name: &str,
        rt: Arc<Runtime>,
        mut events: broadcast::Receiver<QmpEvent>,
        mut child: Option<Child>,
    ) -> (Exit, Seen) {
        let mut seen = Seen::default();
        let mut qmp_open = true;
        let mut rotate = tokio::time::interval(ROTATE_CHECK);
        loop {
            tokio::select! {
                _ = rotate.tick() => self.rotate_console_log(name),
                status = wait_child(&mut child) => return (status.map(Exit::Status).unwrap_or(Exit::Unknown), seen),
                ev = events.recv(), if qmp_open => match ev {
                    Ok(ev) => self.on_event(name, &rt, &ev, &mut seen).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => qmp_open = false,
                },
                _ = rt.qmp.closed(), if child.is_none() => {
                    process::wait_gone(rt.pid, rt.start_time, std::time::Duration::from_secs(30)).await;
                    return (Exit::Unknown, seen);
                }
            }
        }
    }

    async fn on_event(&self, name: &str, rt: &Runtime, ev: &QmpEvent, seen: &mut Seen) {
        match ev.event.as_str() {
            "STOP" => {
                let status = rt.qmp.query_status().await.map(|s| s.status);
                if matches!(status, Ok(RunState::IoError)) {
                    self.io_error_pause(name).await;
                } else if matches!(status, Ok(RunState::InternalError)) {
                    self.fail(
                        name,
                        rt,
                        seen,
                        "QEMU run state internal-error: the accelerator could not run the guest",
                    )
                    .await;
                } else if !matches!(status, Ok(RunState::Running | RunState::Paused))
                    && self
                        .transition_if(name, VmState::Running, VmState::Paused)
                        .await
                {
                    self.note(name, "guest paused");
                }
            }
            // vmd is QEMU's only QMP client and records `stop` and `cont` before it sends
            // them, so `RESUME` (and `STOP` with status `paused`) only echo what is recorded.
            // Acting on them would let a late echo undo a newer request (a resume followed at
            // once by a pause). Only stops QEMU makes itself (I/O error, watchdog, suspend,
            // internal error) are recorded here.
            "RESUME" => {}
            "SHUTDOWN" => {
                seen.shutdown = true;
                let reason = ev
                    .data
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("unknown");
                self.note(name, &format!("guest shut down ({reason})"));
            }
            "RESET" => {
                self.note(name, "guest reset");
                let _ = self
                    .events
                    .emit(Draft::vm(EventKind::Reset, name, "guest reset"))
                    .await;
            }
            "GUEST_PANICKED" => {
                let _ = self
                    .events
                    .emit(Draft::vm(EventKind::GuestPanicked, name, "guest panicked"))
                    .await;
                self.fail(name, rt, seen, "guest panicked").await;
            }
            _ => tracing::debug!(vm = %name, event = %ev.event, "qmp event"),
        }
    }

    /// QEMU paused the guest because a disk write failed (the state file system is full):
    /// recorded as `paused` with the reason, so the user knows to free space and resume.
    async fn io_error_pause(&self, name: &str) {
        self.note(name, IO_ERROR_REASON);
        let _ = self
            .transition(name, VmState::Paused, Some(IO_ERROR_REASON.into()))
            .await;
    }

    /// Marks the VM as failed and ends its QEMU: a failed guest must not linger half-alive.
    async fn fail(&self, name: &str, rt: &Runtime, seen: &mut Seen, reason: &str) {
        self.note(name, reason);
        seen.crash = Some(reason.to_string());
        let _ = process::kill(rt.pid, rt.start_time);
    }

    async fn finish(&self, name: &str, id: i64, run_dir: &std::path::Path, exit: Exit, seen: Seen) {
        let state = self.find_vm(name).await.ok().flatten().map(|r| r.state);
        let clean = match &exit {
            Exit::Status(s) => s.success(),
            Exit::Unknown => true,
        };
        let how = match &exit {
            Exit::Status(s) => format!("QEMU {}", process::describe_exit(*s)),
            Exit::Unknown => "QEMU exited (status unknown: started by an earlier vmd)".into(),
        };
        let (to, reason) = match (seen.crash, state) {
            (Some(crash), _) => (VmState::Crashed, Some(crash)),
            (None, Some(VmState::Stopping)) => (VmState::Stopped, None),
            (None, _) if seen.shutdown && clean => (VmState::Stopped, None),
            (None, _) => (VmState::Crashed, Some(self.crash_reason(name, &how))),
        };
        self.note(name, &format!("{how}; vm is {to}"));
        if let Err(err) = self
            .db(move |s| Ok(s.with_tx_retry(|tx| store::clear_runtime(tx, id))?))
            .await
        {
            tracing::warn!(vm = %name, error = %err, "cannot clear the runtime record");
        }
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let _ = std::fs::remove_dir_all(run_dir);
        if let Err(err) = self.transition(name, to, reason.clone()).await {
            tracing::warn!(vm = %name, error = %err, "cannot record exit");
        }
        match to {
            VmState::Crashed => {
                tracing::warn!(vm = %name, reason = reason.as_deref().unwrap_or(""), "vm crashed")
            }
            _ => tracing::info!(vm = %name, "vm stopped"),
        }
    }

    fn crash_reason(&self, name: &str, how: &str) -> String {
        let tail = process::tail(&self.logs_dir(name).join("qemu.log"), 512);
        match tail.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("{how}; QEMU said: {}", last.trim()),
            None => how.to_string(),
        }
    }
}

async fn wait_child(child: &mut Option<Child>) -> Option<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await.ok(),
        None => std::future::pending().await,
    }
}
