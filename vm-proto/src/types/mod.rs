//! Request and response types of every API method, grouped by resource.

mod event;
mod image;
mod system;
mod vm;

pub use event::{Event, EventKind};
pub use image::{Image, ImageImport, Upload};
pub use system::{Accelerator, ConsistencyIssue, ConsistencyIssueKind, DiskUsage, SystemInfo};
pub use vm::{
    LogChunk, Vm, VmCreate, VmLogs, VmState, VmStop, CPUS_MAX, MEMORY_MIB_MIN, STOP_TIMEOUT_SECS,
};
