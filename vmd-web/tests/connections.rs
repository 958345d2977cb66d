//! Connection limits over plain HTTP, against a real vmd: a request head must arrive within
//! the header timeout (whole, not one trickled line at a time), idle kept-alive connections
//! are closed, the connection cap holds newcomers in the listen backlog and lets them in as
//! others close, the security headers, the raised descriptor limit, and a shutdown that an
//! open event stream cannot hold up. The hidden flags `--header-timeout-secs` and
//! `--max-connections` make the limits small enough to test.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{wait_log, Vmd, Web, DEADLINE};

/// A request head without its final blank line.
const INCOMPLETE_HEAD: &str = "GET /health HTTP/1.1\r\nhost: vmd-web\r\n";

/// A connection to `web` whose reads give up after [`DEADLINE`].
fn connect(web: &Web) -> TcpStream {
    let stream = TcpStream::connect(&web.addr).expect("connect to vmd-web");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
}

/// Reads until vmd-web closes `stream` (true), or [`DEADLINE`] passes (false); what was read.
fn read_until_closed(stream: &mut TcpStream) -> (bool, String) {
    let mut raw = Vec::new();
    let closed = match stream.read_to_end(&mut raw) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    (closed, String::from_utf8_lossy(&raw).into_owned())
}

#[test]
fn a_silent_or_incomplete_request_head_is_closed_at_the_header_timeout() {
    let vmd = Vmd::start();
    let web = Web::start_with(&vmd, &["--header-timeout-secs", "1"]);
    let mut silent = connect(&web);
    let mut stream = connect(&web);
    stream.write_all(INCOMPLETE_HEAD.as_bytes()).expect("write");
    let (closed, _) = read_until_closed(&mut stream);
    assert!(closed, "an incomplete head kept the connection open");
    let (closed, _) = read_until_closed(&mut silent);
    assert!(closed, "a connection that sent nothing was kept open");
    web.request("GET", "/health", &[], None).expect(200);
}

#[test]
fn a_head_trickled_line_by_line_is_closed_at_the_header_timeout() {
    let vmd = Vmd::start();
    let web = Web::start_with(&vmd, &["--header-timeout-secs", "1"]);
    let mut stream = connect(&web);
    let mut reader = stream.try_clone().expect("clone");
    let (tx, closed) = mpsc::channel();
    std::thread::spawn(move || tx.send(read_until_closed(&mut reader).0));
    stream.write_all(INCOMPLETE_HEAD.as_bytes()).expect("write");
    // A slowloris: one more header line every 200 ms, well inside the 1 s timeout each time.
    let deadline = Instant::now() + DEADLINE;
    for line in 0.. {
        match closed.recv_timeout(Duration::from_millis(200)) {
            Ok(closed) => return assert!(closed, "no EOF after {line} lines"),
            Err(_) => assert!(Instant::now() < deadline, "kept open for {line} lines"),
        }
        // Fails once vmd-web has closed the connection; the reader then reports it.
        let _ = stream.write_all(format!("x-slow-{line}: 1\r\n").as_bytes());
    }
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let vmd = Vmd::start();
    let web = Web::start_with(&vmd, &["--header-timeout-secs", "1"]);
    let mut stream = connect(&web);
    let head = INCOMPLETE_HEAD.to_string() + "\r\n";
    stream.write_all(head.as_bytes()).expect("write");
    let (closed, response) = read_until_closed(&mut stream);
    assert!(closed, "the idle connection stayed open: {response}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        !lower.contains("connection: close"),
        "keep-alive refused: {response}"
    );
}

/// The accept queue length of the loopback listener on `addr`'s port (`/proc/net/tcp`).
fn accept_queue(addr: &str) -> usize {
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let listener = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
        .unwrap_or_else(|| panic!("no listener {local} in /proc/net/tcp"));
    let queues = listener[4].split_once(':').expect("tx:rx").1;
    usize::from_str_radix(queues, 16).expect("hex")
}

/// Polls until `addr`'s listener holds `count` connections it has not accepted.
fn wait_accept_queue(addr: &str, count: usize) {
    let deadline = Instant::now() + DEADLINE;
    while accept_queue(addr) != count {
        assert!(
            Instant::now() < deadline,
            "accept queue {}",
            accept_queue(addr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_connection_cap_queues_newcomers_and_lets_them_in_as_others_close() {
    let vmd = Vmd::start();
    let log = vmd.dir.path().join("vmd-web.log");
    let file = std::fs::File::create(&log).expect("log");
    let flags = ["--max-connections", "4", "--header-timeout-secs", "600"];
    let web = Web::start_flags(&vmd, &flags, file.into());
    let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(&web)).collect();
    web.request("GET", "/health", &[], None).expect(200);

    // Five more silent connections: one takes the last place, four wait unaccepted.
    idle.extend((0..5).map(|_| connect(&web)));
    wait_log(&log, "connection cap reached");
    wait_accept_queue(&web.addr, 4);
    let addr = web.addr.clone();
    let (tx, answered) = mpsc::channel();
    std::thread::spawn(move || tx.send(health_status(&addr)));
    wait_accept_queue(&web.addr, 5);

    drop(idle);
    let status = answered
        .recv_timeout(DEADLINE)
        .expect("the queued request is answered");
    assert_eq!(status.as_deref(), Some("200"));
    wait_accept_queue(&web.addr, 0);
    web.request("GET", "/health", &[], None).expect(200);
}

/// The status code of `GET /health` on `addr`, on a connection of its own.
fn health_status(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let head = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    raw.split_whitespace().nth(1).map(str::to_string)
}

#[test]
fn responses_carry_the_security_headers_and_no_hsts_over_plain_http() {
    let vmd = Vmd::start();
    let web = Web::start(&vmd);
    for path in ["/health", "/api/v1/nope"] {
        let resp = web.request("GET", path, &[], None);
        assert_eq!(
            resp.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            resp.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(resp.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            resp.header("strict-transport-security"),
            None,
            "{}",
            resp.head
        );
    }
}

/// `(soft, hard)` "Max open files" of process `pid`.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(
        hard > 512,
        "this test needs a hard limit above 512, not {hard}"
    );
    // nextest runs each test in a process of its own: vmd-web inherits this lower soft limit.
    setrlimit(Resource::RLIMIT_NOFILE, 512, hard).expect("lower the soft limit");
    let vmd = Vmd::start();
    let web = Web::start(&vmd);
    let (soft, hard) = nofile_of(web.pid());
    assert_eq!(soft, hard, "vmd-web's soft descriptor limit");
}

#[test]
fn shutdown_is_not_held_up_by_an_open_event_stream() {
    let vmd = Vmd::start();
    let token = vmd.user_token("ann", None);
    let mut web = Web::start(&vmd);
    let mut stream = connect(&web);
    let head = format!(
        "GET /api/v1/events HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\r\n",
        web.addr
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).expect("the stream's head");
    assert_eq!(&first, b"HTTP/1.1 200");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(web.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = web.wait_exit();
    assert!(status.success(), "vmd-web exited with {status}");
}
