//! Cleaning up after a test: guests outlive vmd by design, so a test's end (or panic) must
//! kill the QEMUs it started itself.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// SIGKILLs every QEMU process whose command line mentions `dir`.
pub fn kill_guests_under(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with("qemu-system") && cmdline.contains(&needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Whether `pid` runs. A zombie does not: a process orphaned by a killed vmd is reparented to
/// PID 1, which on some machines (containers, CI) reaps late or never.
pub fn alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Why [`wait_notify`] gave up.
#[derive(Debug)]
pub enum NotifyError {
    /// The daemon exited first, with this status.
    Exited(std::process::ExitStatus),
    /// Nothing matched before the deadline.
    Timeout,
}

/// Waits for the line `what` (e.g. `READY=1`) on the sd_notify socket `notify` (which must
/// have a read timeout), until `deadline`, checking between reads that `child` (if it is
/// still ours) runs.
pub fn wait_notify(
    notify: &std::os::unix::net::UnixDatagram,
    mut child: Option<&mut std::process::Child>,
    what: &str,
    deadline: std::time::Instant,
) -> Result<(), NotifyError> {
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = notify.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == what)
            {
                return Ok(());
            }
        }
        if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
            return Err(NotifyError::Exited(status));
        }
    }
    Err(NotifyError::Timeout)
}
