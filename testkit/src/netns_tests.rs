//! Tests of [`NetNs`] with real namespaces (root): creation, the ways in, veth links carrying
//! TCP, isolation, and the cleanup on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Polls `cond` until it holds or 10 s passed; returns whether it held.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The inode of the network namespace at `path` (a bind mount or /proc/PID/ns/net).
fn ns_inode(path: &str) -> u64 {
    std::fs::metadata(path).expect("stat a namespace").ino()
}

#[test]
fn new_namespace_has_only_loopback_up_and_no_rules() {
    let ns = NetNs::new();
    assert!(ns
        .name()
        .starts_with(&format!("vmdt-{}-", std::process::id())));
    assert!(ns.path().exists());
    assert_ne!(
        ns_inode(&ns.path().to_string_lossy()),
        ns_inode("/proc/self/ns/net")
    );
    assert_eq!(ns.links(), ["lo"]);
    assert!(ns.ip_ok(&["link", "show", "lo"]).contains(",UP"));
    assert_eq!(ns.nft_ruleset().trim(), "");
    assert!(!ns.ip(&["link", "show", "nosuchdev"]).status.success());
}

#[test]
fn wrapper_execs_in_place_inside_the_namespace() {
    let ns = NetNs::new();
    let mut argv = ns.wrapper();
    argv.extend(["sh", "-c", "echo $$; readlink /proc/self/ns/net"].map(String::from));
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn nsenter");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for nsenter");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(pid.to_string().as_str()), "{text}");
    let want = format!("net:[{}]", ns_inode(&ns.path().to_string_lossy()));
    assert_eq!(lines.next(), Some(want.as_str()), "{text}");
}

#[test]
fn exec_and_nft_ruleset_see_only_the_namespace() {
    let ns = NetNs::new();
    let table = format!("t{}", std::process::id());
    let out = ns.exec(&["nft", "add", "table", "inet", &table]);
    assert!(out.status.success(), "{out:?}");
    assert!(ns.nft_ruleset().contains(&format!("table inet {table}")));
    let host = Command::new("nft").args(["list", "tables"]).output();
    let host = String::from_utf8_lossy(&host.expect("nft on the host").stdout).into_owned();
    assert!(!host.contains(&format!("table inet {table}")), "{host}");
}

#[test]
fn veth_pair_carries_tcp_between_two_namespaces_only() {
    let (a, b, c) = (NetNs::new(), NetNs::new(), NetNs::new());
    let (va, vb) = a.veth_pair(&b, "10.99.0.1/24", "10.99.0.2/24");
    assert_eq!(a.links(), ["lo".to_owned(), va.clone()]);
    assert_eq!(b.links(), ["lo".to_owned(), vb]);
    let listener = a.run(|| TcpListener::bind("10.99.0.1:0").expect("bind in a"));
    let addr = listener.local_addr().expect("listener address");
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        conn.write_all(b"hello").expect("write");
        peer
    });
    let got = b.run(|| {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        buf
    });
    assert_eq!(got, "hello");
    assert_eq!(server.join().expect("server").ip().to_string(), "10.99.0.2");
    // A third namespace has no route there.
    let err = c.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)));
    assert!(err.is_err(), "{err:?}");
}

#[test]
fn drop_kills_processes_and_removes_namespace_and_links() {
    let keep = NetNs::new();
    let ns = NetNs::new();
    let (_, theirs) = ns.veth_pair(&keep, "10.98.0.1/30", "10.98.0.2/30");
    let mut argv = ns.wrapper();
    argv.extend(["sleep", "600"].map(String::from));
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .spawn()
        .expect("spawn sleep");
    assert!(eventually(|| ns.pids().contains(&(child.id() as i32))));
    let path = ns.path();
    drop(ns);
    let status = child.wait().expect("wait for sleep");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!path.exists());
    assert!(eventually(|| !keep.links().contains(&theirs)));
}

#[test]
fn link_names_drop_peer_suffixes() {
    let line = "3: vt0a@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500";
    assert_eq!(link_name(line).as_deref(), Some("vt0a"));
    assert_eq!(link_name("1: lo: <LOOPBACK,UP>").as_deref(), Some("lo"));
    assert_eq!(owner_pid("vmdt-123-4"), Some(123));
    assert_eq!(owner_pid("vmdt-123"), None);
    assert_eq!(owner_pid("other-123-4"), None);
}
