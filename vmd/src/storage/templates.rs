//! Files of warm templates: `templates/<dir>/` holds the frozen disk layer (`disk.qcow2`, the
//! source VM's former overlay), the guest RAM (`ram`, a sparse copy of the VM's memfd) and
//! QEMU's device state (`state`, a migration stream without RAM). All three are read-only
//! once the template is recorded; clones map `ram` privately and read `state` at their
//! first start. `source` names the VM overlay the disk layer was, so that a vmd killed
//! before the template was recorded can give the VM its disk back at start-up
//! ([`Storage::recover_unrecorded`]): a template in the making is a hidden `.tmp-` directory,
//! then (just before it is recorded) its final one; a removed template is renamed to a
//! hidden `.trash-` directory before its row is deleted.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use std::os::fd::OwnedFd;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::unistd::Whence;

use super::digest::seek;
use super::{disk_usage, Storage, StorageError};

/// The frozen disk layer.
pub const DISK: &str = "disk.qcow2";
/// The guest RAM.
pub const RAM: &str = "ram";
/// The device state.
pub const STATE: &str = "state";
/// The file name under `overlays/` the disk layer had.
pub const SOURCE: &str = "source";

/// Pages compared against zero while copying RAM.
const PAGE: usize = 4096;
/// Bytes read at a time while copying RAM.
const CHUNK: usize = 1 << 20;

impl Storage {
    /// `templates/`.
    pub fn templates_dir(&self) -> &Path {
        &self.templates_dir
    }

    /// A file of the template in `dir` (a name under `templates/`).
    pub fn template_file(&self, dir: &str, file: &str) -> PathBuf {
        self.templates_dir.join(dir).join(file)
    }

    /// A fresh hidden directory for a template in the making (mode 0700).
    pub fn new_template_dir(&self, name: &str) -> Result<PathBuf, StorageError> {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .templates_dir
            .join(format!(".tmp-{name}-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(StorageError::io("create", &dir))?;
        Ok(dir)
    }

    /// Bytes the template's files occupy.
    pub fn template_usage(&self, dir: &str) -> u64 {
        [DISK, RAM, STATE]
            .iter()
            .map(|f| disk_usage(&self.template_file(dir, f)))
            .sum()
    }

    /// Removes every template directory not in `recorded` (blocking). One whose template
    /// was being created (not `.trash-`) first gives its disk layer back to the VM overlay
    /// its `source` names: the VM was never recorded as the template's clone, so that disk
    /// is the VM's. Returns the directories removed, each with the overlay given back.
    pub fn recover_unrecorded(
        &self,
        recorded: &std::collections::HashSet<String>,
    ) -> Vec<(PathBuf, Option<PathBuf>)> {
        let mut done = Vec::new();
        for dir in super::list_dir(&self.templates_dir) {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name.filter(|n| !recorded.contains(n)) else {
                continue;
            };
            if let Some(live) = name
                .strip_prefix(".trash-")
                .filter(|n| recorded.contains(*n))
            {
                // A removal whose row stayed: the template is still there.
                if let Err(err) = std::fs::rename(&dir, self.templates_dir.join(live)) {
                    tracing::warn!(path = %dir.display(), error = %err, "cannot restore template");
                }
                continue;
            }
            let given_back = match name.starts_with(".trash-") {
                true => None,
                false => self.give_back(&dir),
            };
            if dir.join(DISK).exists() && given_back.is_none() && !name.starts_with(".trash-") {
                // Never delete what may be a VM's only disk: leave it for the admin.
                tracing::warn!(path = %dir.display(), "unrecorded template keeps a disk layer; left in place");
                continue;
            }
            if let Err(err) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), error = %err, "cannot remove leftover");
                continue;
            }
            done.push((dir, given_back));
        }
        done
    }

    /// Moves `dir`'s disk layer back to the overlay its `source` names.
    fn give_back(&self, dir: &Path) -> Option<PathBuf> {
        let source = std::fs::read_to_string(dir.join(SOURCE)).ok()?;
        let source = source.trim();
        let plain = !source.is_empty() && !source.starts_with('.') && !source.contains('/');
        if !plain || !dir.join(DISK).exists() {
            return None;
        }
        let overlay = self.overlays_dir.join(source);
        // An overlay there is the VM's unless it is the fresh one made on this very layer
        // (vmd died between putting it in place and recording the template).
        let fresh_on_this = backing_file(&overlay).is_some_and(|b| Path::new(&b).starts_with(dir));
        if overlay.exists() && !fresh_on_this {
            return None;
        }
        std::fs::rename(dir.join(DISK), &overlay).ok()?;
        let _ = std::fs::set_permissions(&overlay, std::fs::Permissions::from_mode(0o640));
        Some(overlay)
    }
}

/// The backing file a qcow2 image's header names, if any (vmd's own files only).
fn backing_file(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut header = [0u8; 20];
    file.read_exact_at(&mut header, 0).ok()?;
    if &header[..4] != b"QFI\xfb" {
        return None;
    }
    let offset = u64::from_be_bytes(header[8..16].try_into().ok()?);
    let len = u32::from_be_bytes(header[16..20].try_into().ok()?);
    if offset == 0 || len == 0 || len > 4096 {
        return None;
    }
    let mut name = vec![0u8; len as usize];
    file.read_exact_at(&mut name, offset).ok()?;
    String::from_utf8(name).ok()
}

/// A sealed memfd holding the first `len` bytes of the RAM file `path` (blocking): clones map
/// it privately, and nothing can write it any more (`F_SEAL_WRITE`, `F_SEAL_SEAL`), not even
/// a QEMU that opened it for writing, so one clone can never change what another maps.
pub fn sealed_ram(path: &Path, len: u64, name: &str) -> Result<OwnedFd, StorageError> {
    let input = File::open(path).map_err(StorageError::io("open", path))?;
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let fd = memfd_create(name, flags).map_err(|e| StorageError::Io {
        op: "create a memfd for",
        path: path.display().to_string(),
        source: e.into(),
    })?;
    let ram = File::from(fd);
    ram.set_len(len)
        .map_err(StorageError::io("size a memfd for", path))?;
    copy_pages(&input, &ram, len).map_err(StorageError::io("copy into a memfd", path))?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SEAL;
    fcntl(&ram, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| StorageError::Io {
        op: "seal the memfd of",
        path: path.display().to_string(),
        source: e.into(),
    })?;
    Ok(ram.into())
}

/// Notes in `staging` which overlay its disk layer comes from.
pub fn note_source(staging: &Path, overlay_file: &str) -> Result<(), StorageError> {
    let path = staging.join(SOURCE);
    std::fs::write(&path, overlay_file).map_err(StorageError::io("write", &path))
}

/// Makes the template's files readable by their owner only (blocking): the disk layer and
/// the state read-only; the RAM file 0600, because QEMU 7.2 opens a memory backend's file
/// for writing even when it maps it privately (clones never write it; [`ram_seal`] tells
/// whether anything did).
pub fn seal(dir: &Path) -> Result<(), StorageError> {
    for (file, mode) in [(DISK, 0o400), (STATE, 0o400), (SOURCE, 0o400), (RAM, 0o600)] {
        let path = dir.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(StorageError::io("set permissions of", &path))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(StorageError::io("set permissions of", dir))
}

/// The RAM file's size and modification time, `SIZE:MTIME_NS` (blocking). A write through
/// any descriptor changes it, and only the owner (vmd) can set times back.
pub fn ram_seal(path: &Path) -> Result<String, StorageError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(StorageError::io("stat", path))?;
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Ok(format!("{}:{mtime_ns}", meta.len()))
}

/// Copies the first `len` bytes of `src` (a guest's RAM) into a new sparse file `dst`:
/// holes and all-zero pages are not written. Returns the bytes written (blocking).
pub fn copy_ram(src: &Path, dst: &Path, len: u64) -> Result<u64, StorageError> {
    let input = File::open(src).map_err(StorageError::io("open", src))?;
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(StorageError::io("create", dst))?;
    output.set_len(len).map_err(StorageError::io("size", dst))?;
    let written =
        copy_pages(&input, &output, len).map_err(StorageError::io("copy RAM into", dst))?;
    output.sync_all().map_err(StorageError::io("sync", dst))?;
    Ok(written)
}

fn copy_pages(input: &File, output: &File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let (mut pos, mut written) = (0u64, 0u64);
    while pos < len {
        let Some(data) = seek(input, pos, Whence::SeekData)? else {
            break;
        };
        let hole = seek(input, data, Whence::SeekHole)?.unwrap_or(len).min(len);
        let mut at = data;
        while at < hole {
            let n = usize::try_from(hole - at).map_or(CHUNK, |left| left.min(CHUNK));
            input.read_exact_at(&mut buf[..n], at)?;
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                if page.iter().any(|b| *b != 0) {
                    output.write_all_at(page, at + (i * PAGE) as u64)?;
                    written += page.len() as u64;
                }
            }
            at += n as u64;
        }
        pos = hole.max(data + 1);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_copies_keep_data_and_skip_zero_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        let file = File::create(&src).expect("create");
        file.set_len(64 * 4096).expect("size");
        file.write_all_at(b"hello", 3 * 4096 + 10).expect("write");
        file.write_all_at(&[0u8; 4096], 5 * 4096)
            .expect("zero page");
        file.write_all_at(b"end", 63 * 4096).expect("write");
        let dst = dir.path().join("dst");
        let written = copy_ram(&src, &dst, 64 * 4096).expect("copy");
        assert_eq!(written, 2 * 4096, "only the two non-zero pages");
        assert_eq!(
            std::fs::read(&src).expect("src"),
            std::fs::read(&dst).expect("dst")
        );
        assert!(copy_ram(&src, &dst, 4096).is_err(), "never overwrites");
    }

    #[test]
    fn sealed_ram_has_the_file_s_bytes_and_refuses_every_write() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("ram");
        let file = File::create(&src).expect("create");
        file.set_len(16 * 4096).expect("size");
        file.write_all_at(b"template", 4096).expect("write");
        let fd = sealed_ram(&src, 16 * 4096, "test").expect("sealed");
        // What QEMU does: open it by path for reading and writing.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("a sealed memfd still opens read-write");
        let mut buf = [0u8; 8];
        opened.read_exact_at(&mut buf, 4096).expect("read");
        assert_eq!(&buf, b"template");
        assert!(
            opened.write_all_at(b"poison!!", 4096).is_err(),
            "writes are refused"
        );
        assert!(opened.set_len(4096).is_err(), "it cannot shrink");
        opened.read_exact_at(&mut buf, 4096).expect("read");
        assert_eq!(&buf, b"template");
    }

    #[test]
    fn unrecorded_templates_give_the_disk_back_and_removals_finish() {
        let root = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&root.path().join("state"), "nobody").expect("storage");
        let make = |name: &str, source: Option<&str>| {
            let dir = storage.templates_dir().join(name);
            std::fs::create_dir(&dir).expect("dir");
            std::fs::write(dir.join(DISK), name).expect("disk");
            if let Some(source) = source {
                note_source(&dir, source).expect("source");
            }
        };
        make(".tmp-a-1-0", Some("a.qcow2"));
        make("b.1f", Some("b.qcow2"));
        make(".trash-c.2f", Some("c.qcow2"));
        make("d.3f", Some("d.qcow2"));
        make("e.4f", Some("../escape"));
        make(".trash-f.5f", None);
        make("g.6f", Some("g.qcow2"));
        std::fs::write(storage.overlay_path("g.qcow2"), "written since").expect("overlay");
        let recorded = ["d.3f", "f.5f"].map(String::from).into_iter().collect();
        let done = storage.recover_unrecorded(&recorded);
        assert_eq!(done.len(), 3, "{done:?}");
        let overlay = |f: &str| storage.overlay_path(f);
        assert_eq!(
            std::fs::read_to_string(overlay("a.qcow2")).ok().as_deref(),
            Some(".tmp-a-1-0")
        );
        assert_eq!(
            std::fs::read_to_string(overlay("b.qcow2")).ok().as_deref(),
            Some("b.1f")
        );
        assert!(
            !overlay("c.qcow2").exists(),
            "a removed template gives nothing back"
        );
        assert!(!root.path().join("state/escape").exists());
        assert!(
            storage.templates_dir().join("d.3f").join(DISK).exists(),
            "recorded: kept"
        );
        assert!(
            storage.templates_dir().join("e.4f").join(DISK).exists(),
            "a disk that cannot go back is never deleted"
        );
        assert!(
            storage.templates_dir().join("f.5f").join(DISK).exists(),
            "a removal whose row stayed is undone"
        );
        assert_eq!(
            std::fs::read_to_string(storage.overlay_path("g.qcow2"))
                .ok()
                .as_deref(),
            Some("written since"),
            "an overlay that is not the fresh one on this layer is never overwritten"
        );
        assert_eq!(super::super::list_dir(storage.templates_dir()).len(), 4);
    }
}
