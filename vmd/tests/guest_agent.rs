//! Readiness end to end with a real Debian 12 cloud guest (`testkit::cloud_guest`) running
//! cloud-init, qemu-guest-agent and OpenSSH: `vmctl wait --for agent|ssh|log:REGEX`, the
//! agent's report in `vmctl show`, and `vmctl ssh VM -- hostname` with the provisioned key.
//! `VMD_CLOUD_GUEST=/path/debian12.qcow2` uses an already built disk instead of the cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{path_str, vmctl_bin, Daemon};

/// The cloud guest's disk.
fn cloud_disk() -> PathBuf {
    match std::env::var_os("VMD_CLOUD_GUEST") {
        Some(path) => PathBuf::from(path),
        None => testkit::cloud_guest::debian12_qcow2(),
    }
}

/// Boot deadline in seconds, for `--timeout`.
fn boot_secs() -> String {
    testkit::cloud_guest::BOOT.as_secs().to_string()
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// An ed25519 key pair in `dir`: the private key's path and the public key line.
fn key_pair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmd-test", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public.trim().to_string())
}

/// vmctl against `d` with its cache (known_hosts) in `home`.
fn vmctl(d: &Daemon, home: &Path, args: &[&str]) -> Output {
    Command::new(vmctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("run vmctl")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs vmctl, asserts its exit code, returns how long it took.
fn expect_exit(d: &Daemon, home: &Path, args: &[&str], code: i32) -> (Output, f64) {
    let start = Instant::now();
    let out = vmctl(d, home, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "vmctl {args:?}: {}",
        text(&out)
    );
    (out, start.elapsed().as_secs_f64())
}

/// `vmctl ssh` expecting exit `code`. The guest's sshd may still be restarted by its first
/// boot (cloud-init) after it first answered, or answer before the key is installed: ssh's
/// own failure (exit 255: connection reset or refused, key not accepted yet) is tried again
/// until a deadline.
fn expect_ssh(d: &Daemon, home: &Path, args: &[&str], code: i32) -> Output {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let out = vmctl(d, home, args);
        let err = String::from_utf8_lossy(&out.stderr);
        let transient = out.status.code() == Some(255)
            && [
                "Connection reset",
                "Connection refused",
                "Permission denied",
            ]
            .iter()
            .any(|m| err.contains(m));
        if !transient || Instant::now() >= end {
            assert_eq!(
                out.status.code(),
                Some(code),
                "vmctl {args:?}: {}",
                text(&out)
            );
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn import_cloud_guest(d: &Daemon, home: &Path) {
    let disk = cloud_disk();
    let args = ["image", "import", path_str(&disk), "--name", "cloud"];
    expect_exit(d, home, &args, 0);
}

fn create(d: &Daemon, name: &str, ssh_port: Option<u16>, key: &str) -> Value {
    let mut vm = json!({"name": name, "image": "cloud", "memory_mib": 512,
        "cloud_init": {"user": "lab", "ssh_keys": [key]}});
    if let Some(port) = ssh_port {
        vm["ssh_port"] = json!(port);
    }
    d.ok("vm.create", json!([vm]))
}

#[test]
fn cloud_guest_readiness_agent_and_ssh() {
    let home = tempfile::tempdir().expect("home");
    let d = Daemon::start();
    import_cloud_guest(&d, home.path());
    let (key, public) = key_pair(home.path());
    let port = free_port();
    create(&d, "ci1", Some(port), &public);
    create(&d, "ci2", None, &public);
    let h = home.path();

    // Without an SSH port forward there is nothing to wait for or log in to.
    let (out, _) = expect_exit(&d, h, &["wait", "ci2", "--for", "ssh"], 6);
    assert!(text(&out).contains("port add"), "{}", text(&out));
    expect_exit(&d, h, &["ssh", "ci2", "--", "true"], 6);
    // A stopped VM never becomes ready.
    expect_exit(&d, h, &["wait", "ci1", "--for", "agent"], 4);
    let (out, _) = expect_exit(&d, h, &["show", "ci1"], 0);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("cloud-init     user lab, 1 SSH key, instance "),
        "{shown}"
    );

    let started = Instant::now();
    expect_exit(&d, h, &["start", "ci1"], 0);
    let agent_wait = ["wait", "ci1", "--for", "agent", "--timeout", &boot_secs()];
    let (_, _) = expect_exit(&d, h, &agent_wait, 0);
    let agent_secs = started.elapsed().as_secs_f64();
    check_agent_report(&d, h);

    let ssh_wait = ["wait", "ci1", "--for", "ssh", "--timeout", &boot_secs()];
    expect_exit(&d, h, &ssh_wait, 0);
    let ssh_secs = started.elapsed().as_secs_f64();
    let ssh = ["ssh", "ci1", "-i", path_str(&key), "--", "hostname"];
    let out = expect_ssh(&d, h, &ssh, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ci1");
    // The exit status is ssh's, which is the remote command's.
    let ssh = ["ssh", "ci1", "-i", path_str(&key), "--", "exit", "3"];
    expect_ssh(&d, h, &ssh, 3);

    eprintln!(
        "agent answered {agent_secs:.1} s after start; ssh ready {ssh_secs:.1} s after start"
    );
    // Not anchored at the end: the kernel and cloud-init often write after the prompt.
    let login = [
        "wait",
        "ci1",
        "--for",
        "log:^ci1 login:",
        "--timeout",
        "120",
    ];
    expect_exit(&d, h, &login, 0);
    let never = [
        "wait",
        "ci1",
        "--for",
        "log:^no such line$",
        "--timeout",
        "1",
    ];
    expect_exit(&d, h, &never, 8);
    expect_exit(&d, h, &["wait", "ci1", "--for", "log:("], 6);
    let logs = d.ok("vm.logs", json!(["ci1", 1 << 20]))["text"].to_string();
    assert!(logs.contains("guest agent connected: Debian"), "{logs}");

    stop_ends_a_wait(&d, h);
}

/// `vmctl show -o json` carries the agent's report; the table shows it.
fn check_agent_report(d: &Daemon, h: &Path) {
    let (out, _) = expect_exit(d, h, &["--output", "json", "show", "ci1"], 0);
    let vm: Value = serde_json::from_slice(&out.stdout).expect("json");
    let guest = &vm["guest"];
    assert_eq!(guest["agent"], true, "{vm}");
    assert!(
        guest["os"].as_str().unwrap_or("").contains("Debian"),
        "{vm}"
    );
    assert_eq!(guest["hostname"], "ci1", "{vm}");
    let addresses: Vec<&str> = guest["addresses"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["address"].as_str()).collect())
        .unwrap_or_default();
    // The agent may answer before DHCP: ask again until the address is there.
    if !addresses.contains(&"10.0.2.15") {
        return wait_address(d, h);
    }
    let (out, _) = expect_exit(d, h, &["show", "ci1"], 0);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("guest          Debian GNU/Linux"), "{shown}");
    assert!(shown.contains(" 10.0.2.15/24"), "{shown}");
}

fn wait_address(d: &Daemon, h: &Path) {
    let end = Instant::now() + testkit::cloud_guest::BOOT;
    loop {
        let vm = d.ok("vm.get", json!(["ci1"]));
        if vm["guest"]["addresses"]
            .to_string()
            .contains("\"10.0.2.15\"")
        {
            return check_agent_report(d, h);
        }
        assert!(Instant::now() < end, "no 10.0.2.15 from the agent: {vm}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A readiness wait ends (exit 1, "stopped") when the VM stops meanwhile; a wait that starts
/// after the stop finds nothing running (exit 4). Either way it does not hang.
fn stop_ends_a_wait(d: &Daemon, h: &Path) {
    let waiter = Command::new(vmctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args([
            "wait",
            "ci1",
            "--for",
            "log:^never printed$",
            "--timeout",
            "120",
        ])
        .env("HOME", h)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmctl wait");
    expect_exit(d, h, &["stop", "--force", "ci1"], 0);
    let out = waiter.wait_with_output().expect("wait");
    let code = out.status.code();
    assert!(matches!(code, Some(1) | Some(4)), "{}", text(&out));
    if code == Some(1) {
        assert!(text(&out).contains("vm ci1 is stopped"), "{}", text(&out));
    }
}

/// A guest without an agent (the small test guest): `guest.agent` stays false while it runs,
/// `guest` is null once stopped, and `wait --for agent` gives up at its timeout.
#[test]
fn a_guest_without_agent_is_reported_as_such() {
    let home = tempfile::tempdir().expect("home");
    let d = Daemon::start();
    d.import_guest();
    d.boot("tiny");
    let vm = d.ok("vm.get", json!(["tiny"]));
    assert_eq!(vm["guest"]["agent"], false, "{vm}");
    let (out, _) = expect_exit(&d, home.path(), &["show", "tiny"], 0);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("guest          agent not answering"),
        "{shown}"
    );
    let wait = ["wait", "tiny", "--for", "agent", "--timeout", "3"];
    let (out, _) = expect_exit(&d, home.path(), &wait, 8);
    assert!(
        text(&out).contains("waiting for the guest agent"),
        "{}",
        text(&out)
    );
    expect_exit(&d, home.path(), &["stop", "--force", "tiny"], 0);
    assert_eq!(d.ok("vm.get", json!(["tiny"]))["guest"], Value::Null);
}
