//! Request and response types of every API method, grouped by resource.

mod image;
mod system;
mod vm;

pub use image::{Image, ImageImport, Upload};
pub use system::{Accelerator, ConsistencyIssue, ConsistencyIssueKind, DiskUsage, SystemInfo};
pub use vm::{Vm, VmCreate, VmState, CPUS_MAX, MEMORY_MIB_MIN};
