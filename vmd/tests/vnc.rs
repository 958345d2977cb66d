//! The VM's screen through vmd: `GET /v1/vms/NAME/vnc` upgraded to QEMU's RFB stream, and
//! `vmctl vnc --listen` relaying it to a local TCP port for an ordinary VNC viewer.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{vmctl_bin, Daemon, DEADLINE};
use serde_json::json;

/// Sends a VNC upgrade request; returns the response head, and the stream when it is 101.
fn upgrade(d: &Daemon, name: &str, protocol: &str) -> (String, UnixStream) {
    upgrade_with(d, &format!("/v1/vms/{name}/vnc"), protocol, "")
}

/// Sends an upgrade request for `path` with extra header lines `extra` (each ending in CRLF).
fn upgrade_with(d: &Daemon, path: &str, protocol: &str, extra: &str) -> (String, UnixStream) {
    let mut stream = UnixStream::connect(&d.socket).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: {protocol}\r\n{extra}\r\n"
    );
    stream.write_all(req.as_bytes()).expect("write");
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

/// Reads the 12-byte RFB protocol banner QEMU's VNC server sends first.
fn banner(stream: &mut impl Read) -> String {
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).expect("RFB banner");
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn vnc_upgrades_to_the_guests_rfb_stream_and_refuses_otherwise() {
    let d = Daemon::start();
    d.import_guest();
    d.ok(
        "vm.create",
        json!([{"name": "g", "image": "guest", "memory_mib": 128}]),
    );
    let (head, _) = upgrade(&d, "g", "vmd-vnc");
    assert!(
        head.starts_with("HTTP/1.1 412"),
        "a stopped VM has no screen: {head}"
    );
    d.ok("vm.start", json!(["g"]));
    let (head, mut stream) = upgrade(&d, "g", "vmd-vnc");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(banner(&mut stream), "RFB 003.008\n");
    let (head, mut second) = upgrade(&d, "g", "vmd-vnc");
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "several viewers at once: {head}"
    );
    assert_eq!(banner(&mut second), "RFB 003.008\n");
    let (head, _) = upgrade(&d, "g", "websocket");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, _) = upgrade(&d, "nope", "vmd-vnc");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    d.ok("vm.stop", json!([{"name": "g", "force": true}]));
}

#[test]
fn vmctl_relays_the_screen_on_a_loopback_port() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("g");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut relay = Command::new(vmctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["vnc", "g", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vmctl vnc");
    let end = Instant::now() + DEADLINE;
    let mut tcp = loop {
        match TcpStream::connect(&listen) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < end, "relay never listened: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    tcp.set_read_timeout(Some(DEADLINE)).expect("timeout");
    assert_eq!(banner(&mut tcp), "RFB 003.008\n");
    let refused = d.vmctl(&["vnc", "g", "--listen", "0.0.0.0:5999"]);
    assert_eq!(refused.status.code(), Some(6), "only loopback");
    let _ = relay.kill();
    let _ = relay.wait();
    d.ok("vm.stop", json!([{"name": "g", "force": true}]));
}

/// What `vm.console_ticket` answers `token`'s caller for `kind` of VM `vm`.
fn ticket(d: &Daemon, token: &str, vm: &str, kind: &str) -> serde_json::Value {
    d.call_with(
        token,
        "vm.console_ticket",
        json!([{"vm": vm, "kind": kind}]),
    )
    .1
}

#[test]
fn console_tickets_open_one_attach_of_one_vm_for_their_owner() {
    let d = Daemon::start_configured(
        tempfile::tempdir().expect("tmp"),
        "console_ticket_secs = 2\n",
    );
    d.import_guest();
    for user in ["ann", "bob"] {
        d.ok("user.add", json!([{"name": user}]));
    }
    let token = |user: &str| {
        d.ok("token.create", json!([{"user": user}]))["token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let (ann, bob) = (token("ann"), token("bob"));
    let create = json!([{"name": "g", "image": "guest", "memory_mib": 128}]);
    assert_eq!(d.call_with(&ann, "vm.create", create).0, 200);
    assert_eq!(d.call_with(&ann, "vm.start", json!(["g"])).0, 200);
    let theirs = ticket(&d, &bob, "g", "vnc");
    assert_eq!(theirs["error"]["data"]["kind"], "not_found", "{theirs}");
    let vnc = ticket(&d, &ann, "g", "vnc")["result"]["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let header = format!("x-vmd-ticket: {vnc}\r\n");
    let (head, _) = upgrade_with(&d, "/v1/vms/g/console", "vmd-console", &header);
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "a VNC ticket does not open the serial console: {head}"
    );
    let vnc = ticket(&d, &ann, "g", "vnc")["result"]["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let header = format!("x-vmd-ticket: {vnc}\r\n");
    let (head, mut stream) = upgrade_with(&d, "/v1/vms/g/vnc", "vmd-vnc", &header);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(banner(&mut stream), "RFB 003.008\n");
    let (head, _) = upgrade_with(&d, "/v1/vms/g/vnc", "vmd-vnc", &header);
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "a ticket opens one attach: {head}"
    );
    let serial = ticket(&d, &ann, "g", "serial")["result"]["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let header = format!("x-vmd-ticket: {serial}\r\n");
    let (head, _) = upgrade_with(&d, "/v1/vms/g/console", "vmd-console", &header);
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "an expired ticket is refused: {head}"
    );
    let (head, _) = upgrade_with(
        &d,
        "/v1/vms/g/vnc",
        "vmd-vnc",
        "x-vmd-ticket: vmt_forged\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    d.ok("vm.stop", json!([{"name": "g", "force": true}]));
}

/// A whole RFB session through the relay: version, security (None), ServerInit with the
/// guest's framebuffer size, then a framebuffer update for a full-screen request.
#[test]
fn a_viewer_completes_the_rfb_handshake_and_gets_the_screen() {
    use std::io::Write as _;
    let d = Daemon::start();
    d.import_guest();
    d.boot("g");
    let (head, mut s) = upgrade(&d, "g", "vmd-vnc");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(banner(&mut s), "RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").expect("version");
    let n = read_u8(&mut s) as usize;
    assert!(n > 0, "the server refused the connection");
    let mut types = vec![0u8; n];
    s.read_exact(&mut types).expect("security types");
    assert!(types.contains(&1), "security type None offered: {types:?}");
    s.write_all(&[1]).expect("choose None");
    assert_eq!(read_u32(&mut s), 0, "SecurityResult OK");
    s.write_all(&[1]).expect("ClientInit, shared");
    let (width, height) = (read_u16(&mut s), read_u16(&mut s));
    assert!(
        width >= 320 && height >= 200,
        "framebuffer {width}x{height}"
    );
    let mut pixel_format = [0u8; 16];
    s.read_exact(&mut pixel_format).expect("pixel format");
    let name_len = read_u32(&mut s) as usize;
    let mut name = vec![0u8; name_len];
    s.read_exact(&mut name).expect("desktop name");
    // FramebufferUpdateRequest, not incremental, the whole screen.
    let mut req = vec![3u8, 0, 0, 0, 0, 0];
    req.extend_from_slice(&width.to_be_bytes());
    req.extend_from_slice(&height.to_be_bytes());
    s.write_all(&req).expect("update request");
    assert_eq!(read_u8(&mut s), 0, "a FramebufferUpdate message");
    read_u8(&mut s);
    assert!(read_u16(&mut s) >= 1, "at least one rectangle");
    d.ok("vm.stop", json!([{"name": "g", "force": true}]));
}

fn read_u8(s: &mut impl Read) -> u8 {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("read");
    b[0]
}

fn read_u16(s: &mut impl Read) -> u16 {
    let mut b = [0u8; 2];
    s.read_exact(&mut b).expect("read");
    u16::from_be_bytes(b)
}

fn read_u32(s: &mut impl Read) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).expect("read");
    u32::from_be_bytes(b)
}
