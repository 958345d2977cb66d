//! Lab events: every state change and lifecycle step, numbered by a persisted sequence so a
//! client can resume with `since`.

use serde::{Deserialize, Serialize};

use super::VmState;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A VM changed state (`state` says to what).
    StateChanged,
    /// A VM was defined.
    VmCreated,
    /// A VM was removed.
    VmRemoved,
    /// A VM's disk was reset to its base.
    VmWiped,
    /// An ACPI power-button press was sent.
    PowerdownSent,
    /// A graceful stop timed out and is being forced.
    StopForced,
    /// QEMU reported a guest reset (reboot).
    Reset,
    /// QEMU reported a guest panic.
    GuestPanicked,
    /// vmd re-adopted a running QEMU after its own restart.
    Adopted,
    /// An image was imported.
    ImageImported,
    /// An image was removed.
    ImageRemoved,
    /// An image's OS family, description or visibility changed (`image.set`); the message
    /// says which.
    ImageChanged,
    /// Free space in the state directory fell below the configured floor.
    SpaceLow,
    /// Free space is back above the floor.
    SpaceOk,
    /// At start-up vmd found a QEMU of its own that no VM accounts for, and stopped it.
    OrphanStopped,
    /// An ISO was imported (`iso` names it).
    IsoImported,
    /// An ISO was removed (`iso` names it).
    IsoRemoved,
    /// A VM's lifetime ended; the message says what was done.
    VmExpired,
    /// A VM's deadline was moved.
    VmExtended,
    /// A VM's settings (vCPUs, memory, disk size, description) were changed; the message
    /// says which, from what to what.
    VmChanged,
    /// An account was created.
    UserAdded,
    /// An account was removed.
    UserRemoved,
    /// An account's role, uid link or quotas changed.
    UserChanged,
    /// Any kind this client does not know (newer daemon).
    #[serde(other)]
    Other,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Sequence number, strictly increasing, persisted across daemon restarts.
    pub seq: u64,
    /// When, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// What happened.
    pub kind: EventKind,
    /// The VM involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The image involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The ISO involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso: Option<String>,
    /// For `state_changed`: the new state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VmState>,
    /// Human-readable detail.
    pub message: String,
    /// The account whose request caused the event; `None` for what vmd or a guest did on its
    /// own (QEMU exits, guest resets, expiry, start-up adoption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The account that owns the object (VM, private image, account) the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}
