//! Creating the listening socket: explicit permissions from the start (bind under a temporary
//! name, chmod/chown, then rename into place), stale sockets replaced, a live one refused.
//!
//! The directory holding the socket must be safe, or vmd refuses to serve: whoever can write
//! there can swap the socket for their own and receive other users' requests. A missing
//! directory is created 0755. Then the socket's directory (symlinks resolved) must be owned
//! by the daemon's uid or root and not be writable by group or others; every directory above
//! it must be owned by the daemon's uid or root and be either not writable by group or others
//! or sticky (like `/tmp`, where nobody can rename another user's entries). A sticky directory
//! is not accepted as the socket's own directory: anyone could squat the socket name there
//! while vmd is down.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    /// A directory on the socket's path lets others replace the socket.
    #[error(
        "refusing to serve: socket directory {dir} {problem}; fix it or choose another --socket"
    )]
    UnsafeDir {
        /// The offending directory.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Binds `path` with `mode` and optional group, replacing a stale socket file.
pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<UnixListener, SocketError> {
    let err = |source| SocketError::Path {
        path: path.to_path_buf(),
        source,
    };
    check_not_live(path)?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    create_dir(dir).map_err(err)?;
    check_dir_chain(dir, nix::unistd::geteuid().as_raw())?;
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

/// Creates `dir` and its missing parents with mode 0755, whatever the umask.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
    }
}

/// Checks `dir` (the socket's directory) and every directory above it for `uid`.
fn check_dir_chain(dir: &Path, uid: u32) -> Result<(), SocketError> {
    let real = dir.canonicalize().map_err(|source| SocketError::Path {
        path: dir.to_path_buf(),
        source,
    })?;
    for (i, each) in real.ancestors().enumerate() {
        let meta = std::fs::metadata(each).map_err(|source| SocketError::Path {
            path: each.to_path_buf(),
            source,
        })?;
        if let Some(problem) = dir_problem(meta.uid(), meta.mode(), uid, i == 0) {
            return Err(SocketError::UnsafeDir {
                dir: each.to_path_buf(),
                problem,
            });
        }
    }
    Ok(())
}

/// What makes a directory with `owner` and `mode` unsafe for a daemon running as `uid`.
fn dir_problem(owner: u32, mode: u32, uid: u32, is_socket_dir: bool) -> Option<String> {
    let sticky = mode & 0o1000 != 0;
    if owner != uid && owner != 0 {
        return Some(format!(
            "is owned by uid {owner}, not by vmd's uid {uid} or root"
        ));
    }
    let writable = mode & 0o022 != 0;
    if writable && (is_socket_dir || !sticky) {
        return Some(format!(
            "is writable by group or others (mode {:04o})",
            mode & 0o7777
        ));
    }
    None
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

    #[tokio::test]
    async fn socket_dir_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = bind(&open.join("vmd.sock"), 0o660, None).expect_err("refused");
        assert!(
            matches!(&err, SocketError::UnsafeDir { dir, .. } if *dir == open),
            "{err}"
        );
        assert!(err.to_string().contains("0777"), "{err}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert!(
            bind(&open.join("vmd.sock"), 0o660, None).is_err(),
            "sticky is not enough"
        );
        assert!(!open.join("vmd.sock").exists(), "nothing bound");
    }

    #[tokio::test]
    async fn socket_dir_owned_by_another_user_is_refused() {
        if nix::unistd::geteuid().as_raw() != 0 {
            return; // chown to another uid needs root (the test suite runs as root)
        }
        let dir = tempfile::tempdir().expect("tmp");
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        let nobody = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&theirs, Some(nobody), None).expect("chown");
        let err = bind(&theirs.join("vmd.sock"), 0o660, None).expect_err("refused");
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        let below = theirs.join("mine");
        std::fs::create_dir(&below).expect("mkdir");
        let err = bind(&below.join("vmd.sock"), 0o660, None).expect_err("ancestor refused");
        assert!(
            matches!(&err, SocketError::UnsafeDir { dir, .. } if *dir == theirs),
            "{err}"
        );
    }

    #[tokio::test]
    async fn created_dir_is_0755_and_a_sticky_ancestor_is_accepted() {
        let dir = tempfile::tempdir().expect("tmp");
        let sticky = dir.path().join("tmp");
        std::fs::create_dir(&sticky).expect("mkdir");
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let path = sticky.join("run/vmd/vmd.sock");
        let listener = bind(&path, 0o660, None).expect("sticky ancestor like /tmp is fine");
        for created in [sticky.join("run"), sticky.join("run/vmd")] {
            let mode = std::fs::metadata(&created)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o755, "{}", created.display());
        }
        drop(listener);
    }

    #[test]
    fn dir_rules() {
        assert_eq!(dir_problem(1000, 0o40755, 1000, true), None);
        assert_eq!(dir_problem(0, 0o40755, 1000, true), None);
        assert_eq!(dir_problem(0, 0o41777, 1000, false), None, "/tmp above");
        assert!(dir_problem(0, 0o41777, 1000, true).is_some(), "/tmp itself");
        assert!(
            dir_problem(1000, 0o40775, 1000, false).is_some(),
            "group-writable"
        );
        assert!(
            dir_problem(1001, 0o40700, 1000, false).is_some(),
            "someone else's"
        );
        assert!(
            dir_problem(1000, 0o40700, 0, true).is_some(),
            "a user's dir for root"
        );
    }
}
