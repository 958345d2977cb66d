//! Warm templates: a running VM's saved device state and RAM plus its frozen disk layer, from
//! which clones start in well under a second instead of booting. `docs/templates.md`
//! describes the model.

use serde::{Deserialize, Serialize};

/// A warm template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// Unique template name (a DNS label).
    pub name: String,
    /// The account that owns it.
    pub owner: String,
    /// Whether every user may create clones of it (templates of admins are shared).
    pub shared: bool,
    /// The VM it was taken from (that VM became its first clone).
    pub source_vm: String,
    /// The base image under its disk layer.
    pub image: String,
    /// vCPUs every clone has.
    pub cpus: u32,
    /// Guest memory every clone has, MiB.
    pub memory_mib: u64,
    /// Virtual disk size every clone has.
    pub disk_bytes: u64,
    /// Guest firmware.
    pub firmware: super::Firmware,
    /// Whether clones have the user-mode NIC.
    pub user_net: bool,
    /// The accelerator it was taken under (`kvm`, `tcg`); clones restore under the same.
    pub accelerator: String,
    /// The QEMU version that saved it; another version may refuse to restore it.
    pub qemu_version: String,
    /// Bytes the template's files occupy on the host (disk layer, RAM, device state).
    pub usage_bytes: u64,
    /// Clones of it (the caller's own, or all for admins).
    pub clones: Vec<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

/// Parameters of `template.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateCreate {
    /// Unique template name (a DNS label).
    pub name: String,
    /// The running VM to take it from. It is paused, saved and stopped; it becomes the
    /// template's first clone (its next start restores the saved moment).
    pub from: String,
    /// Let every user see and clone it (admins only; a template is private by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}
