//! Reaching libvirtd: `virsh` with a time limit, and optionally starting libvirtd and
//! virtlogd in the foreground (where there is no systemd) and killing them by pid afterwards.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use super::{virsh_installed, PREFIX, VIRSH_TIMEOUT};
use crate::report::Report;
use crate::{cleanup, procfs};

/// The libvirt URI measured.
const URI: &str = "qemu:///system";
/// How long a libvirtd the bench started may take to answer.
const STARTUP: Duration = Duration::from_secs(30);

/// A reachable libvirtd, possibly started by the bench.
pub struct Libvirt {
    /// Daemons the bench started (libvirtd, virtlogd), stopped on drop.
    started: Vec<Child>,
    /// Their output.
    logs: Option<tempfile::TempDir>,
}

impl Libvirt {
    /// Connects, starting libvirtd if allowed; `None` (after a note) when libvirt cannot be
    /// measured.
    pub fn connect(start: bool, report: &mut Report) -> anyhow::Result<Option<Libvirt>> {
        if !virsh_installed() {
            report.note("libvirt skipped: virsh is not installed (apt-get install libvirt-clients libvirt-daemon-system)");
            return Ok(None);
        }
        let mut lv = Libvirt {
            started: Vec::new(),
            logs: None,
        };
        let first = lv.virsh(&["version"]);
        match (first, start) {
            (Ok(_), _) => Ok(Some(lv)),
            (Err(err), false) => {
                report.note(format!(
                    "libvirt skipped: libvirtd unreachable at {URI} ({err:#}); start it (libvirtd -d) or pass --start-libvirtd"
                ));
                Ok(None)
            }
            (Err(_), true) => {
                lv.start_daemons()?;
                report.note(
                    "libvirt: libvirtd and virtlogd started by the bench (killed at the end)",
                );
                Ok(Some(lv))
            }
        }
    }

    /// Runs `virsh -q -c URI ARGS…` and returns its stdout; fails on a non-zero exit or
    /// after [`VIRSH_TIMEOUT`].
    pub fn virsh(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut child = Command::new("virsh")
            .args(["-q", "-c", URI])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running virsh")?;
        let deadline = Instant::now() + VIRSH_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("virsh {args:?} took longer than {VIRSH_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "virsh {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Destroys and undefines every `vmdbench-*` domain (left by this or an interrupted run).
    pub fn remove_bench_domains(&self) {
        let Ok(names) = self.virsh(&["list", "--all", "--name"]) else {
            return;
        };
        let ours: Vec<&str> = names.lines().filter(|n| n.starts_with(PREFIX)).collect();
        for batch in ours.chunks(super::BATCH) {
            let destroy: Vec<String> = batch.iter().map(|n| format!("destroy {n}")).collect();
            // Most are not running: errors are expected; one command per call keeps going.
            for cmd in destroy {
                let _ = self.virsh(&[&cmd]);
            }
            let undefine: Vec<String> = batch.iter().map(|n| format!("undefine {n}")).collect();
            let _ = self.virsh(&[&undefine.join(" ; ")]);
        }
    }

    fn start_daemons(&mut self) -> anyhow::Result<()> {
        let logs = tempfile::Builder::new()
            .prefix("vmd-bench-libvirtd-")
            .tempdir()?;
        for program in ["virtlogd", "libvirtd"] {
            let out = std::fs::File::create(logs.path().join(format!("{program}.log")))?;
            let child = Command::new(program)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting {program}"))?;
            cleanup::register_pid(child.id());
            self.started.push(child);
        }
        self.logs = Some(logs);
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.virsh(&["version"]) {
                Ok(_) => return Ok(()),
                Err(err) if Instant::now() > deadline => {
                    return Err(err.context("libvirtd started but does not answer"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        // libvirtd first: it must not respawn anything while virtlogd goes away.
        for child in self.started.iter_mut().rev() {
            stop(child);
        }
    }
}

/// SIGTERM, up to 10 s, then SIGKILL; reaps and unregisters.
fn stop(child: &mut Child) {
    let pid = child.id();
    procfs::signal(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    cleanup::unregister_pid(pid);
}
