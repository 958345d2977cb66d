//! The sandbox in which qemu-img reads uploaded (untrusted) images.
//!
//! qemu-img's format drivers follow references inside an image (backing files, external data
//! files, VMDK extents, descriptor files) and parse attacker-chosen metadata. vmd refuses such
//! references by its own header parsing first; this module is the second layer, so that a
//! reference the parsers missed, or a qemu-img bug, reaches nothing of the host's.
//!
//! Every qemu-img call on an upload runs as `bwrap … -- /usr/…/qemu-img ARGS`:
//!
//! - as an unprivileged user: `image_sandbox_user` (default `nobody`) when vmd is root, set
//!   with std's `CommandExt::uid/gid` (which also clears supplementary groups), else vmd's user;
//! - with every namespace unshared (`--unshare-all`: no network, own pid, ipc, uts, user and
//!   mount namespaces), `--cap-drop ALL`, `--clearenv`, `--new-session`, `--die-with-parent`;
//! - seeing only a read-only `/usr` (with the `/lib`, `/lib64`, `/bin` symlinks of a merged-usr
//!   system), a minimal `/dev`, its own `/proc`, the upload read-only at [`INPUT`] and a private
//!   writable directory at [`OUTPUT_DIR`].
//!
//! The same sandbox runs the file-system tools of [`TOOLS`] (`debugfs`, `e2fsck`, `sfdisk`)
//! on a raw copy of an image in `out/` (see [`super::guest_fs`]).
//!
//! There is no fallback: without `bwrap`, or when it cannot set up, imports fail.
//!
//! # Work directories
//! `sandbox/` under the state directory (0711, daemon-owned; start-up removes its contents)
//! holds one `job-<pid>-<n>/` per import, 0700 and owned by the sandbox user, with `in` (the
//! staged upload, moved in, 0400) and `out/`. bwrap resolves its bind sources as the sandbox
//! user, so the state directory's parents must be searchable by it (`/var/lib/vmd` is 0755).
//! The converted image is taken out by file descriptor: a regular file with one link, given
//! back to vmd's user and made 0444 before it is renamed into `images/`.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::process::Command;

/// Where the upload appears inside the sandbox.
pub const INPUT: &str = "/in/image";
/// The writable directory inside the sandbox.
pub const OUTPUT_DIR: &str = "/out";
/// Where a conversion writes its result inside the sandbox.
pub const OUTPUT: &str = "/out/image.qcow2";

/// The programs besides qemu-img that [`Job::tool`] runs (from `/usr/sbin`).
pub const TOOLS: &[&str] = &["debugfs", "e2fsck", "sfdisk"];

/// What bwrap sets up before it runs qemu-img (the job's binds follow).
const BWRAP_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--clearenv",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--chdir",
    "/",
];

/// Failures of the sandbox itself (not of qemu-img).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No `bwrap` on `PATH`.
    #[error("bwrap (bubblewrap) is not installed; image imports run qemu-img inside it")]
    Missing,
    /// qemu-img lives where the sandbox cannot see it.
    #[error("qemu-img is not installed under /usr, the only directory the image sandbox shows")]
    QemuImgOutsideUsr,
    /// A file-system tool the sandbox may run is not installed under `/usr/sbin`.
    #[error("{0} is not installed in /usr/sbin (e2fsprogs / fdisk packages)")]
    ToolMissing(&'static str),
    /// The configured user does not exist.
    #[error("image_sandbox_user {0:?} does not exist")]
    UnknownUser(String),
    /// The configured user is root (or empty).
    #[error("image_sandbox_user {0:?} is not an unprivileged user")]
    Privileged(String),
    /// bwrap ran but could not build the sandbox; its own words.
    #[error("cannot set up the image sandbox: {0}")]
    Setup(String),
    /// The converted file is not a plain file with one link (tampering).
    #[error("the sandbox's output is not a regular file")]
    BadOutput,
    /// A work-directory operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// A uid and gid to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The sandbox's work root and the user it runs as.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
    user: Option<Ids>,
    nonce: AtomicU64,
}

impl Sandbox {
    /// Uses (creating) `root`; resolves `user_name` when vmd runs as root.
    pub fn open(root: PathBuf, user_name: &str) -> Result<Sandbox, SandboxError> {
        let user = match nix::unistd::getuid().is_root() {
            true => Some(resolve_user(user_name)?),
            false => None,
        };
        std::fs::create_dir_all(&root).map_err(io("create", &root))?;
        std::fs::set_permissions(&root, Permissions::from_mode(0o711))
            .map_err(io("set permissions of", &root))?;
        if let Some(ids) = user {
            warn_if_unreachable(&root, ids, user_name);
        }
        Ok(Sandbox {
            root,
            user,
            nonce: AtomicU64::new(0),
        })
    }

    /// The uid and gid sandboxed processes run as (`None`: vmd's own).
    pub fn user(&self) -> Option<Ids> {
        self.user
    }

    /// Moves `upload` into a fresh job directory (blocking: call from a blocking task).
    ///
    /// The job directory stays vmd's own: it is made 0700, filled and its two entries handed
    /// to the sandbox user (no one else can reach them yet, so nothing can be swapped in), and
    /// only then opened to 0711 so the sandbox user can reach `in` and `out` by name. Nobody
    /// but vmd can rename or replace those entries, and the name is not guessable.
    pub fn job(&self, upload: &Path) -> Result<Job, SandboxError> {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join(format!("job-{}-{n}-{:016x}", std::process::id(), random()));
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        let job = Job {
            dir,
            user: self.user,
        };
        std::fs::set_permissions(&job.dir, Permissions::from_mode(0o700))
            .map_err(io("set permissions of", &job.dir))?;
        let (input, output) = (job.dir.join("in"), job.dir.join("out"));
        std::fs::create_dir(&output).map_err(io("create", &output))?;
        std::fs::set_permissions(&output, Permissions::from_mode(0o700))
            .map_err(io("set permissions of", &output))?;
        std::fs::rename(upload, &input).map_err(io("move", upload))?;
        std::fs::set_permissions(&input, Permissions::from_mode(0o400))
            .map_err(io("set permissions of", &input))?;
        if let Some(ids) = self.user {
            for path in [&output, &input] {
                std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
                    .map_err(io("chown", path))?;
            }
            std::fs::set_permissions(&job.dir, Permissions::from_mode(0o711))
                .map_err(io("set permissions of", &job.dir))?;
        }
        tracing::debug!(job = %job.dir.display(), user = ?self.user, "image sandbox job ready");
        Ok(job)
    }

    /// Removes job directories left by a crash. Returns the paths removed.
    pub fn remove_leftovers(&self) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten();
        let mut removed = Vec::new();
        for path in entries.map(|e| e.path()) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => removed.push(path),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove"),
            }
        }
        removed
    }
}

/// 64 bits that another local user cannot predict (from the kernel's random pool).
fn random() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    match read {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

/// Says at start-up, not at the first import, when a directory above the sandbox root cannot
/// be searched by the sandbox user (e.g. a state directory inside a 0700 `mktemp -d`).
fn warn_if_unreachable(root: &Path, ids: Ids, user_name: &str) {
    use std::os::unix::fs::MetadataExt;
    let blocked = root.ancestors().skip(1).find(|dir| {
        std::fs::metadata(dir).is_ok_and(|m| {
            let bits = match (m.uid() == ids.uid, m.gid() == ids.gid) {
                (true, _) => m.mode() >> 6,
                (false, true) => m.mode() >> 3,
                (false, false) => m.mode(),
            };
            bits & 0o1 == 0
        })
    });
    if let Some(dir) = blocked {
        tracing::warn!(dir = %dir.display(), user = user_name, "image imports will fail: the image sandbox user cannot search this directory (chmod o+x it, or move the state directory)");
    }
}

fn resolve_user(name: &str) -> Result<Ids, SandboxError> {
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| SandboxError::UnknownUser(name.to_string()))?;
    if user.uid.is_root() {
        return Err(SandboxError::Privileged(name.to_string()));
    }
    Ok(Ids {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// One import's work directory; removed (with whatever is left in it) on drop.
#[derive(Debug)]
pub struct Job {
    dir: PathBuf,
    user: Option<Ids>,
}

impl Job {
    /// `bwrap … -- qemu-img`, ready for qemu-img's arguments.
    pub fn qemu_img(&self) -> Result<Command, SandboxError> {
        let qemu_img = find_program("qemu-img")
            .and_then(|p| p.canonicalize().ok())
            .filter(|p| p.starts_with("/usr"))
            .ok_or(SandboxError::QemuImgOutsideUsr)?;
        self.bwrap(qemu_img)
    }

    /// `bwrap … -- /usr/sbin/TOOL` for one of [`TOOLS`] (e2fsprogs and util-linux programs
    /// that read the file systems inside an image), with the same binds as qemu-img.
    pub fn tool(&self, name: &'static str) -> Result<Command, SandboxError> {
        let path = Path::new("/usr/sbin").join(name);
        if !TOOLS.contains(&name) || !path.is_file() {
            return Err(SandboxError::ToolMissing(name));
        }
        self.bwrap(path)
    }

    /// Removes `name` from the job's `out/` (unlinks only; a no-op when it is missing).
    pub fn remove_output(&self, name: &str) {
        let path = self.dir.join("out").join(name);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove");
            }
        }
    }

    fn bwrap(&self, program: PathBuf) -> Result<Command, SandboxError> {
        let bwrap = find_program("bwrap").ok_or(SandboxError::Missing)?;
        let mut cmd = Command::new(bwrap);
        cmd.args(BWRAP_ARGS)
            .arg("--ro-bind")
            .arg(self.dir.join("in"))
            .arg(INPUT)
            .arg("--bind")
            .arg(self.dir.join("out"))
            .arg(OUTPUT_DIR)
            .arg("--")
            .arg(program)
            .env_clear();
        if let Some(ids) = self.user {
            cmd.uid(ids.uid).gid(ids.gid);
        }
        Ok(cmd)
    }

    /// Gives [`OUTPUT`] back to vmd's user, makes it 0444 and renames it to `dst` (blocking).
    pub fn take_output(&self, dst: &Path) -> Result<(), SandboxError> {
        let src = self.dir.join("out").join("image.qcow2");
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&src)
            .map_err(io("open", &src))?;
        let meta = file.metadata().map_err(io("stat", &src))?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(SandboxError::BadOutput);
        }
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        std::os::unix::fs::fchown(&file, Some(uid.as_raw()), Some(gid.as_raw()))
            .map_err(io("chown", &src))?;
        file.set_permissions(Permissions::from_mode(0o444))
            .map_err(io("make read-only", &src))?;
        std::fs::rename(&src, dst).map_err(io("move", &src))?;
        same_file(&file, dst)
    }
}

/// After the rename, `dst` must be the inode that was checked (no swap in between).
fn same_file(file: &File, dst: &Path) -> Result<(), SandboxError> {
    let (checked, moved) = (file.metadata(), std::fs::symlink_metadata(dst));
    match (checked, moved) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => Ok(()),
        _ => {
            let _ = std::fs::remove_file(dst);
            Err(SandboxError::BadOutput)
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // Unlinks only: quick even for a large upload, so fine on an async worker.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(path = %self.dir.display(), error = %e, "cannot remove sandbox job");
        }
    }
}

/// `name` in `$PATH` (or the usual system directories when `PATH` is unset).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
