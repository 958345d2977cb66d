//! Nothing the bench starts may outlive it, even after Ctrl-C.
//!
//! [`install`] blocks SIGINT, SIGTERM and SIGHUP in every thread (children get a clean mask
//! from `std::process::Command`) and waits for them on a dedicated thread. On a signal that
//! thread kills, by pid, every process whose command line names a registered directory (the
//! QEMUs), then every registered daemon (vmd, libvirtd, virtlogd), removes the directories
//! and exits with 130. Normal teardown is done by the owners' `Drop`s, which unregister.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

use crate::procfs;

/// Directories whose processes and files are the bench's.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Daemons the bench started.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Starts the signal thread. Call first in `main`, before any other thread exists.
pub fn install() -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set.thread_block()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("vmd-bench: {sig}: killing everything it started");
                emergency();
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// Registers a directory (see the module docs).
pub fn register_dir(dir: &Path) {
    lock(&DIRS).push(dir.to_path_buf());
}

/// Forgets a directory once its owner has cleaned it up.
pub fn unregister_dir(dir: &Path) {
    lock(&DIRS).retain(|d| d != dir);
}

/// Registers a daemon pid.
pub fn register_pid(pid: u32) {
    lock(&PIDS).push(pid);
}

/// Forgets a daemon pid once it is reaped.
pub fn unregister_pid(pid: u32) {
    lock(&PIDS).retain(|p| *p != pid);
}

fn emergency() {
    let dirs = lock(&DIRS).clone();
    for dir in &dirs {
        procfs::kill_strays(dir);
    }
    for pid in lock(&PIDS).iter() {
        procfs::signal(*pid, Signal::SIGKILL);
    }
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Locks a registry; a panic elsewhere must not stop the cleanup, so poison is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
