//! The floor: what vmd's work costs without vmd. QEMU is spawned directly with the argv vmd
//! builds ([`vmd::qemu::QemuConfig::args`]), its QMP socket polled every millisecond until it
//! accepts, `qmp_capabilities` and `query-status` until `running`; `quit` then `waitpid` until
//! it has exited; and `qemu-img create` of an overlay, the process vmd runs for every create.
//!
//! The floor keeps vmd's file layout under its own directory (`run/vms/ID/{qmp,console,vnc}`,
//! `state/logs/NAME/console.log`, `state/overlays/NAME.qcow2`), so that [`argv_difference`]
//! can check that both command lines are the same once the directories are masked.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use vmd::qemu::argv::GuestRam;
use vmd::qemu::{qemu_binary, Accel, QemuConfig};

use crate::cleanup;

/// How long QEMU may take to open QMP and to exit after `quit`.
const QEMU_DEADLINE: Duration = Duration::from_secs(30);

/// What the floor's VM looks like (taken from the vmd VM it is compared with).
#[derive(Debug, Clone)]
pub struct Spec {
    /// VM name (also QEMU's `-name` and the fw_cfg hostname).
    pub name: String,
    /// vCPUs.
    pub cpus: u32,
    /// Guest memory.
    pub memory_mib: u64,
    /// `kvm` or `tcg`, as vmd reported for its VM.
    pub accel: String,
}

/// A directory with an overlay and the sockets of one directly started QEMU.
pub struct Floor {
    dir: tempfile::TempDir,
    config: QemuConfig,
}

/// A QEMU started by [`Floor::start`].
pub struct Running {
    child: Child,
    qmp: Qmp,
}

impl Floor {
    /// Lays out the directory and creates the overlay on `base` (a qcow2).
    pub fn new(spec: &Spec, base: &Path) -> anyhow::Result<Floor> {
        let dir = tempfile::Builder::new()
            .prefix("vmd-bench-floor-")
            .tempdir()?;
        cleanup::register_dir(dir.path());
        let root = dir.path();
        let run = root.join("run/vms/1");
        let logs = root.join("state/logs").join(&spec.name);
        let overlays = root.join("state/overlays");
        for d in [&run, &logs, &overlays] {
            std::fs::create_dir_all(d)?;
        }
        let overlay = overlays.join(format!("{}.qcow2", spec.name));
        qemu_img_create(base, &overlay)?;
        let config = config(spec, &run, &logs, overlay);
        Ok(Floor { dir, config })
    }

    /// The argv (without the program) the floor runs.
    pub fn args(&self) -> Vec<String> {
        lossy(self.config.args())
    }

    /// The floor's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Spawns QEMU and returns once QMP reports `running`.
    pub fn start(&self) -> anyhow::Result<Running> {
        for sock in [
            &self.config.qmp_socket,
            &self.config.console_socket,
            &self.config.vnc_socket,
        ] {
            let _ = std::fs::remove_file(sock);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("qemu.log"))?;
        let child = Command::new(qemu_binary())
            .args(self.config.args())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning QEMU")?;
        let mut running = Running {
            qmp: match Qmp::connect(&self.config.qmp_socket) {
                Ok(q) => q,
                Err(err) => {
                    kill_child(child);
                    return Err(err.context(self.log_tail()));
                }
            },
            child,
        };
        running.wait_running()?;
        Ok(running)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
        let tail: String = text.chars().rev().take(600).collect();
        format!("QEMU log: {}", tail.chars().rev().collect::<String>())
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        crate::procfs::kill_strays(self.dir.path());
        cleanup::unregister_dir(self.dir.path());
    }
}

impl Running {
    fn wait_running(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + QEMU_DEADLINE;
        loop {
            let status = self.qmp.execute("query-status")?;
            match status["status"].as_str() {
                Some("running") => return Ok(()),
                Some("prelaunch" | "inmigrate") if Instant::now() < deadline => {}
                other => bail!("QEMU run state {other:?}"),
            }
        }
    }

    /// Sends `quit` and returns once the process has exited (reaped).
    pub fn quit(mut self) -> anyhow::Result<()> {
        // QEMU may close the socket before it answers; the exit is what counts.
        let _ = self.qmp.execute("quit");
        let deadline = Instant::now() + QEMU_DEADLINE;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                kill_child(self.child);
                bail!("QEMU did not exit after quit");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

fn kill_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The [`QemuConfig`] vmd would build for this VM (same defaults: as root QEMU runs as
/// `nobody`, seccomp sandbox on, no ISO, SeaBIOS).
fn config(spec: &Spec, run: &Path, logs: &Path, overlay: PathBuf) -> QemuConfig {
    let root = nix::unistd::Uid::effective().is_root();
    QemuConfig {
        name: spec.name.clone(),
        cpus: spec.cpus,
        memory_mib: spec.memory_mib,
        // What vmd gives every VM that is not a template's clone.
        ram: GuestRam::Memfd,
        accel: if spec.accel == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        },
        overlay,
        qmp_socket: run.join("qmp"),
        console_socket: run.join("console"),
        console_log: logs.join("console.log"),
        vnc_socket: run.join("vnc"),
        net: vmd::qemu::netargs::NetArgs {
            user_net: true,
            ..Default::default()
        },
        runas: root.then(|| "nobody".to_string()),
        sandbox: true,
        cdrom: None,
        cd_first: false,
        uefi_firmware: None,
        seed: None,
        agent_socket: run.join("agent"),
    }
}

/// `qemu-img create -q -f qcow2 -F qcow2 -b BASE DST` (the overlay takes the base's size).
pub fn qemu_img_create(base: &Path, dst: &Path) -> anyhow::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(dst)
        .stdin(Stdio::null())
        .output()
        .context("running qemu-img")?;
    if !out.status.success() {
        bail!(
            "qemu-img create: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The first difference between vmd's QEMU argv (from `/proc`) and the floor's, after masking
/// each one's directory and VM id; `None` when they are the same.
pub fn argv_difference(
    vmd: &[String],
    vmd_dir: &Path,
    floor: &[String],
    floor_dir: &Path,
) -> Option<String> {
    let vmd: Vec<String> = vmd.iter().skip(1).map(|a| mask(a, vmd_dir)).collect();
    let floor: Vec<String> = floor.iter().map(|a| mask(a, floor_dir)).collect();
    if vmd == floor {
        return None;
    }
    let at = vmd
        .iter()
        .zip(&floor)
        .position(|(a, b)| a != b)
        .unwrap_or(vmd.len().min(floor.len()));
    Some(format!(
        "argument {at}: vmd {:?} vs floor {:?} ({} vs {} arguments)",
        vmd.get(at),
        floor.get(at),
        vmd.len(),
        floor.len()
    ))
}

fn mask(arg: &str, dir: &Path) -> String {
    let masked = arg.replace(&*dir.to_string_lossy(), "DIR");
    let mut out = String::new();
    let mut rest = masked.as_str();
    while let Some(at) = rest.find("/vms/") {
        out.push_str(&rest[..at + 5]);
        rest = rest[at + 5..].trim_start_matches(|c: char| c.is_ascii_digit());
        // vmd's run directories are per start: `ID.TOKEN` (hex).
        if let Some(token) = rest.strip_prefix('.') {
            rest = token.trim_start_matches(|c: char| c.is_ascii_hexdigit());
        }
        out.push_str("ID");
    }
    out.push_str(rest);
    out
}

fn lossy(args: Vec<std::ffi::OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// A blocking QMP connection: enough for the floor (no events are needed).
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying every millisecond while QEMU has not bound the socket), reads the
    /// greeting and negotiates capabilities.
    fn connect(path: &Path) -> anyhow::Result<Qmp> {
        let deadline = Instant::now() + QEMU_DEADLINE;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(err) => return Err(err).context("connecting to QMP"),
            }
        };
        stream.set_read_timeout(Some(QEMU_DEADLINE))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        qmp.read_line().context("reading the QMP greeting")?;
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// Runs `command`; returns its `return` value, skipping events.
    fn execute(&mut self, command: &str) -> anyhow::Result<Value> {
        let mut line = json!({ "execute": command }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let mut msg = self.read_line()?;
            if let Some(err) = msg.get("error") {
                bail!("QMP {command}: {err}");
            }
            if msg.get("return").is_some() {
                return Ok(msg["return"].take());
            }
        }
    }

    fn read_line(&mut self) -> anyhow::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP connection closed");
        }
        Ok(serde_json::from_str(&line)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_hides_directories_and_ids() {
        let dir = Path::new("/tmp/x1");
        assert_eq!(
            mask("unix:/tmp/x1/run/vms/17/vnc", dir),
            "unix:DIR/run/vms/ID/vnc"
        );
        assert_eq!(mask("-m", dir), "-m");
    }

    #[test]
    fn argv_difference_points_at_the_first_mismatch() {
        let vmd = vec![
            "qemu".to_string(),
            "-m".into(),
            "128".into(),
            "/a/vms/3/q".into(),
        ];
        let same = vec!["-m".to_string(), "128".into(), "/b/vms/1/q".into()];
        assert_eq!(
            argv_difference(&vmd, Path::new("/a"), &same, Path::new("/b")),
            None
        );
        let per_start = vec![
            "qemu".to_string(),
            "-m".into(),
            "128".into(),
            "/a/vms/3.1f9a/q".into(),
        ];
        assert_eq!(
            argv_difference(&per_start, Path::new("/a"), &same, Path::new("/b")),
            None,
            "per-start run directories are masked"
        );
        let other = vec!["-m".to_string(), "256".into(), "/b/vms/1/q".into()];
        let diff = argv_difference(&vmd, Path::new("/a"), &other, Path::new("/b")).expect("diff");
        assert!(diff.starts_with("argument 1"), "{diff}");
    }
}
