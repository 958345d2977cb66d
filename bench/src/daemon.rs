//! A vmd of the bench's own, the way the integration tests start one: a fresh temporary
//! directory, `--socket DIR/run/vmd.sock --state-dir DIR/state`, an empty config file (a host
//! `/etc/vmd/vmd.toml` must not change the numbers), output in `DIR/vmd.log`, readiness from
//! `READY=1` on a private `NOTIFY_SOCKET`. vmd runs in its own process group so that Ctrl-C
//! reaches only the bench, which then cleans up (see [`crate::cleanup`]).
//!
//! Teardown ([`Drop`]): SIGTERM and wait, SIGKILL if it lingers, then SIGKILL by pid any QEMU
//! whose command line still names the directory (vmd leaves guests running by design). With
//! `--keep-logs DIR` the daemon log is copied to `DIR/GROUP-vmd.log` first (for profiling).
//!
//! The chaos group kills vmd with SIGKILL ([`Daemon::kill9`]) and starts it again on the same
//! directory ([`Daemon::restart`]); the log is appended to, so one file covers every run.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use crate::rpc::Client;
use crate::scenarios::Opts;
use crate::{cleanup, procfs};

/// How long vmd may take to report READY=1, and to exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running vmd and its directory.
pub struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
    /// Where to copy the log on teardown.
    keep_log: Option<PathBuf>,
    /// vmd's readiness messages (kept open so that STOPPING=1 at teardown has a receiver).
    notify: UnixDatagram,
    /// How to start it again.
    vmd: PathBuf,
    log_level: String,
    /// The API socket.
    pub socket: PathBuf,
    /// RPC client of this daemon.
    pub rpc: Client,
}

impl Daemon {
    /// Starts `opts.vmd` for scenario `group` and waits until it is ready.
    pub fn start(opts: &Opts, group: &str) -> anyhow::Result<Daemon> {
        let (vmd, log_level) = (&opts.vmd, &opts.log_level);
        let dir = tempfile::Builder::new().prefix("vmd-bench-").tempdir()?;
        cleanup::register_dir(dir.path());
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).context("binding the notify socket")?;
        notify.set_read_timeout(Some(Duration::from_millis(100)))?;
        let socket = dir.path().join("run/vmd.sock");
        let mut child = spawn(vmd, dir.path(), &socket, &notify_path, log_level)?;
        cleanup::register_pid(child.id());
        if let Err(err) = wait_ready(&notify, &mut child) {
            let log = std::fs::read_to_string(dir.path().join("vmd.log")).unwrap_or_default();
            teardown(&mut child, dir.path());
            bail!("{err:#}; vmd log:\n{log}");
        }
        let rpc = Client::new(&socket);
        Ok(Daemon {
            dir,
            child,
            notify,
            vmd: vmd.clone(),
            log_level: log_level.clone(),
            keep_log: opts
                .keep_logs
                .as_ref()
                .map(|d| d.join(format!("{group}-vmd.log"))),
            socket,
            rpc,
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's resident set size in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid())
    }

    /// The daemon's log file (stdout and stderr of every run).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("vmd.log")
    }

    /// Whether vmd is still running (not exited, not reaped).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILLs vmd and reaps it; its QEMUs live on.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        cleanup::unregister_pid(self.child.id());
    }

    /// Starts vmd again on the same directory (after [`Daemon::kill9`]) and returns the time
    /// from spawn to READY=1, which includes re-adopting the guests.
    pub fn restart(&mut self) -> anyhow::Result<Duration> {
        let mut buf = [0u8; 4096];
        while self.notify.recv(&mut buf).is_ok() {}
        let notify_path = self.dir.path().join("notify.sock");
        let started = Instant::now();
        self.child = spawn(
            &self.vmd,
            self.dir.path(),
            &self.socket,
            &notify_path,
            &self.log_level,
        )?;
        cleanup::register_pid(self.child.id());
        wait_ready(&self.notify, &mut self.child)?;
        Ok(started.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        teardown(&mut self.child, self.dir.path());
        if let Some(dst) = &self.keep_log {
            if let Err(err) = std::fs::copy(self.dir.path().join("vmd.log"), dst) {
                eprintln!("vmd-bench: cannot keep the log as {}: {err}", dst.display());
            }
        }
    }
}

fn spawn(
    vmd: &Path,
    dir: &Path,
    socket: &Path,
    notify: &Path,
    level: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("vmd.log"))?;
    let config = dir.join("vmd.toml");
    std::fs::write(&config, "")?;
    Command::new(vmd)
        .arg("--socket")
        .arg(socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "text", "--log-level", level])
        .env("NOTIFY_SOCKET", notify)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", vmd.display()))
}

fn wait_ready(notify: &UnixDatagram, child: &mut Child) -> anyhow::Result<()> {
    use testkit::procs::{wait_notify, NotifyError};
    match wait_notify(notify, Some(child), "READY=1", Instant::now() + DEADLINE) {
        Ok(()) => Ok(()),
        Err(NotifyError::Exited(status)) => bail!("vmd exited ({status}) before READY=1"),
        Err(NotifyError::Timeout) => bail!("no READY=1 from vmd within {DEADLINE:?}"),
    }
}

/// Stops vmd (SIGTERM, then SIGKILL), kills leftover QEMUs of `dir`, unregisters both.
fn teardown(child: &mut Child, dir: &Path) {
    let pid = child.id();
    let started = Instant::now();
    procfs::signal(pid, Signal::SIGTERM);
    let deadline = Instant::now() + DEADLINE;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if matches!(child.try_wait(), Ok(None)) {
        eprintln!("vmd-bench: vmd {pid} ignored SIGTERM for {DEADLINE:?}; killing it");
    }
    let _ = child.kill();
    let _ = child.wait();
    cleanup::unregister_pid(pid);
    eprintln!(
        "vmd-bench: vmd stopped in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let killed = procfs::kill_strays(dir);
    if !killed.is_empty() {
        eprintln!(
            "vmd-bench: killed leftover processes {killed:?} of {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cleanup::unregister_dir(dir);
}

/// Lines of `log` after byte `from` that report a panic; returns them and the log's new end.
pub fn panics(log: &Path, from: u64) -> (Vec<String>, u64) {
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    let lines = String::from_utf8_lossy(&text[start..])
        .lines()
        .filter(|l| l.contains("panicked"))
        .map(str::to_string)
        .collect();
    (lines, text.len() as u64)
}
