//! `vm.start`: from a stopped VM to a running QEMU, with no moment at which a QEMU exists that
//! the store does not account for.
//!
//! Order of a start, each step recorded before the next:
//! 1. `stopped|crashed → starting` (the intent), in the transaction that checks the owner's
//!    quotas and the host's memory (`quota`): a refused start changes nothing.
//! 2. A runtime row naming a fresh run directory `<run_dir>/<vm id>.<start token>` with no
//!    pid yet. QEMU's socket paths live there, so its command line carries the token.
//! 3. Spawn QEMU; record its pid and start time at once.
//! 4. QMP handshake; the monitor takes over the process; `starting → running`.
//!
//! A failure at any step kills what was spawned and records `stopped` with the reason. A vmd
//! killed at any step leaves a row that start-up adoption (`adopt`) resolves: a QEMU found in
//! `/proc` by its run directory is adopted, none means the start never happened.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use vm_proto::types::{Vm, VmState};

use super::{now_secs, Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::qemu::argv::{Accel, GuestRam, QemuConfig};
use crate::qemu::process;
use crate::qemu::qmp::{Qmp, QmpEvent};
use crate::store::{self, RuntimeRow, VmRow};

/// OVMF as Debian's `ovmf` package installs it (one image, no separate variable store).
pub const UEFI_FIRMWARE: &str = "/usr/share/ovmf/OVMF.fd";

/// How long QEMU may take to open its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl Manager {
    /// `vm.start`.
    pub async fn start_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Operate, "start")
            .await?;
        self.settle_if_gone(name).await?;
        let row = self
            .require(
                name,
                &[VmState::Stopped, VmState::Crashed],
                "it is already running",
            )
            .await?;
        self.check_space_floor("start a vm").await?;
        self.admit_start(name).await?;
        let run_dir = self.new_run_dir(row.id);
        if let Err(err) = self.launch(&row, &run_dir).await {
            let reason = match &err {
                Error::StartFailed { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            self.note(name, &format!("start failed: {reason}"));
            self.abandon_start(&row, &run_dir, reason).await?;
            return Err(err);
        }
        self.vm(name).await
    }

    /// A fresh run directory path for one start of VM `id`.
    fn new_run_dir(&self, id: i64) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let token =
            nanos ^ (u64::from(std::process::id()) << 40) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
        self.config.run_dir.join(format!("{id}.{token:x}"))
    }

    async fn launch(&self, row: &VmRow, run_dir: &Path) -> Result<(), Error> {
        self.check_networks(row)?;
        self.check_template_ram(row).await?;
        let mut config = self.qemu_config(row, run_dir)?;
        let mut runtime_row = RuntimeRow {
            pid: 0,
            pid_start_time: 0,
            accelerator: config.accel.as_str().into(),
            started_at: now_secs(),
            run_dir: run_dir.display().to_string(),
        };
        self.record_runtime(row.id, &runtime_row).await?;
        // After the runtime row: a vmd killed now leaves a run directory adoption removes.
        config.seed = self.seed_for(row, run_dir).await?;
        let qemu_log = self.logs_dir(&row.name).join("qemu.log");
        self.rotate_console_log(&row.name);
        self.note(&row.name, &starting_note(&config, row));
        let mut child = process::spawn(&config, &qemu_log)
            .map_err(|e| self.start_failed(row, e.to_string()))?;
        runtime_row.pid = child.id().unwrap_or(0);
        runtime_row.pid_start_time = process::start_time(runtime_row.pid).unwrap_or(0);
        let recorded = self.record_runtime(row.id, &runtime_row).await;
        let handshake = match recorded {
            Ok(()) => self.handshake(&config).await,
            Err(err) => Err(err.to_string()),
        };
        let restoring = matches!(config.ram, GuestRam::Restore(_));
        let handshake = match handshake {
            Ok((qmp, events)) if restoring => self.restore(row, qmp).await.map(|qmp| (qmp, events)),
            Ok((qmp, events)) if config.net.starts_paused() => {
                self.release(row, qmp).await.map(|qmp| (qmp, events))
            }
            other => other,
        };
        let (qmp, events) = match handshake {
            Ok(ok) => ok,
            Err(why) => {
                let reason = exit_reason(&mut child, &qemu_log, why).await;
                return Err(match restoring {
                    true => self.restore_failed(row, reason),
                    false => self.start_failed(row, reason),
                });
            }
        };
        let (pid, start_time) = (runtime_row.pid, runtime_row.pid_start_time);
        let rt = self.attach_monitor(row, qmp, events, Some(child), pid, start_time, run_dir);
        if let Err(err) = self.transition(&row.name, VmState::Running, None).await {
            // The monitor owns the process now: end it, and it records the exit.
            let _ = rt.qmp.quit().await;
            let _ = process::kill(pid, start_time);
            super::runtime::wait_gone(&rt.gone, Duration::from_secs(10)).await;
            return Err(err);
        }
        tracing::info!(vm = %row.name, pid, accel = config.accel.as_str(), "vm started");
        Ok(())
    }

    async fn record_runtime(&self, id: i64, runtime: &RuntimeRow) -> Result<(), Error> {
        let runtime = runtime.clone();
        self.db(move |s| Ok(s.with_tx_retry(|tx| store::set_runtime(tx, id, &runtime))?))
            .await
    }

    /// Undoes a failed start: no runtime row, no run directory, `stopped` with the reason.
    async fn abandon_start(
        &self,
        row: &VmRow,
        run_dir: &Path,
        reason: String,
    ) -> Result<(), Error> {
        let id = row.id;
        let cleared = self
            .db(move |s| Ok(s.with_tx_retry(|tx| store::clear_runtime(tx, id))?))
            .await;
        let _ = std::fs::remove_dir_all(run_dir);
        // A VM whose monitor already recorded the exit is no longer `starting`.
        if self.find_vm(&row.name).await?.map(|r| r.state) == Some(VmState::Starting) {
            self.transition(&row.name, VmState::Stopped, Some(reason))
                .await?;
        }
        cleared
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
            Ok(status) if status.is_up() => Ok((qmp, events)),
            Ok(other) => Err(format!("QEMU run state {other:?}")),
            Err(e) => Err(format!("QMP query-status failed: {e}")),
        }
    }

    /// A VM with lab NICs starts paused: its taps join their bridges, then it runs.
    pub(super) async fn release(&self, row: &VmRow, qmp: Qmp) -> Result<Qmp, String> {
        self.attach_taps(row).await?;
        qmp.cont()
            .await
            .map_err(|e| format!("QMP cont failed: {e}"))?;
        Ok(qmp)
    }

    /// The networks of `row`'s NICs are up on the host (a start never puts a tap on a
    /// bridge that is not there).
    fn check_networks(&self, row: &VmRow) -> Result<(), Error> {
        match row.nics.iter().find(|n| self.spec(n.network_id).is_none()) {
            Some(nic) => Err(self.start_failed(
                row,
                format!("network {} is not set up on the host", nic.network_name),
            )),
            None => Ok(()),
        }
    }

    fn start_failed(&self, row: &VmRow, reason: String) -> Error {
        Error::StartFailed {
            name: row.name.clone(),
            reason,
        }
    }

    fn qemu_config(&self, row: &VmRow, run_dir: &Path) -> Result<QemuConfig, Error> {
        let logs = self.logs_dir(&row.name);
        // Sockets are created by QEMU before it drops to the unprivileged user and are used
        // only by vmd: nobody else needs to enter the run directory.
        for (dir, mode) in [(run_dir, 0o700), (logs.as_path(), 0o750)] {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
                .map_err(|e| {
                    self.start_failed(row, format!("cannot create {}: {e}", dir.display()))
                })?;
        }
        Ok(QemuConfig {
            name: row.name.clone(),
            cpus: row.cpus,
            memory_mib: row.memory_mib,
            ram: self.guest_ram(row),
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
            net: crate::qemu::netargs::NetArgs {
                user_net: row.user_net,
                ports: row.ports.clone(),
                taps: self.taps_of(row),
            },
            runas: self.config.qemu_user.clone(),
            sandbox: self.config.sandbox,
            cdrom: row
                .iso
                .as_ref()
                .map(|(_, _, file)| self.storage.iso_path(file)),
            cd_first: row.install,
            uefi_firmware: (row.firmware == "uefi").then(|| UEFI_FIRMWARE.into()),
            seed: None,
            agent_socket: run_dir.join("agent"),
        })
    }
}

fn starting_note(config: &QemuConfig, row: &VmRow) -> String {
    format!(
        "starting QEMU ({}, {} vCPU, {} MiB)",
        config.accel.as_str(),
        row.cpus,
        row.memory_mib
    )
}

/// Why a start failed: QEMU's own exit status and last words when it has exited (it often
/// opens QMP before it fails on a disk), else `why`, after killing the half-started QEMU.
async fn exit_reason(child: &mut tokio::process::Child, qemu_log: &Path, why: String) -> String {
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
