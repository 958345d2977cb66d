//! Whether a disk file is open in some QEMU or qemu-img.
//!
//! QEMU and qemu-img take open-file-description (OFD) locks on the bytes of an image they use
//! (shared ones for the permissions they hold, see QEMU's `raw_apply_lock_bytes`). Asking the
//! kernel whether an exclusive lock over the whole file *could* be taken (`F_OFD_GETLK`) tells
//! whether any process has the image open, whoever started it — including a QEMU that vmd does
//! not know about. vmd itself takes no such locks.

use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg};

/// True when some process holds a lock on `path`; a missing file is not in use.
pub fn in_use(path: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&file, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(std::io::Error::from)?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_elsewhere_is_seen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("disk.qcow2");
        std::fs::write(&path, b"x").expect("write");
        assert!(!in_use(&path).expect("probe"));
        assert!(!in_use(&dir.path().join("missing")).expect("probe"));
        let holder = std::fs::File::open(&path).expect("open");
        let shared = libc::flock {
            l_type: libc::F_RDLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 100,
            l_len: 1,
            l_pid: 0,
        };
        fcntl(&holder, FcntlArg::F_OFD_SETLK(&shared)).expect("lock");
        assert!(in_use(&path).expect("probe"));
        drop(holder);
        assert!(!in_use(&path).expect("probe"));
    }
}
