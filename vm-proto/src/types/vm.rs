//! VM types and the one definition of VM states and their valid transitions.

use serde::{Deserialize, Serialize};

/// Most vCPUs a VM may have.
pub const CPUS_MAX: u32 = 64;
/// Least memory a VM may have, in MiB.
pub const MEMORY_MIB_MIN: u64 = 64;
/// Largest virtual disk a VM or an imported image may have (64 TiB).
pub const DISK_BYTES_MAX: u64 = 64 << 40;
/// Longest VM description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 1024;

/// Lifecycle state of a VM. The daemon persists it; see `docs/lifecycle.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    // A table of arms reads better here than one long `matches!`.
    #[allow(clippy::match_like_matches_macro)]
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

    /// Whether a warm template may be taken from the VM: its guest is live in QEMU.
    pub fn can_template(self) -> bool {
        matches!(self, VmState::Running | VmState::Paused)
    }

    /// Whether the VM's hardware (vCPUs, memory, disk size) may be changed: no process runs
    /// with the old values.
    pub fn can_reconfigure(self) -> bool {
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VmCreate {
    /// Unique VM name (a DNS label).
    pub name: String,
    /// Name of the base image the overlay is backed by. Empty with `template` (the
    /// template's image); if given with it, it must be the template's.
    #[serde(default)]
    pub image: String,
    /// Create a clone of this warm template (since 2.7): an overlay on its frozen disk layer
    /// whose first start restores the template's saved moment. CPUs, memory, disk, firmware
    /// and NICs are the template's; asking for others is `invalid_argument`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Number of vCPUs, 1 to [`CPUS_MAX`]. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Guest memory in MiB, [`MEMORY_MIB_MIN`] to the host's memory. Default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Virtual disk size in bytes; at least the base's virtual size (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Host port on 127.0.0.1 forwarded to the guest's port 22 (user-mode networking).
    /// Unique across VMs. Default: no forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// ISO to insert as CD-ROM (boots after the disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// Firmware; default: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<super::Firmware>,
    /// Lifetime in seconds: when it passes, `on_expiry` happens. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// What expiry does (needs `ttl_secs` or `session`). Default `remove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<ExpiryAction>,
    /// Tie the VM to the caller's login session: the expiry action also happens when the
    /// session is logged out or expires. Only for callers authenticated by a session token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session: bool,
    /// Free text for people, at most [`DESCRIPTION_MAX_CHARS`] characters, no control
    /// characters (see [`validate_description`]). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels (`key → value`, see [`super::validate_labels`]). Default: none. Since 2.5.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: super::Labels,
    /// cloud-init options (see [`super::CloudInitRequest`]). Default: a seed with the
    /// defaults when the image runs cloud-init. Since 2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<super::CloudInitRequest>,
    /// Lab networks to join, one NIC each, in this order after the user-mode NIC (at most
    /// [`super::NICS_MAX`], each network once). Default: none. Since 2.6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// `true`: no user-mode NIC (no port forwards, no `ssh_port`). Default `false`. Since 2.6.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_user_net: bool,
}

/// Parameters of `vm.set`: the fields to change; absent ones stay as they are. At least one
/// must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VmSet {
    /// VM name.
    pub name: String,
    /// New number of vCPUs, 1 to [`CPUS_MAX`]. Only while the VM has no process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// New guest memory in MiB, [`MEMORY_MIB_MIN`] to the host's memory. Only while the VM
    /// has no process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// New virtual disk size in bytes: at least the current size (disks only grow), a
    /// multiple of 512, at most [`DISK_BYTES_MAX`]. Only while the VM has no process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// New description (see [`VmCreate::description`]); `""` clears it. Any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels to add or change (`key → value`). Any time. Since 2.5.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: super::Labels,
    /// Label keys to remove (absent keys are ignored). Any time. Since 2.5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_labels: Vec<String>,
}

impl VmSet {
    /// Whether the request changes the VM's hardware (which needs it stopped).
    pub fn changes_hardware(&self) -> bool {
        self.cpus.is_some() || self.memory_mib.is_some() || self.disk_bytes.is_some()
    }

    /// Whether the request changes anything at all.
    pub fn is_empty(&self) -> bool {
        !self.changes_hardware()
            && self.description.is_none()
            && self.labels.is_empty()
            && self.remove_labels.is_empty()
    }
}

/// Checks a VM description: at most [`DESCRIPTION_MAX_CHARS`] characters, none of them a
/// control character (newlines and tabs included: it is shown on one line).
pub fn validate_description(text: &str) -> Result<(), String> {
    check_text(text, DESCRIPTION_MAX_CHARS)
}

/// A description of at most `max` characters without control characters.
pub(super) fn check_text(text: &str, max: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > max {
        return Err(format!(
            "description is {chars} characters long; at most {max} are allowed"
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "description contains the control character {c:?}; use printable text on one line"
        ));
    }
    if let Some(c) = text.chars().find(|c| is_hidden_format(*c)) {
        return Err(format!(
            "description contains the invisible character {c:?} (it could disguise text in \
             tables); use printable text"
        ));
    }
    Ok(())
}

/// Invisible formatting characters that can make text read differently than it is: bidi
/// overrides and isolates, zero-width characters, the byte-order mark.
pub(super) fn is_hidden_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// What happens to a VM when its lifetime ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExpiryAction {
    /// Stop it (forced) and delete it with its overlay.
    #[default]
    Remove,
    /// Stop it (forced) and reset its disk to the base; the VM stays, without a deadline.
    Wipe,
    /// Stop it (forced); the VM stays, without a deadline.
    Stop,
}

impl ExpiryAction {
    /// `remove`, `wipe` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryAction::Remove => "remove",
            ExpiryAction::Wipe => "wipe",
            ExpiryAction::Stop => "stop",
        }
    }

    /// Parses [`ExpiryAction::as_str`].
    pub fn parse(text: &str) -> Option<ExpiryAction> {
        [ExpiryAction::Remove, ExpiryAction::Wipe, ExpiryAction::Stop]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// Parameters of `vm.extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VmExtend {
    /// VM name.
    pub name: String,
    /// Seconds added to the deadline (counted from now when it already passed). A VM without
    /// a deadline cannot be extended (it lives until removed).
    pub by_secs: u64,
}

/// Longest lifetime `ttl_secs` or `vm.extend` may give (one year).
pub const TTL_SECS_MAX: u64 = 366 * 24 * 3600;

/// Parameters of `vm.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VmStop {
    /// VM name.
    pub name: String,
    /// Skip the ACPI power-down and end QEMU at once.
    #[serde(default)]
    pub force: bool,
    /// Seconds to wait for the guest to power off before forcing. Default [`STOP_TIMEOUT_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// Default wait for a graceful stop before it is forced.
pub const STOP_TIMEOUT_SECS: u64 = 30;

/// Answer of `vm.logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmLogs {
    /// The end of the VM's console log (serial output plus `[vmd …]` lines about the VM),
    /// decoded lossily as UTF-8.
    pub text: String,
    /// Size of the current log file in bytes.
    pub size_bytes: u64,
    /// Whether older output exists that `text` does not include.
    pub truncated: bool,
}

/// One chunk of a followed console log (`vm.follow_logs` subscription).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogChunk {
    /// Output, decoded lossily as UTF-8.
    pub text: String,
}

/// A VM as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Name of the account that owns the VM.
    pub owner: String,
    /// The owner's local uid, if the account has one.
    #[serde(default)]
    pub owner_uid: Option<u32>,
    /// When the VM's lifetime ends, RFC 3339 UTC; `None`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// What happens then (set with a deadline or a session).
    #[serde(default)]
    pub on_expiry: Option<ExpiryAction>,
    /// Whether the VM ends with its owner's login session.
    #[serde(default)]
    pub session: bool,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Absolute path of the overlay on the host (daemon-owned; for admins).
    pub overlay_path: String,
    /// Host port on 127.0.0.1 forwarded to the guest's ssh port (TCP 22), if any.
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// Whether the VM has the user-mode NIC (first NIC; port forwards go through it). Since 2.6.
    #[serde(default = "super::network_default_user_net")]
    pub user_net: bool,
    /// NICs on lab networks, in guest order after the user-mode NIC. Since 2.6.
    #[serde(default)]
    pub nics: Vec<super::Nic>,
    /// Port forwards on the user-mode NIC. Since 2.6.
    #[serde(default)]
    pub ports: Vec<super::PortForward>,
    /// While a process exists: its accelerator (`kvm` or `tcg`).
    #[serde(default)]
    pub accelerator: Option<String>,
    /// While a process exists: QEMU's pid.
    #[serde(default)]
    pub pid: Option<u32>,
    /// While a process exists: when it was started, RFC 3339 UTC.
    #[serde(default)]
    pub started_at: Option<String>,
    /// While a process exists: the VNC endpoint (a Unix socket path).
    #[serde(default)]
    pub vnc_socket: Option<String>,
    /// Why the VM is `crashed`, or why its last start failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The inserted ISO, if any.
    #[serde(default)]
    pub iso: Option<String>,
    /// Guest firmware.
    #[serde(default)]
    pub firmware: super::Firmware,
    /// Whether this is the install VM of an unsealed image (boots its ISO first; its disk
    /// becomes the base when sealed).
    #[serde(default)]
    pub install: bool,
    /// Free text set with `vm.create` or `vm.set`; `None`: none.
    #[serde(default)]
    pub description: Option<String>,
    /// The client attached to the serial console, if any (runtime state; since 2.4).
    #[serde(default)]
    pub console: Option<ConsoleClient>,
    /// Labels (since 2.5).
    #[serde(default)]
    pub labels: super::Labels,
    /// The cloud-init seed the VM gets at start; `None`: no seed (since 2.5).
    #[serde(default)]
    pub cloud_init: Option<super::CloudInitInfo>,
    /// What the guest agent reported while the VM runs; `None`: no process (since 2.5).
    #[serde(default)]
    pub guest: Option<super::GuestInfo>,
    /// The warm template this VM is a clone of (since 2.7).
    #[serde(default)]
    pub template: Option<String>,
    /// Whether its next start restores the template's saved moment (a clone after create
    /// or wipe) instead of booting from its disk (since 2.7).
    #[serde(default)]
    pub restore_pending: bool,
}

/// A client attached to a VM's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleClient {
    /// When it attached, RFC 3339 UTC.
    pub since: String,
    /// The account attached; shown to admins and to that account itself, else `None`.
    #[serde(default)]
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_lifecycle() {
        use VmState::*;
        assert!(Stopped.can_transition_to(Starting) && Crashed.can_transition_to(Starting));
        assert!(Running.can_transition_to(Stopping) && Stopping.can_transition_to(Stopped));
        assert!(
            !Stopped.can_transition_to(Running),
            "a start always passes through starting"
        );
        assert!(!Stopped.can_transition_to(Stopping) && !Paused.can_transition_to(Starting));
        for s in VmState::ALL {
            assert_eq!(VmState::parse(s.as_str()), Some(s));
            assert_eq!(s.can_modify_disk(), !s.has_process());
            assert_eq!(s.can_reconfigure(), !s.has_process());
        }
        assert!(Stopped.can_reconfigure() && Crashed.can_reconfigure());
        assert!(!Running.can_reconfigure() && !Paused.can_reconfigure());
    }

    #[test]
    fn descriptions_are_bounded_printable_text() {
        assert!(validate_description("").is_ok());
        assert!(validate_description("web front end, ticket #42 — ünïcode").is_ok());
        assert!(validate_description(&"é".repeat(DESCRIPTION_MAX_CHARS)).is_ok());
        let long = validate_description(&"x".repeat(DESCRIPTION_MAX_CHARS + 1));
        assert!(long.is_err_and(|e| e.contains("at most 1024")));
        for bad in [
            "two\nlines",
            "tab\there",
            "bell\u{7}",
            "esc\u{1b}[31m",
            "del\u{7f}",
        ] {
            let err = validate_description(bad).expect_err(bad);
            assert!(err.contains("control character"), "{err}");
        }
        for bad in [
            "evil\u{202E}txt.exe",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "iso\u{2066}late",
        ] {
            let err = validate_description(bad).expect_err(bad);
            assert!(err.contains("invisible character"), "{err}");
        }
    }

    #[test]
    fn vm_set_knows_what_it_changes() {
        let only_name = VmSet {
            name: "a".into(),
            ..VmSet::default()
        };
        assert!(only_name.is_empty() && !only_name.changes_hardware());
        let text = VmSet {
            description: Some(String::new()),
            ..only_name.clone()
        };
        assert!(!text.is_empty() && !text.changes_hardware());
        let disk = VmSet {
            disk_bytes: Some(1 << 30),
            ..only_name
        };
        assert!(disk.changes_hardware());
        let err = serde_json::from_str::<VmSet>(r#"{"name":"a","memory":1}"#);
        assert!(err.is_err_and(|e| e.to_string().contains("unknown field")));
    }
}

/// Which byte stream of a VM a console ticket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsoleKind {
    /// The serial console (`GET /v1/vms/NAME/console`).
    Serial,
    /// The screen (`GET /v1/vms/NAME/vnc`).
    Vnc,
}

/// Parameters of `vm.console_ticket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsoleTicketRequest {
    /// VM name.
    pub vm: String,
    /// Which stream.
    pub kind: ConsoleKind,
}

/// Answer of `vm.console_ticket`: a secret that opens one console or VNC attach of that VM,
/// once, within [`CONSOLE_TICKET_SECS`], sent as the `X-Vmd-Ticket` header of the upgrade
/// request (see [`crate::TICKET_HEADER`]). It lets a front end such as vmd-web open a browser
/// console for a user without holding the user's credentials when the WebSocket arrives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleTicket {
    /// The secret (shown once).
    pub ticket: String,
    /// VM name.
    pub vm: String,
    /// Which stream.
    pub kind: ConsoleKind,
    /// When it stops being valid, RFC 3339 UTC.
    pub expires_at: String,
}

impl std::fmt::Debug for ConsoleTicket {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleTicket")
            .field("vm", &self.vm)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Longest life of a console ticket.
pub const CONSOLE_TICKET_SECS: u64 = 30;
