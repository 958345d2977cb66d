//! Daemon and host overview returned by `system.info`.

use serde::{Deserialize, Serialize};

/// Answer of `system.info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemInfo {
    /// Version of the vmd binary.
    pub daemon_version: String,
    /// [`crate::API_VERSION`] the daemon speaks.
    pub api_version: String,
    /// Process id of the daemon.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The socket the daemon serves.
    pub socket_path: String,
    /// The state directory (database, images, overlays).
    pub state_dir: String,
    /// Where base images live.
    pub images_dir: String,
    /// Where VM overlays live.
    pub overlays_dir: String,
    /// `qemu-img --version` first line, as found at start-up.
    pub qemu_img_version: String,
    /// Which accelerator VMs get on this host, and why.
    pub accelerator: Accelerator,
    /// Number of base images.
    pub image_count: u64,
    /// Number of defined VMs.
    pub vm_count: u64,
    /// Storage use.
    pub disk: DiskUsage,
    /// The host's CPUs, load and memory (added in API 2.2; absent from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostLoad>,
    /// Rows without files and files without rows found at start-up. Empty when consistent,
    /// and for callers who are not admins (the issues name other users' objects).
    pub issues: Vec<ConsistencyIssue>,
}

/// The host's load, read from `/proc` when `system.info` is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostLoad {
    /// Online CPUs.
    pub cpus: u32,
    /// How busy all CPUs were, 0 to 100: over the interval since vmd's previous reading (at
    /// least 1 s; within 1 s the previous figure is repeated), or since boot on the first.
    pub cpu_busy_percent: f64,
    /// Load average over 1 minute.
    pub load_1: f64,
    /// Load average over 5 minutes.
    pub load_5: f64,
    /// Load average over 15 minutes.
    pub load_15: f64,
    /// Total memory.
    pub memory_total_bytes: u64,
    /// Memory available for new work without swapping (`MemAvailable`).
    pub memory_available_bytes: u64,
}

/// The accelerator vmd will use for guests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accelerator {
    /// `kvm` or `tcg`.
    pub name: String,
    /// Why this one (e.g. "/dev/kvm is backed by kvm_pvm; kvm_intel/kvm_amd not loaded").
    pub reason: String,
}

/// Bytes used on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskUsage {
    /// Bytes used by base images.
    pub images_bytes: u64,
    /// Bytes used by VM overlays.
    pub overlays_bytes: u64,
    /// Bytes free on the state directory's file system.
    pub free_bytes: u64,
    /// vmd refuses creates, starts and imports below this many free bytes (`min_free_bytes`).
    #[serde(default)]
    pub floor_bytes: u64,
    /// Free space is below the floor (a `space_low` event was sent when it fell below).
    #[serde(default)]
    pub low: bool,
    /// Bytes of the space reserve currently held (0 once released on a full file system).
    #[serde(default)]
    pub reserve_bytes: u64,
}

/// One inconsistency between the store and the files on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyIssue {
    /// What is wrong.
    pub kind: ConsistencyIssueKind,
    /// The VM or image name involved (the file stem for orphan files).
    pub name: String,
    /// The file involved.
    pub path: String,
}

/// Kinds of [`ConsistencyIssue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyIssueKind {
    /// An overlay file with no VM row.
    OrphanOverlay,
    /// A VM row whose overlay file is missing.
    MissingOverlay,
    /// A base image file with no image row.
    OrphanImage,
    /// An image row whose file is missing.
    MissingImage,
}
