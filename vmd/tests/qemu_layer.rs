//! The QEMU layer against real qemu-system-x86_64 (TCG): argv accepted, QMP lifecycle,
//! start failures with QEMU's own error text, SIGKILL detection, sandbox and `-runas`, and a
//! boot of the project's test guest when it has been built. No sleeps as synchronisation:
//! every wait polls against a deadline. Every QEMU started is killed by pid when its guard
//! drops.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use vmd::qemu::netargs::NetArgs;
use vmd::qemu::{process, Accel, QemuConfig, Qmp, QmpEvent, RunState};

/// A loopback forward of `port` to the guest's ssh port.
fn ssh_forward(port: u16) -> vm_proto::types::PortForward {
    vm_proto::types::PortForward {
        protocol: vm_proto::types::Protocol::Tcp,
        host_address: "127.0.0.1".into(),
        host_port: port,
        guest_port: 22,
    }
}

/// Upper bound for any single wait.
const DEADLINE: Duration = Duration::from_secs(30);

/// A QEMU process started for a test; SIGKILLed by pid on drop.
struct Vm {
    _dir: tempfile::TempDir,
    config: QemuConfig,
    stderr_log: PathBuf,
    child: tokio::process::Child,
    pid: u32,
    start_time: Option<u64>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        match self.start_time {
            Some(start) => drop(process::kill(self.pid, start)),
            None => drop(self.child.start_kill()),
        }
    }
}

impl Vm {
    /// A config with every file in a fresh private directory and a fresh 64 MiB overlay.
    fn config(name: &str) -> (tempfile::TempDir, QemuConfig) {
        let dir = tempfile::tempdir().expect("tempdir");
        // Private: under -runas, QEMU can open files here only before it drops privileges.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(dir.path(), private).expect("chmod");
        let overlay = dir.path().join("disk.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2"], &overlay, &["64M"]);
        let config = QemuConfig {
            name: name.into(),
            cpus: 1,
            memory_mib: 128,
            ram: vmd::qemu::argv::GuestRam::Memfd,
            accel: Accel::Tcg,
            overlay,
            qmp_socket: dir.path().join("qmp.sock"),
            console_socket: dir.path().join("console.sock"),
            console_log: dir.path().join("console.log"),
            vnc_socket: dir.path().join("vnc.sock"),
            net: NetArgs {
                user_net: true,
                ..NetArgs::default()
            },
            runas: None,
            sandbox: false,
            cdrom: None,
            cd_first: false,
            uefi_firmware: None,
            seed: None,
            agent_socket: dir.path().join("agent.sock"),
        };
        (dir, config)
    }

    fn spawn(dir: tempfile::TempDir, config: QemuConfig) -> Vm {
        let stderr_log = dir.path().join("qemu.log");
        let child = process::spawn(&config, &stderr_log).expect("spawn qemu");
        let pid = child.id().expect("pid");
        Vm {
            start_time: process::start_time(pid),
            _dir: dir,
            config,
            stderr_log,
            child,
            pid,
        }
    }

    async fn connect(&self) -> Qmp {
        Qmp::connect(&self.config.qmp_socket, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("QMP: {e}; QEMU said: {}", self.qemu_said()))
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("QEMU exits in time")
            .expect("wait")
    }

    fn qemu_said(&self) -> String {
        process::tail(&self.stderr_log, 4096)
    }
}

fn qemu_img(args: &[&str], path: &Path, tail: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .arg(path)
        .args(tail)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for the event `name`, skipping others.
async fn event(events: &mut broadcast::Receiver<QmpEvent>, name: &str) -> QmpEvent {
    let wait = async {
        loop {
            let event = events.recv().await.expect("event stream");
            if event.event == name {
                return event;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {name} event"))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The real uid of `pid`, from /proc/PID/status.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    line.split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .expect("uid")
}

/// The files `pid` has open.
fn open_files(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

#[tokio::test]
async fn lifecycle_over_qmp() {
    let (dir, mut config) = Vm::config("life1");
    config.net.ports.push(ssh_forward(free_port()));
    let spawned = Instant::now();
    let mut vm = Vm::spawn(dir, config);
    let qmp = vm.connect().await;
    let status = qmp.query_status().await.expect("status");
    eprintln!("spawn -> QMP running: {:?}", spawned.elapsed());
    assert_eq!((status.status, status.running), (RunState::Running, true));
    assert!(vm.config.console_log.exists(), "chardev logfile created");
    assert_vnc_greets(&vm.config.vnc_socket).await;

    let mut events = qmp.events();
    qmp.stop().await.expect("stop");
    event(&mut events, "STOP").await;
    assert_eq!(
        qmp.query_status().await.expect("status").status,
        RunState::Paused
    );
    qmp.cont().await.expect("cont");
    event(&mut events, "RESUME").await;
    assert!(qmp.query_status().await.expect("status").running);
    qmp.system_reset().await.expect("reset");
    event(&mut events, "RESET").await;

    let closed = tokio::spawn(qmp.closed());
    let quit_at = Instant::now();
    qmp.quit().await.expect("quit");
    let status = vm.wait_exit().await;
    eprintln!("quit -> exit: {:?}", quit_at.elapsed());
    assert_eq!(status.code(), Some(0), "{}", process::describe_exit(status));
    tokio::time::timeout(DEADLINE, closed)
        .await
        .expect("closed resolves")
        .expect("join");
    assert!(matches!(
        qmp.query_status().await,
        Err(vmd::qemu::QmpError::Closed)
    ));
}

/// VNC on the Unix socket answers with an RFB version string (q35 + VGA + `-vnc unix:`).
async fn assert_vnc_greets(path: &Path) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("vnc socket");
    let mut version = [0u8; 12];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut version))
        .await
        .expect("RFB greeting in time")
        .expect("read");
    assert!(version.starts_with(b"RFB 003."), "{version:?}");
}

#[tokio::test]
async fn sandbox_with_runas_reaches_running() {
    let (dir, mut config) = Vm::config("sandboxed1");
    config.sandbox = true;
    config.net.ports.push(ssh_forward(free_port()));
    if is_root() {
        config.runas = Some("nobody".into());
    } else {
        eprintln!("not root: testing the sandbox without -runas");
    }
    let mut vm = Vm::spawn(dir, config);
    let qmp = vm.connect().await;
    let status = qmp.query_status().await.expect("status");
    assert_eq!(status.status, RunState::Running, "{}", vm.qemu_said());

    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("passwd")
            .expect("user nobody");
        assert_eq!(
            uid_of(vm.pid),
            nobody.uid.as_raw(),
            "QEMU dropped to nobody"
        );
        // Every file lives in the private directory, so QEMU opened them all before the drop.
        let open = open_files(vm.pid);
        for file in [&vm.config.overlay, &vm.config.console_log] {
            assert!(open.contains(file), "{} open in {open:?}", file.display());
        }
        for file in [
            &vm.config.qmp_socket,
            &vm.config.vnc_socket,
            &vm.config.console_socket,
        ] {
            assert_eq!(std::fs::metadata(file).expect("socket").uid(), 0);
        }
    }
    assert_vnc_greets(&vm.config.vnc_socket).await;
    qmp.quit().await.expect("quit");
    let status = vm.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", process::describe_exit(status));
}

#[tokio::test]
async fn sandbox_without_runas_denies_privileges_and_runs() {
    let (dir, mut config) = Vm::config("sandboxed2");
    config.sandbox = true;
    let mut vm = Vm::spawn(dir, config);
    let qmp = vm.connect().await;
    let status = qmp.query_status().await.expect("status");
    assert_eq!(status.status, RunState::Running, "{}", vm.qemu_said());
    qmp.quit().await.expect("quit");
    assert_eq!(vm.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn bad_overlay_fails_with_qemu_error_text() {
    let (dir, mut config) = Vm::config("broken1");
    config.overlay = dir.path().join("does-not-exist.qcow2");
    let mut vm = Vm::spawn(dir, config);
    let status = vm.wait_exit().await;
    assert!(!status.success());
    let said = vm.qemu_said();
    eprintln!("{}; QEMU said: {said}", process::describe_exit(status));
    assert_eq!(process::describe_exit(status), "exited with status 1");
    assert!(said.contains("Could not open"), "{said}");
    assert!(said.contains("does-not-exist.qcow2"), "{said}");
}

#[tokio::test]
async fn sigkill_is_detected() {
    let (dir, config) = Vm::config("killed1");
    let mut vm = Vm::spawn(dir, config);
    let qmp = vm.connect().await;
    let start = vm.start_time.expect("start time");
    assert!(process::is_same_process(vm.pid, start));
    let closed = tokio::spawn(qmp.closed());

    process::kill(vm.pid, start).expect("kill");
    // Not reaped yet (a zombie) or gone: either way gone, as for a re-adopted QEMU.
    assert!(process::wait_gone(vm.pid, start, DEADLINE).await);
    assert!(!process::is_same_process(vm.pid, start));
    tokio::time::timeout(DEADLINE, closed)
        .await
        .expect("closed resolves")
        .expect("join");
    let status = vm.wait_exit().await;
    assert_eq!(
        process::describe_exit(status),
        "killed by signal 9 (SIGKILL)"
    );
    assert!(!process::is_same_process(vm.pid, start));
}

/// The project's test guest, built by scripts/build-test-guest.sh.
fn test_guest() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/test-guest/guest.qcow2");
    path.canonicalize().ok()
}

#[tokio::test]
async fn test_guest_boots_and_powers_down() {
    let Some(base) = test_guest() else {
        eprintln!(
            "SKIPPED: no test guest at .cache/test-guest/guest.qcow2 \
             (run scripts/build-test-guest.sh)"
        );
        return;
    };
    let (dir, mut config) = Vm::config("guest1");
    qemu_img(
        &["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"],
        &base,
        &[config.overlay.to_str().expect("utf-8")],
    );
    config.memory_mib = 256;
    config.sandbox = true;
    config.runas = is_root().then(|| "nobody".to_string());
    let spawned = Instant::now();
    let mut vm = Vm::spawn(dir, config);
    let qmp = vm.connect().await;

    let marker = "GUEST-READY guest1";
    let log = wait_for_text(&vm.config.console_log, marker, Duration::from_secs(60)).await;
    eprintln!("spawn -> {marker}: {:?}", spawned.elapsed());
    assert!(log.contains(marker));

    let mut events = qmp.events();
    let powerdown_at = Instant::now();
    qmp.system_powerdown().await.expect("powerdown");
    let shutdown = event(&mut events, "SHUTDOWN").await;
    assert_eq!(shutdown.data["guest"], true, "{shutdown:?}");
    let status = vm.wait_exit().await;
    eprintln!("system_powerdown -> exit: {:?}", powerdown_at.elapsed());
    assert_eq!(status.code(), Some(0), "{}", process::describe_exit(status));
}

/// Polls `path` until it contains `text`; returns the content.
async fn wait_for_text(path: &Path, text: &str, limit: Duration) -> String {
    let until = Instant::now() + limit;
    loop {
        let content =
            String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        if content.contains(text) {
            return content;
        }
        assert!(
            Instant::now() < until,
            "no {text:?} in {} within {limit:?}; it has:\n{content}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
