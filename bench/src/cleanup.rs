//! Nothing the bench starts may outlive it, even after Ctrl-C.
//!
//! [`install`] catches SIGINT, SIGTERM and SIGHUP on a dedicated thread (tokio's handlers:
//! no signal mask, which children would inherit). On a signal that thread kills, by pid,
//! every process whose command line names a registered directory (the QEMUs), then every
//! registered daemon (vmd, libvirtd, virtlogd), removes the directories and exits with 130.
//! Normal teardown is done by the owners' `Drop`s, which unregister.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use crate::procfs;

/// Directories whose processes and files are the bench's.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Daemons the bench started.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Starts the signal thread and returns once its handlers are installed.
pub fn install() -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let waited = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(wait_for_signal(&ready_tx)));
            match waited {
                Ok(()) => {
                    eprintln!("vmd-bench: interrupted: killing everything it started");
                    emergency();
                    std::process::exit(130);
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            }
        })?;
    ready_rx.recv()?
}

/// Installs the handlers, reports readiness, and returns on the first signal.
async fn wait_for_signal(ready: &Sender<anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let _ = ready.send(Ok(()));
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
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
