//! The daemon's directory layout and its defaults (system-wide as root, per-user otherwise).
//!
//! ```text
//! <socket>                 /run/vmd/vmd.sock | $XDG_RUNTIME_DIR/vmd/vmd.sock
//! <state_dir>/             /var/lib/vmd      | ~/.local/share/vmd
//!     vmd.db               SQLite store (see store module docs)
//!     vmd.lock             flock: one daemon per state directory
//!     images/ overlays/ uploads/   see storage module docs
//! ```

use std::path::PathBuf;

use vm_proto::paths::{current_uid, default_socket_path};

/// Resolved paths.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The socket to serve.
    pub socket: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The default config file.
    pub default_config: PathBuf,
}

impl Paths {
    /// Resolves paths from flags and defaults.
    pub fn resolve(socket: Option<PathBuf>, state_dir: Option<PathBuf>) -> Paths {
        let root = current_uid() == 0;
        let dirs = directories::ProjectDirs::from("", "", "vmd");
        let state_default = match (&dirs, root) {
            (Some(d), false) => d.data_dir().to_path_buf(),
            _ => PathBuf::from("/var/lib/vmd"),
        };
        let config_default = match (&dirs, root) {
            (Some(d), false) => d.config_dir().join("vmd.toml"),
            _ => PathBuf::from("/etc/vmd/vmd.toml"),
        };
        Paths {
            socket: socket.unwrap_or_else(default_socket_path),
            state_dir: state_dir.unwrap_or(state_default),
            default_config: config_default,
        }
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.state_dir.join("vmd.db")
    }

    /// Per-VM socket directories (`vms/<id>/{qmp,console,vnc}`) beside the API socket, on a
    /// runtime file system; they outlive vmd so that guests can be re-adopted.
    pub fn run_dir(&self) -> PathBuf {
        self.socket
            .parent()
            .map(|p| p.join("vms"))
            .unwrap_or_else(|| self.state_dir.join("run"))
    }

    /// The lock file.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("vmd.lock")
    }
}
