//! VM types and the one definition of VM states and their valid transitions.

use serde::{Deserialize, Serialize};

/// Most vCPUs a VM may have.
pub const CPUS_MAX: u32 = 64;
/// Least memory a VM may have, in MiB.
pub const MEMORY_MIB_MIN: u64 = 64;

/// Lifecycle state of a VM. The daemon persists it; see `docs/lifecycle.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Defined, no QEMU process. Disk operations are allowed only here (and in `crashed`).
    Stopped,
    /// QEMU is being spawned and has not yet reported `running` over QMP.
    Starting,
    /// QEMU reports the guest running.
    Running,
    /// The guest's vCPUs are paused; QEMU is alive.
    Paused,
    /// A stop was requested and the daemon waits for QEMU to exit.
    Stopping,
    /// QEMU exited unexpectedly or reported an internal error; no process remains.
    Crashed,
}

impl VmState {
    /// Every state, for documentation and tests.
    pub const ALL: [VmState; 6] = [
        VmState::Stopped,
        VmState::Starting,
        VmState::Running,
        VmState::Paused,
        VmState::Stopping,
        VmState::Crashed,
    ];

    /// The snake_case name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Stopped => "stopped",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Stopping => "stopping",
            VmState::Crashed => "crashed",
        }
    }

    /// Parses [`VmState::as_str`] back.
    pub fn parse(text: &str) -> Option<VmState> {
        VmState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the transition `self -> to` is valid. The single place that decides it.
    pub fn can_transition_to(self, to: VmState) -> bool {
        use VmState::*;
        match (self, to) {
            (Stopped | Crashed, Starting) => true,
            (Starting, Running | Paused | Stopped | Crashed) => true,
            (Running, Paused | Stopping | Stopped | Crashed) => true,
            (Paused, Running | Stopping | Stopped | Crashed) => true,
            (Stopping, Stopped | Crashed | Running) => true,
            (Crashed, Stopped) => true,
            _ => false,
        }
    }

    /// Whether a QEMU process may exist for the VM.
    pub fn has_process(self) -> bool {
        matches!(
            self,
            VmState::Starting | VmState::Running | VmState::Paused | VmState::Stopping
        )
    }

    /// Whether the VM's disk may be changed, wiped or deleted (no process holds it).
    pub fn can_modify_disk(self) -> bool {
        !self.has_process()
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameters of `vm.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmCreate {
    /// Unique VM name (a DNS label).
    pub name: String,
    /// Name of the base image the overlay is backed by.
    pub image: String,
    /// Number of vCPUs, 1 to [`CPUS_MAX`]. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Guest memory in MiB, [`MEMORY_MIB_MIN`] to the host's memory. Default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Virtual disk size in bytes; at least the base's virtual size (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

/// A VM as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// Unique name.
    pub name: String,
    /// Lifecycle state.
    pub state: VmState,
    /// Name of the base image.
    pub image: String,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Virtual size of the VM's disk in bytes.
    pub disk_bytes: u64,
    /// Bytes the overlay occupies on the host (what this VM has written).
    pub disk_usage_bytes: u64,
    /// Uid of the user who created the VM.
    pub owner_uid: u32,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Absolute path of the overlay on the host (daemon-owned; for admins).
    pub overlay_path: String,
}
