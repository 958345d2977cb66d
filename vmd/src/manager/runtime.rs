//! Running VMs: start, stop, reboot, pause, resume, and the per-VM monitor task.
//!
//! Division of labour: an operation (holding the VM's name lock) makes the request-side
//! transitions (`stopped → starting → running`, `running → stopping`, pause/resume); the
//! monitor task, which owns the QEMU process, makes every exit-side transition
//! (`→ stopped` / `→ crashed`) and answers QMP events. Transitions are compare-and-set on the
//! stored state ([`Manager::transition`]), so the two never step on each other. An operation
//! waits for the monitor through the runtime's `gone` flag, never for a lock the monitor holds.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use vm_proto::types::{EventKind, Vm, VmState, VmStop};

use super::events::Draft;
use super::{now_secs, Error, Manager};
use crate::qemu::argv::{Accel, QemuConfig};
use crate::qemu::process;
use crate::qemu::qmp::{Qmp, QmpEvent, RunState};
use crate::store::{self, RuntimeRow, VmRow};

/// OVMF as Debian's `ovmf` package installs it (one image, no separate variable store).
pub const UEFI_FIRMWARE: &str = "/usr/share/ovmf/OVMF.fd";

/// How long QEMU may take to open its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a forced stop waits for QEMU after `quit`, and again after SIGKILL.
const FORCE_WAIT: Duration = Duration::from_secs(5);

/// A VM's live QEMU process as the manager tracks it.
pub struct Runtime {
    /// QMP connection.
    pub qmp: Qmp,
    /// QEMU's pid.
    pub pid: u32,
    /// Its start time (pid reuse guard).
    pub start_time: u64,
    /// Becomes `true` once the process is gone and the exit transition is recorded.
    pub gone: watch::Receiver<bool>,
    /// Set while a console client is attached.
    pub console_busy: std::sync::atomic::AtomicBool,
}

impl Manager {
    /// `vm.start`.
    pub async fn start_vm(&self, name: &str) -> Result<Vm, Error> {
        let _guard = self.lock("vm", name, "start").await?;
        let row = self
            .require(
                name,
                &[VmState::Stopped, VmState::Crashed],
                "it is already running",
            )
            .await?;
        self.transition(name, VmState::Starting, None).await?;
        if let Err(err) = self.launch(&row).await {
            let reason = match &err {
                Error::StartFailed { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            self.note(name, &format!("start failed: {reason}"));
            self.transition(name, VmState::Stopped, Some(reason))
                .await?;
            return Err(err);
        }
        self.vm(name).await
    }

    async fn launch(self: &Manager, row: &VmRow) -> Result<(), Error> {
        let config = self.qemu_config(row)?;
        let qemu_log = self.logs_dir(&row.name).join("qemu.log");
        self.rotate_console_log(&row.name);
        self.note(
            &row.name,
            &format!(
                "starting QEMU ({}, {} vCPU, {} MiB)",
                config.accel.as_str(),
                row.cpus,
                row.memory_mib
            ),
        );
        let mut child = process::spawn(&config, &qemu_log)
            .map_err(|e| self.start_failed(row, e.to_string()))?;
        let pid = child.id().unwrap_or(0);
        let start_time = process::start_time(pid).unwrap_or(0);
        let (qmp, events) = match self.handshake(&config).await {
            Ok(ok) => ok,
            Err(why) => {
                return Err(self.start_failed(row, exit_reason(&mut child, &qemu_log, why).await))
            }
        };
        let runtime_row = RuntimeRow {
            pid,
            pid_start_time: start_time,
            accelerator: config.accel.as_str().into(),
            started_at: now_secs(),
            run_dir: config
                .qmp_socket
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        };
        let id = row.id;
        self.db(move |s| Ok(s.with_tx(|tx| store::set_runtime(tx, id, &runtime_row))?))
            .await?;
        self.attach_monitor(row, qmp, events, Some(child), pid, start_time);
        self.transition(&row.name, VmState::Running, None).await?;
        tracing::info!(vm = %row.name, pid, accel = config.accel.as_str(), "vm started");
        Ok(())
    }

    /// Connects QMP and checks that the guest runs; the error text says what went wrong.
    async fn handshake(
        &self,
        config: &QemuConfig,
    ) -> Result<(Qmp, broadcast::Receiver<QmpEvent>), String> {
        let qmp = Qmp::connect(&config.qmp_socket, QMP_CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("no QMP connection: {e}"))?;
        let events = qmp.events();
        match qmp.query_status().await.map(|s| s.status) {
            Ok(RunState::Running | RunState::Paused | RunState::Prelaunch) => Ok((qmp, events)),
            Ok(other) => Err(format!("QEMU run state {other:?}")),
            Err(e) => Err(format!("QMP query-status failed: {e}")),
        }
    }

    fn start_failed(&self, row: &VmRow, reason: String) -> Error {
        Error::StartFailed {
            name: row.name.clone(),
            reason,
        }
    }

    fn qemu_config(&self, row: &VmRow) -> Result<QemuConfig, Error> {
        let run_dir = self.config.run_dir.join(row.id.to_string());
        let logs = self.logs_dir(&row.name);
        // Sockets are created by QEMU before it drops to the unprivileged user and are used
        // only by vmd: nobody else needs to enter the run directory.
        for (dir, mode) in [(&run_dir, 0o700), (&logs, 0o750)] {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
                .map_err(|e| {
                    self.start_failed(row, format!("cannot create {}: {e}", dir.display()))
                })?;
        }
        for sock in ["qmp", "console", "vnc"] {
            let _ = std::fs::remove_file(run_dir.join(sock));
        }
        Ok(QemuConfig {
            name: row.name.clone(),
            cpus: row.cpus,
            memory_mib: row.memory_mib,
            accel: if self.config.accelerator.name == "kvm" {
                Accel::Kvm
            } else {
                Accel::Tcg
            },
            overlay: self.storage.overlay_path(&row.overlay_file),
            qmp_socket: run_dir.join("qmp"),
            console_socket: run_dir.join("console"),
            console_log: logs.join("console.log"),
            vnc_socket: run_dir.join("vnc"),
            ssh_port: row.ssh_port,
            runas: self.config.qemu_user.clone(),
            sandbox: self.config.sandbox,
            cdrom: row
                .iso
                .as_ref()
                .map(|(_, _, file)| self.storage.iso_path(file)),
            cd_first: row.install,
            uefi_firmware: (row.firmware == "uefi").then(|| UEFI_FIRMWARE.into()),
        })
    }

    /// `vm.stop`. A forced stop takes no lock: it must be able to cut short a graceful stop
    /// that is waiting for an unresponsive guest.
    pub async fn stop_vm(&self, req: VmStop) -> Result<Vm, Error> {
        let name = req.name.as_str();
        if req.force {
            return self.force_stop_now(name).await;
        }
        let _guard = self.lock("vm", name, "stop").await?;
        self.require(
            name,
            &[VmState::Running, VmState::Paused],
            "there is nothing to stop",
        )
        .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        self.transition(name, VmState::Stopping, None).await?;
        let timeout =
            Duration::from_secs(req.timeout_secs.unwrap_or(self.config.stop_timeout_secs));
        if !self.powerdown(name, &rt, timeout).await? {
            self.force_stop(name, &rt).await?;
        }
        self.vm(name).await
    }

    async fn force_stop_now(&self, name: &str) -> Result<Vm, Error> {
        let allowed = [VmState::Running, VmState::Paused, VmState::Stopping];
        self.require(name, &allowed, "there is nothing to stop")
            .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        self.transition(name, VmState::Stopping, None).await?;
        self.note(name, "forced stop requested");
        self.force_stop(name, &rt).await?;
        self.vm(name).await
    }

    /// ACPI power-down and wait; `true` if the guest powered off in time.
    async fn powerdown(&self, name: &str, rt: &Runtime, timeout: Duration) -> Result<bool, Error> {
        match rt.qmp.system_powerdown().await {
            Ok(()) => {
                self.note(name, "ACPI power button pressed");
                self.events
                    .emit(Draft::vm(
                        EventKind::PowerdownSent,
                        name,
                        "ACPI power-down sent",
                    ))
                    .await?;
            }
            Err(err) => {
                tracing::warn!(vm = %name, error = %err, "system_powerdown failed; forcing");
                return Ok(false);
            }
        }
        if wait_gone(&rt.gone, timeout).await {
            return Ok(true);
        }
        let msg = format!(
            "guest did not power off within {} s; forcing",
            timeout.as_secs()
        );
        self.note(name, &msg);
        self.events
            .emit(Draft::vm(EventKind::StopForced, name, msg))
            .await?;
        Ok(false)
    }

    async fn force_stop(&self, name: &str, rt: &Runtime) -> Result<(), Error> {
        if let Err(err) = rt.qmp.quit().await {
            tracing::debug!(vm = %name, error = %err, "quit failed; killing");
        }
        if wait_gone(&rt.gone, FORCE_WAIT).await {
            return Ok(());
        }
        let _ = process::kill(rt.pid, rt.start_time);
        if wait_gone(&rt.gone, FORCE_WAIT).await {
            return Ok(());
        }
        Err(Error::StopFailed {
            name: name.into(),
            pid: rt.pid,
        })
    }

    /// `vm.reboot`.
    pub async fn reboot_vm(&self, name: &str) -> Result<Vm, Error> {
        let _guard = self.lock("vm", name, "reboot").await?;
        self.require(
            name,
            &[VmState::Running, VmState::Paused],
            "start it first (vmctl start)",
        )
        .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        rt.qmp.system_reset().await.map_err(|e| Error::Qmp {
            name: name.into(),
            source: e,
        })?;
        self.note(name, "hardware reset requested");
        self.vm(name).await
    }

    /// `vm.pause`.
    pub async fn pause_vm(&self, name: &str) -> Result<Vm, Error> {
        let _guard = self.lock("vm", name, "pause").await?;
        self.require(name, &[VmState::Running], "only a running vm can be paused")
            .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        rt.qmp.stop().await.map_err(|e| Error::Qmp {
            name: name.into(),
            source: e,
        })?;
        self.transition(name, VmState::Paused, None).await?;
        self.vm(name).await
    }

    /// `vm.resume`.
    pub async fn resume_vm(&self, name: &str) -> Result<Vm, Error> {
        let _guard = self.lock("vm", name, "resume").await?;
        self.require(name, &[VmState::Paused], "only a paused vm can be resumed")
            .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        rt.qmp.cont().await.map_err(|e| Error::Qmp {
            name: name.into(),
            source: e,
        })?;
        self.transition(name, VmState::Running, None).await?;
        self.vm(name).await
    }

    /// The live runtime of `name`, if any.
    pub fn runtime(&self, name: &str) -> Option<Arc<Runtime>> {
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

/// Why a start failed: QEMU's own exit status and last words when it has exited (it often
/// opens QMP before it fails on a disk), else `why`, after killing the half-started QEMU.
async fn exit_reason(
    child: &mut tokio::process::Child,
    qemu_log: &std::path::Path,
    why: String,
) -> String {
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) => format!(
            "QEMU {}: {}",
            process::describe_exit(status),
            qemu_error(&process::tail(qemu_log, 4096))
        ),
        _ => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            why
        }
    }
}

/// QEMU's last error line without its timestamp, program name and echoed option value
/// (for a bad disk QEMU repeats the whole `-blockdev` JSON before the reason).
fn qemu_error(tail: &str) -> String {
    let line = tail
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error text");
    let line = line
        .split_once("qemu-system-x86_64: ")
        .map_or(line, |(_, rest)| rest);
    match line.rfind("}: ") {
        Some(at) if line.starts_with("-blockdev") => line[at + 3..].to_string(),
        _ => line.to_string(),
    }
}

/// Waits until the runtime reports its process gone, at most `timeout`.
pub(super) async fn wait_gone(gone: &watch::Receiver<bool>, timeout: Duration) -> bool {
    let mut rx = gone.clone();
    let reached = tokio::time::timeout(timeout, rx.wait_for(|g| *g)).await;
    matches!(reached, Ok(Ok(_)))
}

/// An exclusive console attachment; detaches on drop.
pub struct ConsoleAttach {
    runtime: Arc<Runtime>,
    socket: std::path::PathBuf,
}

impl ConsoleAttach {
    /// QEMU's console socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

impl Drop for ConsoleAttach {
    fn drop(&mut self) {
        self.runtime
            .console_busy
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Manager {
    /// Takes the console of a running VM for one client.
    pub async fn console_attach(&self, name: &str) -> Result<ConsoleAttach, Error> {
        let row = self
            .require(
                name,
                &[VmState::Running, VmState::Paused, VmState::Stopping],
                "start it first (vmctl start)",
            )
            .await?;
        let runtime = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        let taken = runtime.console_busy.compare_exchange(
            false,
            true,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
        if taken.is_err() {
            return Err(Error::ConsoleBusy(name.into()));
        }
        let socket = self.config.run_dir.join(row.id.to_string()).join("console");
        Ok(ConsoleAttach { runtime, socket })
    }
}

#[cfg(test)]
mod tests {
    use super::qemu_error;

    #[test]
    fn qemu_error_drops_echoed_blockdev_json() {
        let tail = "2026-11-22T07:00:00.1 qemu-system-x86_64: -blockdev {\"driver\":\"qcow2\",\"file\":{}}: Could not open '/x.qcow2': No such file or directory\n";
        assert_eq!(
            qemu_error(tail),
            "Could not open '/x.qcow2': No such file or directory"
        );
        assert_eq!(qemu_error("qemu-system-x86_64: -m 1: bad\n"), "-m 1: bad");
    }
}
