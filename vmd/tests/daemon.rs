//! Daemon process behaviour: sd_notify READY/STOPPING, graceful SIGTERM, explicit socket
//! permissions, and both transports (HTTP POST and WebSocket) on the same socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use common::Daemon;
use serde_json::json;

#[test]
fn notifies_ready_and_stopping_and_exits_cleanly() {
    let mut d = Daemon::start();
    let meta = std::fs::metadata(&d.socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "socket mode must be explicit"
    );
    let status = d.terminate();
    assert!(status.success(), "{status}");
    d.wait_notify("STOPPING=1");
    assert!(!d.socket.exists(), "socket removed on shutdown");
    assert!(d.log().contains("vmd stopped"), "{}", d.log());
}

#[test]
fn websocket_upgrade_is_served_on_the_same_socket() {
    let d = Daemon::start();
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(common::DEADLINE)).expect("timeout");
    let req = "GET / HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
               sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

#[test]
fn system_info_reports_paths_versions_and_accelerator() {
    let d = Daemon::start();
    let info = d.ok("system.info", json!([]));
    assert_eq!(info["api_version"], vm_proto::API_VERSION);
    assert_eq!(info["state_dir"], d.state.to_str().expect("utf8"));
    assert_eq!(info["socket_path"], d.socket.to_str().expect("utf8"));
    assert!(
        info["qemu_img_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("qemu-img version")),
        "{info}"
    );
    let accel = info["accelerator"]["name"].as_str().expect("accel");
    assert!(accel == "tcg" || accel == "kvm", "{info}");
    let kvm_module = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| std::path::Path::new("/sys/module").join(m).exists());
    if !kvm_module {
        assert_eq!(
            accel, "tcg",
            "KVM without kvm_intel/kvm_amd must not be chosen"
        );
    }
    assert_eq!(
        (info["image_count"].as_u64(), info["vm_count"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify");
    notify
        .set_read_timeout(Some(common::DEADLINE))
        .expect("timeout");
    std::fs::write(dir.path().join("vmd.toml"), "").expect("config");
    let child = std::process::Command::new(common::vmd_bin())
        .args(["--log-format", "json", "--socket"])
        .arg(dir.path().join("vmd.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(dir.path().join("vmd.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmd");
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1");
    assert!(String::from_utf8_lossy(&buf[..n])
        .lines()
        .any(|l| l == "READY=1"));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("exit");
    assert!(
        out.status.success(),
        "SIGINT is a graceful stop too: {out:?}"
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "vmd ready" && l["level"] == "INFO"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["signal"] == "SIGINT"),
        "{text}"
    );
}
