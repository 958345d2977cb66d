//! The manager's error type: one variant per failure, each mapped to one API error kind.

use vm_proto::names::format_size;
use vm_proto::types::IMAGE_DESCRIPTION_MAX_CHARS;
use vm_proto::{ApiError, ErrorCode};

use crate::storage::StorageError;
use crate::store::StoreError;

/// Failures of manager operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request value is unacceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// A lab network, NIC or port forward failed.
    #[error(transparent)]
    Net(#[from] super::net_error::NetError),
    /// A warm template or a clone failed.
    #[error(transparent)]
    Template(#[from] super::template_error::TemplateError),
    /// An image description is too long or has a control character; the message says which.
    #[error("{0}")]
    ImageDescription(String),
    /// No image of that name.
    #[error("image {0} not found")]
    ImageNotFound(String),
    /// No VM of that name.
    #[error("vm {0} not found")]
    VmNotFound(String),
    /// No upload with that id for this user.
    #[error("upload {0} not found (expired, already imported, or made by another user)")]
    UploadNotFound(String),
    /// No ISO of that name.
    #[error("iso {0} not found")]
    IsoNotFound(String),
    /// An ISO with that name exists.
    #[error("iso {0} already exists")]
    IsoExists(String),
    /// The ISO is inserted in VMs.
    #[error("iso {name} is used by {}: {}", plural(users.len()), users.join(", "))]
    IsoInUse {
        /// ISO name.
        name: String,
        /// VMs using it.
        users: Vec<String>,
    },
    /// The image is still being installed.
    #[error("image {0} is not sealed yet (still being installed)")]
    NotSealed(String),
    /// Sealing was asked of an install disk nothing was written to.
    #[error("image {0}'s disk is still blank: nothing was installed")]
    BlankDisk(String),
    /// The uploaded ISO was refused.
    #[error("cannot import iso {name}")]
    IsoImport {
        /// ISO name.
        name: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// The image is already sealed.
    #[error("image {0} is already sealed")]
    AlreadySealed(String),
    /// An image with that name exists.
    #[error("image {0} already exists")]
    ImageExists(String),
    /// A VM with that name exists.
    #[error("vm {0} already exists")]
    VmExists(String),
    /// The image backs VMs.
    #[error("image {name} is used by {}: {}", plural(users.len()), users.join(", "))]
    ImageInUse {
        /// Image name.
        name: String,
        /// VMs using it.
        users: Vec<String>,
    },
    /// The VM's state forbids the operation.
    #[error("vm {name} is {state}; {action}")]
    WrongState {
        /// VM name.
        name: String,
        /// Its state.
        state: vm_proto::types::VmState,
        /// What the user should do.
        action: &'static str,
    },
    /// The state machine forbids this transition (a race with another change).
    #[error("vm {name} cannot go from {from} to {to}")]
    Transition {
        /// VM name.
        name: String,
        /// Current state.
        from: vm_proto::types::VmState,
        /// Requested state.
        to: vm_proto::types::VmState,
    },
    /// The VM's state says running but vmd has no process for it (adoption failed).
    #[error("vm {0} has no QEMU process that vmd controls")]
    NoProcess(String),
    /// QEMU could not be started; the reason carries QEMU's own words.
    #[error("cannot start vm {name}: {reason}")]
    StartFailed {
        /// VM name.
        name: String,
        /// Why (QEMU's error text, exit status).
        reason: String,
    },
    /// QEMU did not exit even after SIGKILL.
    #[error("vm {name}: QEMU pid {pid} did not exit after SIGKILL")]
    StopFailed {
        /// VM name.
        name: String,
        /// The stuck pid.
        pid: u32,
    },
    /// A QMP command failed.
    #[error("QMP command to vm {name} failed")]
    Qmp {
        /// VM name.
        name: String,
        /// Why.
        #[source]
        source: crate::qemu::qmp::QmpError,
    },
    /// Another operation holds the object.
    #[error("{kind} {name} is busy: {holder} in progress")]
    Busy {
        /// `vm`, `image` or `iso`.
        kind: &'static str,
        /// Object name.
        name: String,
        /// The operation holding it.
        holder: &'static str,
    },
    /// Someone else is attached to the console.
    #[error("the console of vm {0} is already attached by another client")]
    ConsoleBusy(String),
    /// Another VM forwards that port.
    #[error("ssh port {port} is already forwarded to {vm}")]
    PortInUse {
        /// The port.
        port: u16,
        /// The VM using it.
        vm: String,
    },
    /// The uploaded file was refused or could not be processed.
    #[error("cannot import image {name}")]
    Import {
        /// Image name.
        name: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// `image.publish --generalize` failed; nothing was published.
    #[error("cannot generalize the copy of vm {vm}")]
    Generalize {
        /// The source VM.
        vm: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// Creating or replacing an overlay failed.
    #[error("cannot create overlay for vm {name}")]
    Overlay {
        /// VM name.
        name: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A disk was asked to shrink (`vm.set`).
    #[error("vm {name}'s disk is {}; it cannot shrink to {}", format_size(*size), format_size(*requested))]
    DiskShrink {
        /// VM name.
        name: String,
        /// Its disk size now.
        size: u64,
        /// The size asked for.
        requested: u64,
    },
    /// Growing a VM's disk failed.
    #[error("cannot grow the disk of vm {name}")]
    Resize {
        /// VM name.
        name: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A disk was grown, the new size could not be recorded, and the grow not undone.
    #[error("the disk of vm {name} was grown but the change could not be recorded or undone")]
    GrownNotRecorded {
        /// VM name.
        name: String,
        /// Why the record failed.
        #[source]
        source: Box<Error>,
    },
    /// Free space in the state directory is below the configured floor.
    #[error("cannot {action}: only {} free in the state directory, below the floor of {}", format_size(*free), format_size(*floor))]
    NoSpace {
        /// What was refused.
        action: &'static str,
        /// Free bytes now.
        free: u64,
        /// `min_free_bytes`.
        floor: u64,
    },
    /// A disk is open in a QEMU process (one vmd may not know about).
    #[error("the disk of vm {0} is in use by a running QEMU process")]
    DiskInUse(String),
    /// Another storage operation failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task panicked or was cancelled.
    #[error("internal task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The caller sees the object but may not do this.
    #[error("permission denied: {0}")]
    Forbidden(&'static str),
    /// No valid credentials (bad login, bad token, throttled login).
    #[error("{0}")]
    Unauthenticated(String),
    /// The change would take the owner over a quota.
    #[error("quota exceeded: {what} would be {would} with a limit of {limit} (now {now})")]
    Quota {
        /// Which limit (`vms`, `running vms`, `vcpus`, `memory`, `disk`).
        what: &'static str,
        /// Use now, formatted.
        now: String,
        /// Use after the change, formatted.
        would: String,
        /// The limit, formatted.
        limit: String,
    },
    /// Starting would take the running VMs' memory over `host_memory_limit`.
    #[error("the host cannot take this vm now: running vms would use {would} of memory, over host_memory_limit {limit}")]
    HostMemory {
        /// Memory of running VMs after the start, formatted.
        would: String,
        /// The limit, formatted.
        limit: String,
    },
    /// No account of that name.
    #[error("user {0} not found")]
    AccountNotFound(String),
    /// An account of that name or uid exists.
    #[error("{0} already exists")]
    AccountExists(String),
    /// The account owns VMs or images.
    #[error("user {name} owns {}", owned.join(", "))]
    AccountInUse {
        /// Account name.
        name: String,
        /// What it owns, described.
        owned: Vec<String>,
    },
    /// Too many console tickets are outstanding.
    #[error("too many console tickets outstanding; use them or let them expire")]
    TooManyTickets,
    /// No token with that id (for this caller).
    #[error("token {0} not found")]
    TokenNotFound(i64),
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 vm".to_string()
    } else {
        format!("{n} vms")
    }
}

impl Error {
    /// The API error kind of this failure.
    pub fn code(&self) -> ErrorCode {
        if self.is_disk_full() {
            return ErrorCode::NoSpace;
        }
        match self {
            Error::Net(net) => net.code(),
            Error::Template(t) => t.code(),
            Error::NoSpace { .. } => ErrorCode::NoSpace,
            Error::DiskInUse(_) => ErrorCode::InUse,
            Error::Invalid(_) | Error::ImageDescription(_) | Error::DiskShrink { .. } => {
                ErrorCode::InvalidArgument
            }
            Error::Import { source, .. } if is_refusal(source) => ErrorCode::InvalidArgument,
            Error::Generalize { source, .. } if is_not_generalizable(source) => {
                ErrorCode::InvalidArgument
            }
            Error::ImageNotFound(_)
            | Error::VmNotFound(_)
            | Error::UploadNotFound(_)
            | Error::IsoNotFound(_) => ErrorCode::NotFound,
            Error::ImageExists(_) | Error::VmExists(_) | Error::IsoExists(_) => {
                ErrorCode::AlreadyExists
            }
            Error::NotSealed(_) | Error::AlreadySealed(_) | Error::BlankDisk(_) => {
                ErrorCode::WrongState
            }
            Error::IsoImport { source, .. } if is_refusal(source) => ErrorCode::InvalidArgument,
            Error::IsoImport { .. } => ErrorCode::Internal,
            Error::IsoInUse { .. }
            | Error::ImageInUse { .. }
            | Error::Busy { .. }
            | Error::ConsoleBusy(_)
            | Error::PortInUse { .. } => ErrorCode::InUse,
            Error::WrongState { .. } | Error::Transition { .. } | Error::NoProcess(_) => {
                ErrorCode::WrongState
            }
            Error::StartFailed { .. } | Error::StopFailed { .. } | Error::Qmp { .. } => {
                ErrorCode::Internal
            }
            Error::Forbidden(_) => ErrorCode::PermissionDenied,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Quota { .. } => ErrorCode::QuotaExceeded,
            Error::HostMemory { .. } | Error::TooManyTickets => ErrorCode::Unavailable,
            Error::AccountNotFound(_) | Error::TokenNotFound(_) => ErrorCode::NotFound,
            Error::AccountExists(_) => ErrorCode::AlreadyExists,
            Error::AccountInUse { .. } => ErrorCode::InUse,
            Error::Import { .. }
            | Error::Generalize { .. }
            | Error::Overlay { .. }
            | Error::Resize { .. }
            | Error::GrownNotRecorded { .. }
            | Error::Storage(_)
            | Error::Store(_)
            | Error::Task(_) => ErrorCode::Internal,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Net(net) => return net.hint(),
            Error::Template(t) => return t.hint(),
            Error::ImageNotFound(_) => "list images with `vmctl image ls`".into(),
            Error::ImageDescription(_) => format!("write at most {IMAGE_DESCRIPTION_MAX_CHARS} characters on one line, without tabs or other control characters"),
            Error::VmNotFound(_) => "list VMs with `vmctl ls`".into(),
            Error::Forbidden(_) => "ask an admin (`vmctl whoami` shows your role)".into(),
            Error::Quota { .. } => "stop or remove some of your VMs, or ask an admin to raise the limit (`vmctl whoami` shows your use)".into(),
            Error::HostMemory { .. } => "wait for other VMs to stop, or start a smaller VM".into(),
            Error::AccountNotFound(_) => "list accounts with `vmctl user ls`".into(),
            Error::AccountInUse { name, .. } => format!("remove them first, or `vmctl user rm {name} --force` to remove them too"),
            Error::Unauthenticated(_) => "log in again (`vmctl login`), or check the token (`vmctl token ls`)".into(),
            Error::UploadNotFound(_) => {
                "upload the file again (`vmctl image import` and `vmctl iso upload` do both steps)".into()
            }
            Error::IsoNotFound(_) => "list ISOs with `vmctl iso ls`".into(),
            Error::IsoInUse { users, .. } => format!("eject it first: vmctl iso detach {}", users.join(" / ")),
            Error::BlankDisk(name) => format!("boot the install vm (vmctl start {name}), install the OS, stop it, then seal"),
            Error::IsoImport { source: StorageError::Detect(crate::storage::detect::DetectError::NotIso(refusal)), .. } => refusal.hint().into(),
            Error::IsoImport { source, .. } if is_refusal(source) => "upload a CD/DVD image (ISO 9660 or UDF); disk images go through `vmctl image import`".into(),
            Error::NotSealed(name) => format!("finish the installation, stop the install vm, then `vmctl image seal {name}`"),
            Error::IsoExists(_) | Error::ImageExists(_) | Error::VmExists(_) => "choose another name or remove the existing one first".into(),
            Error::ImageInUse { users, .. } => format!("remove those VMs first: vmctl rm {}", users.join(" ")),
            Error::Import { source: StorageError::Detect(crate::storage::detect::DetectError::Iso), .. } => {
                "an ISO is an installer medium, not a disk: add it with `vmctl iso upload`, or import a disk image".into()
            }
            Error::Generalize { source, .. } if is_not_generalizable(source) => "generalize supports ext2/3/4 root file systems; publish without --generalize and reset identity inside the guest before publishing".into(),
            Error::Generalize { source, .. } | Error::Import { source, .. } if is_sandbox_failure(source) => {
                "install bubblewrap (apt install bubblewrap; scripts/setup.sh does) and make the state directory's parents searchable by image_sandbox_user; see the daemon log".into()
            }
            Error::Import { source, .. } if is_refusal(source) => {
                "convert or flatten the image into a single self-contained file (e.g. `qemu-img convert -O qcow2 in out`) and import that".into()
            }
            _ if self.is_disk_full() => "the state file system is full: free space there (removing VMs works even now; `vmctl status` shows free space)".into(),
            Error::NoSpace { .. } => "free space in the state directory (`vmctl rm` unused VMs, `vmctl image rm` unused bases), or lower min_free_bytes in the vmd config".into(),
            Error::DiskInUse(name) => format!("a QEMU outside vmd's control holds it; restart vmd to stop it, or find it with `fuser` on the overlay of {name}"),
            Error::Store(_) | Error::Storage(_) | Error::Task(_) | Error::Resize { .. } | Error::Generalize { .. } => "see the daemon log (journalctl -u vmd)".into(),
            Error::StartFailed { name, .. } => format!("see `vmctl logs {name}` and `vmctl show {name}`"),
            Error::Busy { holder: "stop", .. } => "wait for it, or end it now with `vmctl stop --force`".into(),
            Error::Busy { .. } => "try again when it has finished".into(),
            Error::ConsoleBusy(name) => format!("detach the other client first (Ctrl-] in vmctl console), or take the console over: vmctl console --force {name}"),
            Error::PortInUse { .. } => "choose another --ssh-port (`vmctl port ls VM` shows a VM's forwards)".into(),
            Error::DiskShrink { .. } => "a disk can only grow; for a smaller one create a new VM (vmctl create --disk SIZE)".into(),
            Error::GrownNotRecorded { .. } => "repeat the same request: it records the size (see the daemon log)".into(),
            Error::NoProcess(name) => format!("see `vmctl show {name}`; restarting vmd retries the adoption"),
            _ => return None,
        })
    }
}

impl crate::store::DiskFull for Error {
    /// Whether any cause in the chain is "no space left": SQLite's `SQLITE_FULL`, an `ENOSPC`
    /// from a file operation, or qemu-img saying so.
    fn is_disk_full(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cause {
            if is_full_cause(err) {
                return true;
            }
            cause = err.source();
        }
        false
    }
}

fn is_full_cause(err: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(store) = err.downcast_ref::<StoreError>() {
        return crate::store::DiskFull::is_disk_full(store);
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return io.raw_os_error() == Some(libc::ENOSPC);
    }
    matches!(
        err.downcast_ref::<crate::storage::qemu_img::QemuImgError>(),
        Some(crate::storage::qemu_img::QemuImgError::Failed { stderr, .. })
            if stderr.contains("No space left on device")
    )
}

/// Whether the upload itself is at fault (invalid argument) rather than the host.
fn is_refusal(err: &StorageError) -> bool {
    use crate::storage::qemu_img::QemuImgError;
    match err {
        StorageError::Detect(d) => !matches!(d, crate::storage::detect::DetectError::Io(_)),
        StorageError::Refused(_) => true,
        StorageError::QemuImg(QemuImgError::Corrupt) => true,
        StorageError::QemuImg(QemuImgError::Unreadable { verb }) => *verb != "convert",
        _ => false,
    }
}

/// Whether the VM's disk is what generalize cannot handle (not vmd or the host).
fn is_not_generalizable(err: &StorageError) -> bool {
    use crate::storage::guest_fs::GuestFsError;
    matches!(
        err,
        StorageError::GuestFs(GuestFsError::NoRootFs | GuestFsError::TooManyEntries(..))
    )
}

/// Whether the image sandbox (bwrap) is what failed.
fn is_sandbox_failure(err: &StorageError) -> bool {
    use crate::storage::qemu_img::QemuImgError;
    matches!(
        err,
        StorageError::Sandbox(_)
            | StorageError::QemuImg(QemuImgError::Sandbox(_))
            | StorageError::GuestFs(crate::storage::guest_fs::GuestFsError::Sandbox(_))
    )
}

use crate::store::DiskFull as _;

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        let hint = err.hint();
        let api = ApiError::from_error(err.code(), &err);
        match hint {
            Some(h) => api.with_hint(h),
            None => api,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_names_users_and_hints() {
        let err = Error::ImageInUse {
            name: "deb".into(),
            users: vec!["a".into(), "b".into()],
        };
        assert_eq!(err.to_string(), "image deb is used by 2 vms: a, b");
        let api = ApiError::from(err);
        assert_eq!(api.kind(), ErrorCode::InUse);
        assert!(api
            .data
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("vmctl rm a b"));
    }

    #[test]
    fn unreadable_uploads_are_refusals_and_sandbox_failures_are_ours() {
        use crate::storage::qemu_img::QemuImgError;
        use crate::storage::sandbox::SandboxError;
        let import = |source| Error::Import {
            name: "x".into(),
            source,
        };
        for (source, code) in [
            (
                QemuImgError::Unreadable { verb: "info" },
                ErrorCode::InvalidArgument,
            ),
            (QemuImgError::Corrupt, ErrorCode::InvalidArgument),
            (
                QemuImgError::Unreadable { verb: "convert" },
                ErrorCode::Internal,
            ),
            (
                QemuImgError::Sandbox(SandboxError::Missing),
                ErrorCode::Internal,
            ),
        ] {
            let err = import(StorageError::QemuImg(source));
            assert_eq!(err.code(), code, "{err:?}");
        }
        let api = ApiError::from(import(StorageError::Sandbox(SandboxError::Missing)));
        assert_eq!(api.kind(), ErrorCode::Internal);
        let hint = api.data.hint.unwrap_or_default();
        assert!(hint.contains("install bubblewrap"), "{hint}");
    }

    #[test]
    fn refused_import_is_invalid_argument_with_chain() {
        let source = StorageError::Refused("image has a backing file".into());
        let api = ApiError::from(Error::Import {
            name: "x".into(),
            source,
        });
        assert_eq!(api.kind(), ErrorCode::InvalidArgument);
        assert_eq!(
            api.data.chain,
            vec!["cannot import image x", "image has a backing file"]
        );
    }
}
