//! Running VMs: stop, reboot, pause, resume and the console (start is in `launch`).
//!
//! Division of labour: an operation (holding the VM's name lock) makes the request-side
//! transitions (`stopped → starting → running`, `running → stopping`, pause/resume); the
//! monitor task, which owns the QEMU process, makes every exit-side transition
//! (`→ stopped` / `→ crashed`) and answers QMP events. Transitions are compare-and-set on the
//! stored state ([`Manager::transition`]), so the two never step on each other. An operation
//! waits for the monitor through the runtime's `gone` flag, never for a lock the monitor holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vm_proto::types::{EventKind, Vm, VmState, VmStop};

use super::events::Draft;
use super::state::WITH_PROCESS;
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::qemu::process;
use crate::qemu::qmp::Qmp;

/// States a stop accepts (a graceful stop in `stopping` waits for the forced stop ending it).
const STOPPABLE: [VmState; 3] = [VmState::Running, VmState::Paused, VmState::Stopping];

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
    /// The serial console's client, if any.
    pub console: super::console::ConsoleSlot,
    /// Its socket directory (`<run_dir>/<vm id>.<start token>`).
    pub run_dir: PathBuf,
    /// The guest agent's latest answer (kept by the guest poller).
    pub guest: super::guest::GuestSlot,
}

impl Manager {
    /// `vm.stop`. A forced stop takes no lock: it must be able to cut short a graceful stop
    /// that is waiting for an unresponsive guest. A stop that loses a race with another stop
    /// still returns success once the VM is down: the VM did stop.
    pub async fn stop_vm(&self, subject: &Subject, req: VmStop) -> Result<Vm, Error> {
        let name = req.name.as_str();
        self.vm_for(subject, name, Action::Operate).await?;
        if req.force {
            return self.force_stop_now(name).await;
        }
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Operate, "stop")
            .await?;
        let row = self
            .require(name, &STOPPABLE, "there is nothing to stop")
            .await?;
        let Some(rt) = self.runtime(name) else {
            return self.stopped_meanwhile(name).await;
        };
        if row.state == VmState::Stopping || !self.begin_stop(name).await? {
            // A forced stop is ending it (or already has).
            return self.await_stop(name, &rt).await;
        }
        let timeout =
            Duration::from_secs(req.timeout_secs.unwrap_or(self.config.stop_timeout_secs));
        if !self.powerdown(name, &rt, timeout).await? {
            self.force_stop(name, &rt).await?;
        }
        self.vm(name).await
    }

    pub(super) async fn force_stop_now(&self, name: &str) -> Result<Vm, Error> {
        self.require(name, &STOPPABLE, "there is nothing to stop")
            .await?;
        let Some(rt) = self.runtime(name) else {
            return self.stop_unmanaged(name).await;
        };
        if !self.begin_stop(name).await? {
            return self.await_stop(name, &rt).await;
        }
        self.note(name, "forced stop requested");
        self.force_stop(name, &rt).await?;
        self.vm(name).await
    }

    /// The VM's process went away between the state check and now (or vmd could not adopt
    /// it): success once it is down.
    async fn stopped_meanwhile(&self, name: &str) -> Result<Vm, Error> {
        self.settle_if_gone(name).await?;
        let vm = self.vm(name).await?;
        match vm.state.has_process() {
            true => Err(Error::NoProcess(name.into())),
            false => Ok(vm),
        }
    }

    /// `→ stopping`; `false` when another stop got there first (the VM is no longer running
    /// or paused), any other failure is the caller's.
    pub(super) async fn begin_stop(&self, name: &str) -> Result<bool, Error> {
        match self.transition(name, VmState::Stopping, None).await {
            Ok(_) => Ok(true),
            Err(Error::Transition { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Another stop is ending the VM: wait for it like that stop does.
    async fn await_stop(&self, name: &str, rt: &Runtime) -> Result<Vm, Error> {
        let limit = Duration::from_secs(self.config.stop_timeout_secs) + FORCE_WAIT * 2;
        if !wait_gone(&rt.gone, limit).await {
            return Err(Error::StopFailed {
                name: name.into(),
                pid: rt.pid,
            });
        }
        self.vm(name).await
    }

    /// ACPI power-down and wait; `true` if the guest powered off in time.
    async fn powerdown(&self, name: &str, rt: &Runtime, timeout: Duration) -> Result<bool, Error> {
        match rt.qmp.system_powerdown().await {
            Ok(()) => {
                self.note(name, "ACPI power button pressed");
                let msg = format!("ACPI power-down sent; forcing in {} s", timeout.as_secs());
                self.events
                    .emit(Draft::vm(EventKind::PowerdownSent, name, msg))
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

    pub(super) async fn force_stop(&self, name: &str, rt: &Runtime) -> Result<(), Error> {
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

    /// `vm.reboot`. A reboot that races a stop fails with `wrong_state`.
    pub async fn reboot_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Operate, "reboot")
            .await?;
        let running = [VmState::Running, VmState::Paused];
        self.require(name, &running, "start it first (vmctl start)")
            .await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        if let Err(source) = rt.qmp.system_reset().await {
            return Err(self.qmp_failed(name, &rt, source).await);
        }
        self.note(name, "hardware reset requested");
        let vm = self.vm(name).await?;
        if !running.contains(&vm.state) {
            return Err(Error::WrongState {
                name: name.into(),
                state: vm.state,
                action: "it was being stopped while the reboot was requested",
            });
        }
        Ok(vm)
    }

    /// `vm.pause`.
    pub async fn pause_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let why = "only a running vm can be paused";
        self.switch(
            subject,
            name,
            "pause",
            (VmState::Running, VmState::Paused),
            why,
        )
        .await
    }

    /// `vm.resume`.
    pub async fn resume_vm(&self, subject: &Subject, name: &str) -> Result<Vm, Error> {
        let why = "only a paused vm can be resumed";
        self.switch(
            subject,
            name,
            "resume",
            (VmState::Paused, VmState::Running),
            why,
        )
        .await
    }

    /// Pause or resume: `from → to` is recorded first (compare-and-set), then QEMU is told
    /// (`stop` / `cont`); if QEMU refuses, the record is undone.
    async fn switch(
        &self,
        subject: &Subject,
        name: &str,
        operation: &'static str,
        (from, to): (VmState, VmState),
        why: &'static str,
    ) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, name, Action::Operate, operation)
            .await?;
        self.require(name, &[from], why).await?;
        let rt = self
            .runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))?;
        self.transition_from(name, from, to, why).await?;
        let told = match to {
            VmState::Paused => rt.qmp.stop().await,
            _ => rt.qmp.cont().await,
        };
        if let Err(source) = told {
            let _ = self.transition_from(name, to, from, why).await;
            return Err(self.qmp_failed(name, &rt, source).await);
        }
        self.vm_now(name, to).await
    }

    /// The VM if it is `expected` now; `wrong_state` when a racing stop overtook the request
    /// (the caller must not be told `paused` or `running` when it is already `stopping`).
    async fn vm_now(&self, name: &str, expected: VmState) -> Result<Vm, Error> {
        let vm = self.vm(name).await?;
        if vm.state != expected {
            return Err(Error::WrongState {
                name: name.into(),
                state: vm.state,
                action: "it was being stopped meanwhile",
            });
        }
        Ok(vm)
    }

    /// A QMP command failed: `wrong_state` when the VM is being stopped or its QEMU is gone (a
    /// race with a stop, not a failure of vmd), else the QMP error.
    async fn qmp_failed(
        &self,
        name: &str,
        rt: &Runtime,
        source: crate::qemu::qmp::QmpError,
    ) -> Error {
        let stopping = self
            .find_vm(name)
            .await
            .ok()
            .flatten()
            .map(|r| r.state)
            .filter(|s| !matches!(s, VmState::Running | VmState::Paused));
        match (stopping, *rt.gone.borrow() || rt.qmp.is_closed()) {
            (Some(state), _) => Error::WrongState {
                name: name.into(),
                state,
                action: "it was being stopped meanwhile",
            },
            (None, true) => Error::WrongState {
                name: name.into(),
                state: VmState::Stopping,
                action: "its QEMU exited meanwhile",
            },
            (None, false) => Error::Qmp {
                name: name.into(),
                source,
            },
        }
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

/// Waits until the runtime reports its process gone, at most `timeout`.
pub(super) async fn wait_gone(gone: &watch::Receiver<bool>, timeout: Duration) -> bool {
    let mut rx = gone.clone();
    let reached = tokio::time::timeout(timeout, rx.wait_for(|g| *g)).await;
    matches!(reached, Ok(Ok(_)))
}

impl Manager {
    /// The VNC socket of a running VM, for a client of `subject` (several may view at once).
    pub async fn vnc_socket(&self, subject: &Subject, name: &str) -> Result<PathBuf, Error> {
        let runtime = self.attachable(subject, name).await?;
        Ok(runtime.run_dir.join("vnc"))
    }

    /// The runtime of `name` for a console client of `subject`: allowed to operate it, and
    /// its QEMU running.
    pub(super) async fn attachable(
        &self,
        subject: &Subject,
        name: &str,
    ) -> Result<Arc<Runtime>, Error> {
        self.vm_for(subject, name, Action::Operate).await?;
        self.require(name, &WITH_PROCESS, "start it first (vmctl start)")
            .await?;
        self.runtime(name)
            .ok_or_else(|| Error::NoProcess(name.into()))
    }
}
