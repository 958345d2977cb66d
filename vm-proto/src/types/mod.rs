//! Request and response types of every API method, grouped by resource.

mod event;
mod image;
mod iso;
mod system;
mod vm;

pub use event::{Event, EventKind};
pub use image::{Image, ImageImport, Upload};
pub use iso::{
    Firmware, ImageCreate, ImagePublish, Iso, IsoAttach, IsoImport, UEFI_MEMORY_MIB_MIN,
};
pub use system::{Accelerator, ConsistencyIssue, ConsistencyIssueKind, DiskUsage, SystemInfo};
pub use vm::{
    LogChunk, Vm, VmCreate, VmLogs, VmState, VmStop, CPUS_MAX, DISK_BYTES_MAX, MEMORY_MIB_MIN,
    STOP_TIMEOUT_SECS,
};
