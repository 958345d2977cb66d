//! Daemon-owned disk storage under the state directory.
//!
//! # Layout
//! - `images/<name>.qcow2`: read-only (0444) standalone qcow2 bases, never written after import.
//! - `overlays/<vm>.qcow2`: one qcow2 overlay per VM, backed by an absolute base path with an
//!   explicit backing format.
//! - `uploads/`: staged uploads, deleted after import, on expiry and at start-up.
//! - `isos/<name>.iso`: read-only (0444) ISO library; world-readable so that a QEMU running as
//!   the unprivileged user can open one when it is inserted at run time.
//! - `sandbox/`: one work directory per import or generalize, where qemu-img and the
//!   file-system tools read the image inside the image sandbox (see [`sandbox`], [`guest_fs`]).
//!
//! Uploads are untrusted: [`Storage::prepare_base`] (in `import.rs`) parses headers itself, then
//! runs every qemu-img step in the sandbox. Files vmd made itself (overlays, blank disks, the
//! flattening of its own VMs' disks) are handled by qemu-img directly.
//!
//! Files are made under a hidden temporary name (`.tmp-…`) and renamed into place, so a crash
//! leaves either the old file, the new file, or a hidden temporary that start-up removes.
//! Deletions first rename to a hidden `.trash-…` name inside the same transaction as the row.

pub mod detect;
pub mod digest;
pub mod generalize;
pub mod guest_fs;
mod import;
pub mod inuse;
pub mod qemu_img;
pub mod reserve;
pub mod sandbox;
pub mod templates;
pub mod vmdk;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use detect::{DetectError, Format};
use qemu_img::QemuImgError;
use sandbox::{Sandbox, SandboxError};

/// Failures of storage operations.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file was refused by the header checks.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// qemu-img failed.
    #[error(transparent)]
    QemuImg(#[from] QemuImgError),
    /// The image sandbox could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// An offline file-system operation (generalize, cloud-init detection) failed.
    #[error(transparent)]
    GuestFs(#[from] guest_fs::GuestFsError),
    /// qemu-img reported a reference to another file or another refusal reason.
    #[error("{0}")]
    Refused(String),
    /// A file system operation failed.
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

impl StorageError {
    fn io<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
        move |source| StorageError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// A converted base waiting to be committed under its final name.
#[derive(Debug)]
pub struct PreparedBase {
    /// Hidden temporary qcow2 in `images/`.
    pub tmp_path: PathBuf,
    /// Format of the uploaded bytes.
    pub source_format: Format,
    /// Guest-visible size.
    pub virtual_size_bytes: u64,
    /// Whether cloud-init was found in the image (`None`: not looked for).
    pub cloud_init: Option<bool>,
}

/// The storage directories.
#[derive(Debug)]
pub struct Storage {
    images_dir: PathBuf,
    overlays_dir: PathBuf,
    uploads_dir: PathBuf,
    isos_dir: PathBuf,
    templates_dir: PathBuf,
    sandbox: Arc<Sandbox>,
    nonce: AtomicU64,
}

impl Storage {
    /// Uses (creating if needed) the directories under `state_dir`; uploads are read by
    /// qemu-img as `sandbox_user` when vmd runs as root.
    pub fn open(state_dir: &Path, sandbox_user: &str) -> Result<Storage, StorageError> {
        let storage = Storage {
            images_dir: state_dir.join("images"),
            overlays_dir: state_dir.join("overlays"),
            uploads_dir: state_dir.join("uploads"),
            isos_dir: state_dir.join("isos"),
            templates_dir: state_dir.join("templates"),
            sandbox: Arc::new(Sandbox::open(state_dir.join("sandbox"), sandbox_user)?),
            nonce: AtomicU64::new(0),
        };
        for (dir, mode) in [
            (&storage.images_dir, 0o755),
            (&storage.overlays_dir, 0o750),
            (&storage.uploads_dir, 0o700),
            (&storage.isos_dir, 0o755),
            // Templates hold guests' RAM: only vmd (and QEMU before -runas) reads them.
            (&storage.templates_dir, 0o700),
        ] {
            std::fs::create_dir_all(dir).map_err(StorageError::io("create", dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .map_err(StorageError::io("set permissions of", dir))?;
        }
        Ok(storage)
    }

    /// `images/`.
    pub fn images_dir(&self) -> &Path {
        &self.images_dir
    }

    /// `overlays/`.
    pub fn overlays_dir(&self) -> &Path {
        &self.overlays_dir
    }

    /// `uploads/`.
    pub fn uploads_dir(&self) -> &Path {
        &self.uploads_dir
    }

    /// `isos/`.
    pub fn isos_dir(&self) -> &Path {
        &self.isos_dir
    }

    /// Path of an ISO file.
    pub fn iso_path(&self, file_name: &str) -> PathBuf {
        self.isos_dir.join(file_name)
    }

    /// Checks that a staged upload is an ISO 9660 or UDF image and moves it to a hidden
    /// read-only file in `isos/` (a rename: uploads and ISOs share the state file system).
    pub async fn prepare_iso(&self, upload: &Path, name: &str) -> Result<PathBuf, StorageError> {
        let staged = upload.to_path_buf();
        let tmp = self.hidden_path(&self.isos_dir, "tmp", name);
        let dst = tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            let mut f = std::fs::File::open(&staged).map_err(StorageError::io("open", &staged))?;
            detect::check_iso(&mut f)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o444))
                .map_err(StorageError::io("make read-only", &staged))?;
            std::fs::rename(&staged, &dst).map_err(StorageError::io("move", &staged))
        })
        .await
        .map_err(|e| StorageError::Refused(format!("ISO check panicked: {e}")))??;
        Ok(tmp)
    }

    /// Creates a hidden blank standalone qcow2 of `size_bytes` in `overlays/` (an install
    /// VM's disk), to be renamed into place.
    pub async fn new_blank(&self, vm: &str, size_bytes: u64) -> Result<PathBuf, StorageError> {
        let tmp = self.hidden_path(&self.overlays_dir, "tmp", vm);
        if let Err(err) = qemu_img::create_blank(&tmp, size_bytes).await {
            remove_quietly(&tmp);
            return Err(err.into());
        }
        Ok(tmp)
    }

    /// Flattens `disk` (an overlay and its backing chain) into a hidden standalone read-only
    /// qcow2 in `images/`, returning it with its size.
    pub async fn flatten(&self, disk: &Path, name: &str) -> Result<PreparedBase, StorageError> {
        let tmp_path = self.hidden_path(&self.images_dir, "tmp", name);
        let result = self.convert(Format::Qcow2, disk, &tmp_path).await;
        if result.is_err() {
            remove_quietly(&tmp_path);
        }
        Ok(PreparedBase {
            tmp_path,
            source_format: Format::Qcow2,
            virtual_size_bytes: result?,
            cloud_init: None,
        })
    }

    /// Path of a base image file.
    pub fn image_path(&self, file_name: &str) -> PathBuf {
        self.images_dir.join(file_name)
    }

    /// Path of an overlay file.
    pub fn overlay_path(&self, file_name: &str) -> PathBuf {
        self.overlays_dir.join(file_name)
    }

    /// A fresh hidden name in `dir` for work in progress on `stem`.
    pub fn hidden_path(&self, dir: &Path, kind: &str, stem: &str) -> PathBuf {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".{kind}-{stem}-{}-{n}.qcow2", std::process::id()))
    }

    async fn convert(&self, format: Format, src: &Path, dst: &Path) -> Result<u64, StorageError> {
        qemu_img::convert_to_qcow2(format.as_str(), src, dst).await?;
        let info = qemu_img::info("qcow2", dst).await?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o444))
            .map_err(StorageError::io("make read-only", dst))?;
        Ok(info.virtual_size)
    }

    /// Creates a hidden overlay in `overlays/` on `base`, to be renamed into place.
    pub async fn new_overlay(
        &self,
        base: &Path,
        vm: &str,
        size_bytes: u64,
    ) -> Result<PathBuf, StorageError> {
        let tmp = self.hidden_path(&self.overlays_dir, "tmp", vm);
        if let Err(err) = qemu_img::create_overlay(base, &tmp, size_bytes).await {
            remove_quietly(&tmp);
            return Err(err.into());
        }
        Ok(tmp)
    }

    /// Grows the VM disk at `path` (an overlay or an install disk) to `size_bytes`; qemu-img
    /// refuses a smaller size.
    pub async fn grow_disk(&self, path: &Path, size_bytes: u64) -> Result<(), StorageError> {
        Ok(qemu_img::resize(path, size_bytes, false).await?)
    }

    /// Undoes [`Storage::grow_disk`]: back to `size_bytes`, the size before the grow, which
    /// is safe while nothing has written beyond it (no QEMU has had the disk since).
    pub async fn shrink_back(&self, path: &Path, size_bytes: u64) -> Result<(), StorageError> {
        Ok(qemu_img::resize(path, size_bytes, true).await?)
    }

    /// Removes hidden leftovers of interrupted operations and all staged uploads. Returns the
    /// paths removed.
    pub fn remove_leftovers(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for dir in [&self.images_dir, &self.overlays_dir, &self.isos_dir] {
            for path in list_dir(dir).into_iter().filter(|p| is_hidden(p)) {
                remove_quietly(&path);
                removed.push(path);
            }
        }
        for path in list_dir(&self.uploads_dir) {
            remove_quietly(&path);
            removed.push(path);
        }
        removed.extend(self.sandbox.remove_leftovers());
        removed
    }

    /// Visible `*.qcow2` file names in `dir`.
    pub fn qcow2_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = list_dir(dir)
            .into_iter()
            .filter(|p| !is_hidden(p) && p.extension().is_some_and(|e| e == "qcow2"))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect();
        names.sort();
        names
    }
}

/// SHA-256 of a file, lowercase hex (blocking: call from a blocking task).
pub fn sha256_file(path: &Path) -> Result<String, StorageError> {
    let file = std::fs::File::open(path).map_err(StorageError::io("open", path))?;
    digest::sha256_sparse(&file).map_err(StorageError::io("read", path))
}

/// Bytes a file occupies on disk (allocated blocks), 0 if missing.
pub fn disk_usage(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

/// Sum of [`disk_usage`] of the visible files in `dir`.
pub fn dir_usage(dir: &Path) -> u64 {
    list_dir(dir).iter().map(|p| disk_usage(p)).sum()
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

/// A temporary file removed when the guard is dropped, whatever ends the work on it: an error,
/// a cancelled request (a client that disconnects drops the handler's future) or success
/// (after it was renamed into place, removing the old path does nothing).
pub struct TempGuard(pub PathBuf);

impl Drop for TempGuard {
    fn drop(&mut self) {
        remove_quietly(&self.0);
    }
}

/// Removes a file, ignoring errors (used on failure paths where the first error matters).
pub fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove file");
        }
    }
}

/// Renames `from` to `to`, mapping the error.
pub fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    std::fs::rename(from, to).map_err(StorageError::io("rename", from))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}
