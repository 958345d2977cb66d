//! SHA-256 of a file that may have holes: its data is read, its holes are hashed as zeros
//! without being read (`SEEK_DATA`/`SEEK_HOLE`). The digest equals `sha256sum FILE`.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use nix::unistd::{lseek, Whence};
use sha2::{Digest, Sha256};

/// Zero bytes hashed per step for a hole.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Feeds `len` zero bytes to `hasher`.
pub fn hash_zeros(hasher: &mut Sha256, mut len: u64) {
    while len > 0 {
        let step = len.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..step]);
        len -= step as u64;
    }
}

/// The lowercase hex SHA-256 of the whole of `file` (blocking; call off the async workers).
pub fn sha256_sparse(file: &File) -> std::io::Result<String> {
    let size = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while pos < size {
        let data = next_data(file, pos)?.unwrap_or(size).min(size);
        hash_zeros(&mut hasher, data - pos);
        let hole = seek(file, data, Whence::SeekHole)?
            .unwrap_or(size)
            .min(size);
        let mut at = data;
        while at < hole {
            let want = ((hole - at) as usize).min(buf.len());
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(std::io::Error::other("the file shrank while it was hashed"));
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        pos = hole;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The offset of the next data at or after `pos`; `None` when only a hole follows.
fn next_data(file: &File, pos: u64) -> std::io::Result<Option<u64>> {
    seek(file, pos, Whence::SeekData)
}

/// `lseek` with `whence`; `None` for ENXIO (no data or hole at or after `pos`).
pub(crate) fn seek(file: &File, pos: u64, whence: Whence) -> std::io::Result<Option<u64>> {
    match lseek(file.as_fd(), pos as i64, whence) {
        Ok(at) => Ok(Some(at as u64)),
        Err(nix::errno::Errno::ENXIO) => Ok(None),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_hash_as_zeros_like_sha256sum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = File::create(&path).expect("create");
        file.write_all_at(b"head", 0).expect("write");
        file.write_all_at(b"middle", 5 << 20).expect("write");
        file.set_len(9 << 20).expect("len");
        let file = File::open(&path).expect("open");
        let mut dense = Sha256::new();
        dense.update(std::fs::read(&path).expect("read"));
        let want: String = dense
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha256_sparse(&file).expect("hash"), want);
        let empty = File::create(dir.path().join("e")).expect("create");
        assert_eq!(
            sha256_sparse(&empty).expect("hash"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
