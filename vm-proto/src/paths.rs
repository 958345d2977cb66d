//! Where clients and the daemon look for the socket when none is given.
//!
//! Order for clients: `--socket`, then `$VMD_SOCKET`, then [`default_socket_path`]. The daemon
//! uses [`default_socket_path`] when started without `--socket`.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Socket of a system-wide daemon (run as root, e.g. by systemd).
pub const SYSTEM_SOCKET: &str = "/run/vmd/vmd.sock";

/// The effective uid of this process (read from `/proc/self`, no unsafe code needed).
pub fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// The default socket: [`SYSTEM_SOCKET`] for root, else `$XDG_RUNTIME_DIR/vmd/vmd.sock`, else
/// `$TMPDIR/vmd-<uid>/vmd.sock`.
pub fn default_socket_path() -> PathBuf {
    let uid = current_uid();
    if uid == 0 {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("vmd").join("vmd.sock"),
        None => std::env::temp_dir()
            .join(format!("vmd-{uid}"))
            .join("vmd.sock"),
    }
}

/// Resolves the socket a client should use: explicit flag, then `$VMD_SOCKET`, then default.
pub fn client_socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(crate::SOCKET_ENV)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(default_socket_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins() {
        let p = client_socket_path(Some(PathBuf::from("/x/y.sock")));
        assert_eq!(p, PathBuf::from("/x/y.sock"));
    }

    #[test]
    fn uid_is_read() {
        assert_ne!(current_uid(), u32::MAX);
    }
}
