//! ISO library types.

use serde::{Deserialize, Serialize};

/// An installer or data CD/DVD image in the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Iso {
    /// Unique name.
    pub name: String,
    /// Bytes.
    pub size_bytes: u64,
    /// SHA-256 of the uploaded bytes, lowercase hex.
    pub sha256: String,
    /// Name of the account that uploaded it.
    pub owner: String,
    /// Upload time, RFC 3339 UTC.
    pub created_at: String,
    /// VMs that have it inserted (install VMs of unfinished bases included).
    pub used_by: Vec<String>,
    /// Absolute path on the host (daemon-owned, read-only).
    pub path: String,
}

/// Parameters of `iso.import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IsoImport {
    /// Unique ISO name (a DNS label).
    pub name: String,
    /// The `upload_id` of a finished upload by the same user.
    pub upload_id: String,
}

/// Guest firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS.
    #[default]
    Bios,
    /// OVMF (UEFI); needs at least [`UEFI_MEMORY_MIB_MIN`] MiB of guest memory.
    Uefi,
}

/// Least guest memory OVMF boots with.
pub const UEFI_MEMORY_MIB_MIN: u64 = 192;

impl Firmware {
    /// `bios` or `uefi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    /// Parses [`Firmware::as_str`].
    pub fn parse(text: &str) -> Option<Firmware> {
        match text {
            "bios" => Some(Firmware::Bios),
            "uefi" => Some(Firmware::Uefi),
            _ => None,
        }
    }
}

/// Parameters of `image.create`: a blank base installed from an ISO by an install VM of the
/// same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageCreate {
    /// Unique image name; also the install VM's name.
    pub name: String,
    /// Size of the blank disk in bytes.
    pub size_bytes: u64,
    /// ISO to boot the installer from.
    pub iso: String,
    /// Firmware of the base (and of VMs made from it). Default bios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// vCPUs of the install VM. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory of the install VM in MiB. Default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// OS family. Default: guessed from `name`, else from `iso` ([`super::OsFamily::guess`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<super::OsFamily>,
    /// Free text for people (see [`super::validate_image_description`]). Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the installed OS runs cloud-init. Default `false` (settable later with
    /// `image.set`). Since 2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
}

/// Parameters of `image.publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImagePublish {
    /// The stopped VM whose disk (overlay + base) becomes the new base.
    pub vm: String,
    /// Name of the new base.
    pub name: String,
    /// Whether every user may use it. Default: public when an admin publishes, private (and
    /// counted against the disk quota) when a user does; users may not publish publicly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// OS family. Default: the VM's base image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<super::OsFamily>,
    /// Free text for people (see [`super::validate_image_description`]). Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Reset the copy's identity offline (machine-id, SSH host keys, cloud-init state, logs;
    /// see `docs/provisioning.md`) so that VMs made from it do not share it. Since 2.5.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generalize: bool,
    /// Whether the new image runs cloud-init. Default: the VM's base image's. Since 2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
}

/// Parameters of `vm.attach_iso`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IsoAttach {
    /// VM name.
    pub vm: String,
    /// ISO name.
    pub iso: String,
}
