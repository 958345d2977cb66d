//! Creating the listening socket: explicit permissions from the start (bind under a temporary
//! name, chmod/chown, then rename into place), stale sockets replaced, a live one refused.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Failures creating the socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another daemon answers on the path.
    #[error("another vmd is already serving on {0}")]
    InUse(PathBuf),
    /// The path exists and cannot be probed or replaced.
    #[error("cannot use socket path {path}")]
    Path {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configured group does not exist.
    #[error("socket group {0:?} does not exist")]
    NoGroup(String),
}

/// Binds `path` with `mode` and optional group, replacing a stale socket file.
pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<UnixListener, SocketError> {
    let err = |source| SocketError::Path {
        path: path.to_path_buf(),
        source,
    };
    check_not_live(path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_file_name(format!(".{}.{}", file_name(path), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(err)?;
    let configured =
        set_access(&tmp, mode, group).and_then(|()| std::fs::rename(&tmp, path).map_err(err));
    if configured.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    configured.map(|()| listener)
}

fn check_not_live(path: &Path) -> Result<(), SocketError> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_path_buf())),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => Ok(()),
        Err(source) => Err(SocketError::Path {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn set_access(path: &Path, mode: u32, group: Option<&str>) -> Result<(), SocketError> {
    let err = |source| SocketError::Path {
        path: path.to_path_buf(),
        source,
    };
    if let Some(name) = group {
        let gid = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| SocketError::NoGroup(name.to_string()))?
            .gid;
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| err(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vmd.sock".into())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[tokio::test]
    async fn stale_is_replaced_live_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vmd.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale"));
        let listener = bind(&path, 0o660, None).expect("replaces stale socket");
        let meta = std::fs::metadata(&path).expect("meta");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        let err = bind(&path, 0o660, None).expect_err("live socket refused");
        assert!(matches!(err, SocketError::InUse(_)), "{err}");
        drop(listener);
    }

    #[tokio::test]
    async fn unknown_group_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let err =
            bind(&dir.path().join("s"), 0o660, Some("no-such-group-vmd")).expect_err("refused");
        assert!(matches!(err, SocketError::NoGroup(_)));
        assert!(!dir.path().join("s").exists());
    }
}
