//! Issue 12's journey with a real Debian 12 cloud-init guest (`testkit::cloud_guest`, built
//! from Debian packages and cached): import (cloud-init detected) → `create --ssh-key` →
//! `vmctl wait --for ssh` → `vmctl ssh VM -- hostname` prints the VM name; the `--disk` growth
//! reaches `df`; the guest agent reports the guest's address and OS; `image publish
//! --generalize` → two VMs from the copy have machine-ids and SSH host keys of their own; a
//! wiped VM is provisioned again. Boots take 40–90 s each under TCG.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{path_str, Daemon};
use serde_json::{json, Value};
use testkit::cloud_guest;

/// Guest disk the test asks for (the image's virtual size is smaller).
const DISK: &str = "3G";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs vmctl and requires success; returns stdout.
fn vmctl(d: &Daemon, args: &[&str]) -> String {
    let out = d.vmctl(args);
    assert!(out.status.success(), "vmctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A fresh ed25519 key pair in `dir`; the private key's path.
fn key_pair(dir: &Path) -> PathBuf {
    let key = dir.join("id_ed25519");
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "cloud-guest-test",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", text(&out));
    key
}

struct Lab {
    d: Daemon,
    key: PathBuf,
    _keys: tempfile::TempDir,
}

impl Lab {
    fn create(&self, name: &str, image: &str) {
        let port = free_port().to_string();
        let public = format!("{}.pub", path_str(&self.key));
        vmctl(
            &self.d,
            &[
                "create",
                name,
                "--image",
                image,
                "--memory",
                "1G",
                "--disk",
                DISK,
                "--ssh-port",
                &port,
                "--ssh-key",
                &public,
                "--user",
                "lab",
            ],
        );
    }

    /// Starts the VMs, then waits until each answers on ssh.
    fn start_until_ssh(&self, names: &[&str]) {
        for name in names {
            vmctl(&self.d, &["start", name]);
        }
        let timeout = cloud_guest::BOOT.as_secs().to_string();
        for name in names {
            vmctl(
                &self.d,
                &["wait", name, "--for", "ssh", "--timeout", &timeout],
            );
        }
    }

    /// `vmctl ssh NAME -i KEY -- COMMAND` (retried briefly: sshd may be up a moment before
    /// cloud-init has installed the key); stdout trimmed.
    fn ssh(&self, name: &str, command: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            let out = self
                .d
                .vmctl(&["ssh", name, "-i", path_str(&self.key), "--", command]);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ssh {name} {command:?}: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// The guest's machine-id and ed25519 host key.
    fn identity(&self, name: &str) -> (String, String) {
        let machine_id = self.ssh(name, "cat /etc/machine-id");
        let host_key = self.ssh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub");
        assert_eq!(machine_id.len(), 32, "{name}: machine-id {machine_id:?}");
        assert!(host_key.starts_with("ssh-ed25519 "), "{name}: {host_key:?}");
        (
            machine_id,
            host_key.split(' ').nth(1).unwrap_or("").to_string(),
        )
    }

    fn stop(&self, names: &[&str]) {
        for name in names {
            vmctl(&self.d, &["stop", name, "--timeout", "120"]);
        }
    }

    fn show(&self, name: &str) -> Value {
        serde_json::from_str(&vmctl(&self.d, &["show", name, "--output", "json"])).expect("json")
    }
}

#[test]
fn a_cloud_guest_is_provisioned_reachable_grown_reported_generalized_and_reprovisioned() {
    let keys = tempfile::tempdir().expect("tempdir");
    let lab = Lab {
        d: Daemon::start(),
        key: key_pair(keys.path()),
        _keys: keys,
    };
    let image = lab.d.import(&cloud_guest::debian12_qcow2(), "deb12");
    assert_eq!(
        image["cloud_init"], true,
        "cloud-init detected at import: {image}"
    );
    let base_fs_bytes = image["virtual_size_bytes"].as_u64().expect("size");

    // create --ssh-key → wait --for ssh → vmctl ssh VM -- hostname.
    lab.create("c1", "deb12");
    lab.start_until_ssh(&["c1"]);
    assert_eq!(lab.ssh("c1", "hostname"), "c1");
    // The 3 GiB disk reached the root file system (growpart + resize2fs at first boot).
    let size: u64 = lab
        .ssh("c1", "df -B1 --output=size / | tail -n 1")
        .trim()
        .parse()
        .expect("df size");
    assert!(
        size > base_fs_bytes && size > (5 << 29),
        "root fs is {size} bytes; the image is {base_fs_bytes}, the disk {DISK}"
    );
    // The guest agent reports the address and the OS.
    let timeout = cloud_guest::BOOT.as_secs().to_string();
    vmctl(
        &lab.d,
        &["wait", "c1", "--for", "agent", "--timeout", &timeout],
    );
    let guest = lab.show("c1")["guest"].clone();
    let addresses = guest["addresses"].as_array().cloned().unwrap_or_default();
    assert!(
        addresses.iter().any(|a| a["address"] == "10.0.2.15"),
        "agent addresses: {guest}"
    );
    assert!(
        guest["os"].as_str().unwrap_or("").contains("Debian"),
        "agent os: {guest}"
    );
    let (c1_machine, c1_host) = lab.identity("c1");
    lab.ssh("c1", "echo kept > /home/lab/marker && sync");
    lab.stop(&["c1"]);

    // Publish a generalized copy; wipe c1; boot c1 again and two VMs of the copy.
    let published = lab.d.ok(
        "image.publish",
        json!([{"vm": "c1", "name": "deb12g", "generalize": true}]),
    );
    assert_eq!(published["cloud_init"], true, "inherited: {published}");
    let before_wipe = lab.show("c1")["cloud_init"]["instance_id"].clone();
    vmctl(&lab.d, &["wipe", "c1"]);
    assert_ne!(lab.show("c1")["cloud_init"]["instance_id"], before_wipe);
    lab.create("c2", "deb12g");
    lab.create("c3", "deb12g");
    lab.start_until_ssh(&["c1", "c2", "c3"]);

    // The wiped VM was provisioned again: same name and account, a fresh disk.
    assert_eq!(lab.ssh("c1", "hostname"), "c1");
    assert_eq!(
        lab.ssh("c1", "test -e /home/lab/marker && echo yes || echo no"),
        "no"
    );
    // The copy keeps the data but not the identity.
    assert_eq!(lab.ssh("c2", "cat /home/lab/marker"), "kept");
    assert_eq!(lab.ssh("c2", "hostname"), "c2");
    let ids = [lab.identity("c1"), lab.identity("c2"), lab.identity("c3")];
    let machines: Vec<&String> = ids.iter().map(|(m, _)| m).chain([&c1_machine]).collect();
    let hosts: Vec<&String> = ids.iter().map(|(_, h)| h).chain([&c1_host]).collect();
    for (i, a) in machines.iter().enumerate() {
        for b in &machines[i + 1..] {
            assert_ne!(a, b, "machine-ids {machines:?}");
        }
    }
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            assert_ne!(a, b, "host keys {hosts:?}");
        }
    }
    lab.stop(&["c1", "c2", "c3"]);
}
