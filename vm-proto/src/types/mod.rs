//! Request and response types of every API method, grouped by resource.

mod event;
mod image;
mod iso;
mod network;
mod os;
mod provision;
mod system;
mod template;
mod user;
mod vm;

pub use event::{Event, EventKind};
pub use image::{
    validate_image_description, Image, ImageImport, ImageSet, Upload, IMAGE_DESCRIPTION_MAX_CHARS,
};
pub use iso::{
    Firmware, ImageCreate, ImagePublish, Iso, IsoAttach, IsoImport, UEFI_MEMORY_MIB_MIN,
};
pub use network::{
    is_mac, network_default_user_net, Lease, Network, NetworkCreate, NetworkMember, Nic, NicChange,
    PortAdd, PortForward, PortRemove, Protocol, Subnet, NICS_MAX, PORTS_MAX, SUBNET_PREFIX_MAX,
    SUBNET_PREFIX_MIN,
};
pub use os::OsFamily;
pub use provision::{
    parse_label, user_data_kind, validate_guest_password, validate_guest_user, validate_label_key,
    validate_label_value, validate_labels, validate_ssh_key, CloudInitInfo, CloudInitRequest,
    GuestAddress, GuestInfo, LabelSelector, Labels, LABELS_MAX, LABEL_MAX_CHARS, SSH_KEYS_MAX,
    USER_DATA_MAX_BYTES,
};
pub use system::{
    Accelerator, ConsistencyIssue, ConsistencyIssueKind, DiskUsage, HostLoad, SystemInfo,
};
pub use template::{Template, TemplateCreate};
pub use user::{
    AuthMethod, LimitUpdate, LimitWord, Login, Quota, Role, Token, TokenCreate, TokenKind,
    TokenSecret, Usage, User, UserAdd, UserPasswd, UserRemove, UserRemoved, UserSet, VmFilter,
    WhoAmI, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS,
};
pub use vm::{
    validate_description, ConsoleClient, ConsoleKind, ConsoleTicket, ConsoleTicketRequest,
    ExpiryAction, LogChunk, Vm, VmCreate, VmExtend, VmLogs, VmSet, VmState, VmStop,
    CONSOLE_TICKET_SECS, CPUS_MAX, DESCRIPTION_MAX_CHARS, DISK_BYTES_MAX, MEMORY_MIB_MIN,
    STOP_TIMEOUT_SECS, TTL_SECS_MAX,
};
