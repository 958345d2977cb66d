//! The socket front end under resource exhaustion: a connection flood past the descriptor
//! limit pauses accepts (bounded CPU and log lines) and the daemon recovers; connections over
//! `max_connections` / `max_connections_per_uid` get a 503 JSON refusal (an upgraded WebSocket
//! keeps its slot until it closes); an unsafe socket
//! directory stops vmd at start; an idle console client is detached and the console freed.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::guest::{Console, BOOT};
use common::{Daemon, DEADLINE};
use serde_json::{json, Value};

/// Clock ticks per second in /proc/PID/stat (USER_HZ, fixed at 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) process `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after_comm = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / USER_HZ
}

fn accept_failed_lines(d: &Daemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .map(str::to_string)
        .collect()
}

/// The `suppressed=N` field of a log line.
fn suppressed(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("suppressed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no suppressed= in {line}"))
}

#[test]
fn descriptor_flood_pauses_accepts_and_the_daemon_recovers() {
    let mut d = Daemon::start_with("", &["prlimit", "--nofile=128:128", "--"]);
    // Far more connections than vmd has descriptors; the rest wait in the listen backlog.
    let flood: Vec<UnixStream> = (0..500)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while accept_failed_lines(&d).is_empty() {
        assert!(
            Instant::now() < deadline,
            "vmd never hit its descriptor limit:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Hold the flood until the rate-limited log writes its second line (one per interval).
    let (cpu_before, held_since) = (cpu_secs(d.pid()), Instant::now());
    let deadline = held_since + DEADLINE;
    while accept_failed_lines(&d).len() < 2 {
        assert!(
            d.exited().is_none(),
            "vmd died under the flood:\n{}",
            d.log()
        );
        assert!(
            Instant::now() < deadline,
            "no second accept-failed line:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_secs(d.pid()) - cpu_before;
    let held = held_since.elapsed().as_secs_f64();
    let lines = accept_failed_lines(&d);
    assert!(
        lines.len() <= 3,
        "accept failures are rate-limited: {lines:#?}"
    );
    let repeats = suppressed(&lines[1]);
    eprintln!("flood held {held:.1} s: vmd used {cpu:.2} s CPU, {} log lines, {repeats} failures suppressed", lines.len());
    assert!(
        repeats < 100,
        "accepts pause between failures: {repeats} suppressed"
    );
    assert!(
        cpu < 0.1 * held,
        "vmd used {cpu:.2} s of CPU while the flood was held for {held:.2} s"
    );
    drop(flood);
    let info = d.ok("system.info", json!([]));
    assert_eq!(info["api_version"], vm_proto::API_VERSION);
    assert!(d.exited().is_none(), "vmd is still running");
}

/// The body of a JSON-RPC `system.info` call.
fn info_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "system.info", "params": []}).to_string()
}

/// A whole `system.info` HTTP request with `connection: close`.
fn info_request() -> Vec<u8> {
    let body = info_body();
    format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn assert_refused(status: u16, body: &str, limit: &str, key: &str) {
    assert_eq!(status, 503, "over the cap: {body}");
    let err: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let message = err["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("limit of {limit} connections")),
        "{err}"
    );
    let hint = err["error"]["data"]["hint"].as_str().expect("hint");
    assert!(hint.contains(key), "{err}");
    assert_eq!(err["error"]["code"], 503, "{err}");
    assert_eq!(err["error"]["data"]["kind"], "unavailable", "{err}");
}

#[test]
fn connections_over_max_connections_get_a_503_until_others_close() {
    let d = Daemon::start_with("max_connections = 8\n", &[]);
    let mut held: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    let (status, body) = d.http("POST", "/", "application/json", info_body().as_bytes());
    assert_refused(status, &body, "8", "max_connections");
    assert!(d.log().contains("connection refused"), "{}", d.log());
    let first = &mut held[0];
    first.set_read_timeout(Some(DEADLINE)).expect("timeout");
    first.write_all(&info_request()).expect("write");
    let mut raw = Vec::new();
    first.read_to_end(&mut raw).expect("read");
    assert_eq!(
        common::parse_response(&raw).0,
        200,
        "admitted connections are served"
    );
    drop(held);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = d.http("POST", "/", "application/json", info_body().as_bytes());
        if status == 200 {
            break;
        }
        assert_refused(status, &body, "8", "max_connections");
        assert!(Instant::now() < deadline, "slots never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_upgraded_websocket_keeps_its_slot_until_it_closes() {
    let d = Daemon::start_with("max_connections = 1\n", &[]);
    let mut ws = UnixStream::connect(&d.socket).expect("connect");
    ws.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let req = "GET / HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
               sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    ws.write_all(req.as_bytes()).expect("write");
    let mut buf = [0u8; 1024];
    let n = ws.read(&mut buf).expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let (status, body) = d.http("POST", "/", "application/json", info_body().as_bytes());
    assert_refused(status, &body, "1", "max_connections");
    drop(ws);
    let deadline = Instant::now() + DEADLINE;
    while d
        .http("POST", "/", "application/json", info_body().as_bytes())
        .0
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the WebSocket's slot was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `socat` client on the daemon socket running as `nobody` (uid 65534), fed by a pipe.
struct NobodyClient {
    child: std::process::Child,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl NobodyClient {
    fn connect(d: &Daemon) -> NobodyClient {
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["socat", "STDIO"])
            .arg(format!("UNIX-CONNECT:{}", common::path_str(&d.socket)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv and socat (scripts/setup.sh)");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        NobodyClient {
            child,
            output,
            seen: String::new(),
        }
    }

    /// Sends a keep-alive `system.info` request.
    fn request(&mut self) {
        let body = info_body();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{head}{body}").as_bytes())
            .expect("write to socat");
    }

    /// Everything received once it contains `needle`.
    fn until(&mut self, needle: &str) -> &str {
        let deadline = Instant::now() + DEADLINE;
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("no {needle:?} from vmd; got: {}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for NobodyClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_non_root_uid_is_capped_by_max_connections_per_uid_and_root_is_not() {
    let d = Daemon::start_with("max_connections_per_uid = 2\nsocket_mode = \"0666\"\n", &[]);
    for dir in [d.dir.path(), d.socket.parent().expect("run dir")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut held: Vec<NobodyClient> = (0..2).map(|_| NobodyClient::connect(&d)).collect();
    for client in &mut held {
        client.request();
        client.until("HTTP/1.1 200");
    }
    let mut third = NobodyClient::connect(&d);
    third.request();
    let refused = third.until("max_connections_per_uid").to_string();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("uid 65534 holds its limit of 2 connections"),
        "{refused}"
    );
    let root: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    d.ok("system.info", json!([]));
    drop((root, held.pop()));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut again = NobodyClient::connect(&d);
        again.request();
        if again.until("\r\n").starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot was never freed"
        );
    }
}

#[test]
fn vmd_refuses_a_socket_directory_others_can_write() {
    let dir = tempfile::tempdir().expect("tmp");
    let open = dir.path().join("run");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = dir.path().join("vmd.toml");
    std::fs::write(&config, "").expect("config");
    let socket = open.join("vmd.sock");
    let state = dir.path().join("state");
    let out = Command::new(common::vmd_bin())
        .args(["--socket", common::path_str(&socket)])
        .args(["--state-dir", common::path_str(&state)])
        .args([
            "--config",
            common::path_str(&config),
            "--log-format",
            "text",
        ])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run vmd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "vmd must not serve: {stderr}");
    assert!(
        stderr.contains("refusing to serve") && stderr.contains("writable by group or others"),
        "{stderr}"
    );
    assert!(!socket.exists(), "no socket left behind");
}

#[test]
fn an_idle_console_client_is_detached_and_the_console_freed() {
    let d = Daemon::start_with("console_idle_secs = 2\n", &[]);
    d.import_guest();
    d.boot("idle1");
    d.wait_log("idle1", "GUEST-READY idle1", 1, BOOT);
    let mut idle = Console::attach(&d, "idle1").into_stream();
    common::wait_closed(&mut idle, "the idle console client was never detached");
    // The socket closes before the detach is logged: poll the log with a deadline.
    let deadline = Instant::now() + DEADLINE;
    let line = loop {
        let log = d.log();
        if let Some(l) = log
            .lines()
            .find(|l| l.contains("console client idle; detached"))
        {
            break l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no detach line in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.contains("INFO") && line.contains("vm=idle1"), "{line}");
    Console::try_attach(&d, "idle1").expect("the console is free for the next client");
}
