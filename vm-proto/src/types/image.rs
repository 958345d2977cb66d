//! Base image types and the upload handshake that precedes an import.

use serde::{Deserialize, Serialize};

/// Result of `PUT /v1/uploads` on the daemon socket: the bytes are staged in daemon-owned
/// storage until `image.import` consumes them (or they expire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Upload {
    /// Token to pass to `image.import`; valid only for the uid that uploaded.
    pub upload_id: String,
    /// Bytes received.
    pub size_bytes: u64,
    /// SHA-256 of the bytes received, lowercase hex.
    pub sha256: String,
}

/// Parameters of `image.import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageImport {
    /// Unique image name (a DNS label).
    pub name: String,
    /// The `upload_id` of a finished upload by the same user.
    pub upload_id: String,
}

/// A base image as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    /// Unique name.
    pub name: String,
    /// Format of the stored base (always `qcow2`).
    pub format: String,
    /// Format the uploaded file had (`qcow2`, `raw`, `vmdk`, `vdi`, `vhdx`, `vpc`).
    pub source_format: String,
    /// Size of the disk as the guest sees it.
    pub virtual_size_bytes: u64,
    /// Bytes the stored base occupies on the host.
    pub disk_usage_bytes: u64,
    /// SHA-256 of the uploaded bytes, lowercase hex (compare with `sha256sum FILE`).
    pub sha256: String,
    /// Name of the account that owns it.
    pub owner: String,
    /// Whether every user may see and use it (`false`: only its owner and admins).
    pub public: bool,
    /// Import time, RFC 3339 UTC.
    pub created_at: String,
    /// Names of the VMs whose overlays this base backs.
    pub used_by: Vec<String>,
    /// Absolute path of the read-only base on the host (daemon-owned; for admins).
    pub path: String,
    /// Whether VMs may use it. `false` while it is being installed by its install VM.
    #[serde(default = "yes")]
    pub sealed: bool,
    /// Firmware VMs made from it get by default.
    #[serde(default)]
    pub firmware: super::Firmware,
}

fn yes() -> bool {
    true
}
