//! Typed helpers for the QMP commands vmd uses.

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Qmp, QmpError};

/// QEMU's run state (`RunState` in the QAPI schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// The guest is running.
    Running,
    /// Stopped by `stop` (or `-S`).
    Paused,
    /// An accelerator error stopped the guest (e.g. KVM emulation failure); QEMU stays up.
    InternalError,
    /// The guest shut down and QEMU was told not to exit (`-no-shutdown`).
    Shutdown,
    /// The guest reported a panic.
    GuestPanicked,
    /// Waiting for `cont` before the first run.
    Prelaunch,
    /// Waiting for an incoming migration.
    Inmigrate,
    /// Stopped by a disk I/O error.
    IoError,
    /// Stopped by the watchdog.
    Watchdog,
    /// The guest is suspended (ACPI S3).
    Suspended,
    /// Finishing an outgoing migration.
    FinishMigrate,
    /// An outgoing migration finished.
    Postmigrate,
    /// Saving a snapshot.
    SaveVm,
    /// Restoring a snapshot.
    RestoreVm,
    /// Stopped by the gdb stub.
    Debug,
    /// COLO fault tolerance.
    Colo,
    /// A state this client does not know.
    #[serde(other)]
    Other,
}

impl RunState {
    /// Whether a freshly spawned QEMU is up: it runs a guest, holds one paused (also before
    /// the first instruction, `-S`), or waits for a saved state (`-incoming`).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            RunState::Running | RunState::Paused | RunState::Prelaunch | RunState::Inmigrate
        )
    }

    /// Whether the guest is stopped in a way `cont` ends: paused, or saved by a migration
    /// that completed (a template's source whose QEMU vmd did not see quit).
    pub fn is_resumable_pause(self) -> bool {
        matches!(self, RunState::Paused | RunState::Postmigrate)
    }

    /// The QMP spelling (`other` for unknown states).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::InternalError => "internal-error",
            RunState::Shutdown => "shutdown",
            RunState::GuestPanicked => "guest-panicked",
            RunState::Prelaunch => "prelaunch",
            RunState::Inmigrate => "inmigrate",
            RunState::IoError => "io-error",
            RunState::Watchdog => "watchdog",
            RunState::Suspended => "suspended",
            RunState::FinishMigrate => "finish-migrate",
            RunState::Postmigrate => "postmigrate",
            RunState::SaveVm => "save-vm",
            RunState::RestoreVm => "restore-vm",
            RunState::Debug => "debug",
            RunState::Colo => "colo",
            RunState::Other => "other",
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reply to `add-fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AddFdInfo {
    /// The fd set the descriptor went into.
    #[serde(rename = "fdset-id")]
    pub fdset_id: i64,
    /// QEMU's number for its copy of the descriptor.
    pub fd: i64,
}

/// The reply to `query-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StatusInfo {
    /// The run state.
    pub status: RunState,
    /// True when vCPUs are running.
    pub running: bool,
}

impl Qmp {
    /// `query-status`.
    pub async fn query_status(&self) -> Result<StatusInfo, QmpError> {
        self.call("query-status", None).await
    }

    /// `system_powerdown`: presses the ACPI power button. The guest decides what happens.
    pub async fn system_powerdown(&self) -> Result<(), QmpError> {
        self.call_unit("system_powerdown").await
    }

    /// `system_reset`: a hard reset (a `RESET` event follows).
    pub async fn system_reset(&self) -> Result<(), QmpError> {
        self.call_unit("system_reset").await
    }

    /// `stop`: pauses the vCPUs (a `STOP` event follows).
    pub async fn stop(&self) -> Result<(), QmpError> {
        self.call_unit("stop").await
    }

    /// `human-monitor-command`: runs an HMP command line (for what QMP lacks, such as
    /// `hostfwd_add`); returns HMP's output, which is where HMP reports its errors.
    pub async fn hmp(&self, command_line: &str) -> Result<String, QmpError> {
        let args = serde_json::json!({ "command-line": command_line });
        let out = self.execute("human-monitor-command", Some(args)).await?;
        Ok(out.as_str().unwrap_or_default().trim().to_string())
    }

    /// `cont`: resumes the vCPUs (a `RESUME` event follows).
    pub async fn cont(&self) -> Result<(), QmpError> {
        self.call_unit("cont").await
    }

    /// `quit`: QEMU exits at once. QEMU may close the connection before replying, so a
    /// closed connection counts as success.
    pub async fn quit(&self) -> Result<(), QmpError> {
        match self.call_unit("quit").await {
            Ok(()) | Err(QmpError::Closed) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `add-fd`: passes `fd` into a new fd set (tagged `opaque`, shown by `query-fdsets`).
    pub async fn add_fd(&self, fd: OwnedFd, opaque: &str) -> Result<AddFdInfo, QmpError> {
        let value = self
            .execute_with_fd("add-fd", Some(json!({"opaque": opaque})), fd)
            .await?;
        decode("add-fd", value)
    }

    /// `remove-fd` of a whole fd set: QEMU closes its copies that no device uses (while the
    /// guest runs; a paused QEMU closes them at its next fd-set clean-up), and frees the set
    /// once the last duplicate a device opened from it is closed.
    pub async fn remove_fdset(&self, fdset_id: i64) -> Result<(), QmpError> {
        let args = json!({"fdset-id": fdset_id});
        self.execute("remove-fd", Some(args)).await.map(drop)
    }

    /// Inserts the read-only raw medium `file` into removable drive `device` (closing the
    /// tray), replacing any medium in it. QEMU gets the descriptor, not a path: after
    /// `-runas` it may be unable to open files under vmd's state directory. The descriptor
    /// goes through an fd set (`add-fd`, `blockdev-change-medium` on `/dev/fdset/N`, then
    /// `remove-fd`), so QEMU holds only the copy the medium uses, closed when it is ejected.
    pub async fn insert_medium(
        &self,
        device: &str,
        file: OwnedFd,
        opaque: &str,
    ) -> Result<(), QmpError> {
        let set = self.add_fd(file, opaque).await?;
        let args = json!({
            "id": device,
            "filename": format!("/dev/fdset/{}", set.fdset_id),
            "format": "raw",
            "read-only-mode": "read-only",
        });
        let changed = self.execute("blockdev-change-medium", Some(args)).await;
        // Whether or not the change worked, the set's own entry has done its job.
        if let Err(err) = self.remove_fdset(set.fdset_id).await {
            tracing::warn!(fdset = set.fdset_id, error = %err, "QMP remove-fd failed");
        }
        changed.map(drop)
    }

    /// `eject` with `force`: empties removable drive `device` even if the guest locked it
    /// (an empty drive is fine).
    pub async fn eject(&self, device: &str) -> Result<(), QmpError> {
        let args = json!({"id": device, "force": true});
        self.execute("eject", Some(args)).await.map(drop)
    }

    async fn call_unit(&self, command: &str) -> Result<(), QmpError> {
        self.execute(command, None).await.map(drop)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, QmpError> {
        let value = self.execute(command, arguments).await?;
        decode(command, value)
    }
}

fn decode<T: DeserializeOwned>(command: &str, value: Value) -> Result<T, QmpError> {
    serde_json::from_value(value).map_err(|source| QmpError::Decode {
        command: command.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn run_states_round_trip_their_spelling() {
        for name in [
            "running",
            "paused",
            "internal-error",
            "shutdown",
            "guest-panicked",
            "prelaunch",
            "inmigrate",
            "io-error",
            "watchdog",
            "suspended",
            "finish-migrate",
            "postmigrate",
            "save-vm",
            "restore-vm",
            "debug",
            "colo",
        ] {
            let state: RunState = serde_json::from_value(json!(name)).expect("known state");
            assert_eq!(state.as_str(), name);
        }
    }

    #[test]
    fn unknown_run_state_is_other() {
        let info: StatusInfo = serde_json::from_value(
            json!({"status": "time-travel", "running": false, "singlestep": false}),
        )
        .expect("status");
        assert_eq!(info.status, RunState::Other);
    }
}
