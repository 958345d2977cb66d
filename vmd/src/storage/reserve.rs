//! The space reserve: a preallocated file in the state directory that vmd deletes when the file
//! system is about to run out, so that the writes that free space or record what QEMU is
//! doing (removing a VM, a forced stop, a state change, an event) still have room.
//!
//! The file is `<state_dir>/space-reserve` (`reserve_bytes` in the config, 0 disables it).
//! It is released before a write when free space is below [`LOW_WATER`], and at once when a
//! write fails with "no space"; it is made again by [`SpaceReserve::ensure`] (called at
//! start-up and by the space watcher) once there is room for it plus the free-space floor.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Free space below which the reserve is released before a write.
pub const LOW_WATER: u64 = 8 << 20;

/// The reserve file.
#[derive(Debug)]
pub struct SpaceReserve {
    path: PathBuf,
    dir: PathBuf,
    bytes: u64,
    present: AtomicBool,
}

impl SpaceReserve {
    /// A reserve of `bytes` in `state_dir` (not yet made: call [`SpaceReserve::ensure`]).
    pub fn new(state_dir: &Path, bytes: u64) -> SpaceReserve {
        let path = state_dir.join("space-reserve");
        SpaceReserve {
            present: AtomicBool::new(path.exists()),
            dir: state_dir.to_path_buf(),
            path,
            bytes,
        }
    }

    /// Whether the reserve file exists.
    pub fn is_held(&self) -> bool {
        self.present.load(Ordering::Acquire)
    }

    /// Size of the reserve when held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Makes the reserve if it is missing and `floor` bytes stay free beside it. Blocking.
    pub fn ensure(&self, floor: u64) -> bool {
        if self.bytes == 0 || self.is_held() {
            return self.is_held();
        }
        if super::free_bytes(&self.dir) < self.bytes.saturating_add(floor).max(LOW_WATER * 2) {
            return false;
        }
        match allocate(&self.path, self.bytes) {
            Ok(()) => {
                self.present.store(true, Ordering::Release);
                tracing::info!(path = %self.path.display(), bytes = self.bytes, "space reserve in place");
                true
            }
            Err(err) => {
                super::remove_quietly(&self.path);
                tracing::warn!(path = %self.path.display(), error = %err, "cannot make the space reserve");
                false
            }
        }
    }

    /// Deletes the reserve (if held); true if it was released now.
    pub fn release(&self, why: &str) -> bool {
        if !self.present.swap(false, Ordering::AcqRel) {
            return false;
        }
        super::remove_quietly(&self.path);
        tracing::warn!(
            bytes = self.bytes,
            why,
            "state file system full: space reserve released"
        );
        true
    }

    /// Releases the reserve when free space is below [`LOW_WATER`]. Blocking (statvfs).
    pub fn before_write(&self) {
        if self.is_held() && super::free_bytes(&self.dir) < LOW_WATER {
            self.release("free space below the low-water mark");
        }
    }
}

fn allocate(path: &Path, bytes: u64) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    let len = i64::try_from(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::empty(), 0, len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_released_and_made_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let reserve = SpaceReserve::new(dir.path(), 1 << 20);
        assert!(!reserve.is_held());
        assert!(reserve.ensure(0));
        let meta = std::fs::metadata(dir.path().join("space-reserve")).expect("file");
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= 1 << 20);
        assert!(reserve.release("test"));
        assert!(!reserve.release("test"), "released once");
        assert!(!dir.path().join("space-reserve").exists());
        assert!(reserve.ensure(0));
        assert!(!reserve.ensure(u64::MAX / 2) || reserve.is_held());
    }
}
