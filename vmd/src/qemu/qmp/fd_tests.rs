//! Descriptor passing against a fake QEMU on a real socket pair: the descriptor arrives with
//! its command (`recvmsg` sees `SCM_RIGHTS`), refers to the file vmd opened, and the media
//! change goes through an fd set that is always freed.

use std::os::fd::RawFd;
use std::path::PathBuf;

use serde_json::{json, Value};
use tokio::net::UnixStream;

use super::tests::{connected, GREETING, WAIT};
use super::*;

/// A fake QEMU on a real socket that reads with `recvmsg`, keeping the descriptors that
/// arrive with each request. Blocking: run it on its own thread.
struct FdPeer {
    socket: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl FdPeer {
    fn new(stream: UnixStream) -> FdPeer {
        let socket = stream.into_std().expect("std socket");
        socket.set_nonblocking(false).expect("blocking");
        socket.set_read_timeout(Some(WAIT)).expect("timeout");
        FdPeer {
            socket,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        self.socket
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    /// The next request and the descriptors received while reading it.
    fn recv(&mut self) -> (Value, Vec<RawFd>) {
        use std::os::fd::AsRawFd;
        let mut fds = Vec::new();
        while !self.buf.contains(&b'\n') {
            let mut chunk = [0u8; 4096];
            let mut cmsg = nix::cmsg_space!([RawFd; 4]);
            let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
            let msg = nix::sys::socket::recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::empty(),
            )
            .expect("recvmsg");
            for c in msg.cmsgs().expect("cmsgs") {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(got) = c {
                    fds.extend(got);
                }
            }
            let n = msg.bytes;
            assert!(n > 0, "EOF before a whole request");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let end = self.buf.iter().position(|&b| b == b'\n').expect("newline");
        let line: Vec<u8> = self.buf.drain(..=end).collect();
        (serde_json::from_slice(&line).expect("JSON"), fds)
    }

    fn handshake(&mut self) {
        self.send(GREETING);
        let (request, fds) = self.recv();
        assert_eq!(
            (request["execute"].as_str(), fds.len()),
            (Some("qmp_capabilities"), 0)
        );
        self.send(&format!(r#"{{"return": {{}}, "id": {}}}"#, request["id"]));
    }
}

/// What a received descriptor refers to and its access mode, from /proc (the test cannot
/// own a raw descriptor without `unsafe`, so the received one is left open: one per test).
fn describe(fd: RawFd) -> (PathBuf, String) {
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("fd link");
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags")
        .trim()
        .to_string();
    (target, flags)
}

#[tokio::test]
async fn a_descriptor_travels_with_its_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("medium.iso");
    std::fs::write(&path, b"cd").expect("write");
    let (ours, theirs) = UnixStream::pair().expect("pair");
    let peer = tokio::task::spawn_blocking(move || {
        let mut peer = FdPeer::new(theirs);
        peer.handshake();
        let (plain, fds) = peer.recv();
        assert_eq!((plain["execute"].as_str(), fds.len()), (Some("cont"), 0));
        peer.send(&format!(r#"{{"return": {{}}, "id": {}}}"#, plain["id"]));
        let (request, fds) = peer.recv();
        assert_eq!(request["execute"], "add-fd", "{request}");
        assert_eq!(request["arguments"]["opaque"], "iso x");
        assert_eq!(fds.len(), 1, "one descriptor with add-fd");
        let passed = describe(fds[0]);
        let id = &request["id"];
        peer.send(&format!(
            r#"{{"return": {{"fdset-id": 3, "fd": 25}}, "id": {id}}}"#
        ));
        let (after, fds) = peer.recv();
        assert_eq!((after["execute"].as_str(), fds.len()), (Some("stop"), 0));
        peer.send(&format!(r#"{{"return": {{}}, "id": {}}}"#, after["id"]));
        (passed, peer)
    });
    let qmp = Qmp::from_unix(ours, WAIT).await.expect("handshake");
    qmp.cont().await.expect("cont");
    let file = std::fs::File::open(&path).expect("open");
    let args = json!({"opaque": "iso x"});
    let reply = qmp
        .execute_with_fd("add-fd", Some(args), file.into())
        .await
        .expect("add-fd");
    assert_eq!(reply, json!({"fdset-id": 3, "fd": 25}));
    qmp.stop().await.expect("stop");
    let ((target, flags), _peer) = peer.await.expect("fake peer");
    assert_eq!(target, path, "the descriptor is the file we opened");
    let flags = u32::from_str_radix(&flags, 8).expect("octal flags");
    assert_eq!(flags & 0o3, 0, "opened read-only: {flags:o}");
}

#[tokio::test]
async fn a_descriptor_over_a_plain_stream_fails_that_call_only() {
    let (qmp, mut fake) = connected().await;
    let file = std::fs::File::open("/dev/null").expect("open");
    let err = qmp
        .execute_with_fd("add-fd", None, file.into())
        .await
        .expect_err("no Unix socket");
    assert!(
        matches!(&err, QmpError::Io(e) if e.kind() == ErrorKind::Unsupported),
        "{err:?}"
    );
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.cont().await }
    });
    let id = fake.expect("cont").await;
    fake.reply(&id, "{}").await;
    call.await.expect("join").expect("the session goes on");
}

impl FdPeer {
    /// Expects `command` (with `fds` descriptors attached) and answers `reply` (a whole
    /// `"return": …` or `"error": …` member); returns the request.
    fn answer(&mut self, command: &str, fds: usize, reply: &str) -> Value {
        let (request, got) = self.recv();
        assert_eq!(request["execute"], command, "{request}");
        assert_eq!(got.len(), fds, "descriptors with {command}");
        self.send(&format!(r#"{{{reply}, "id": {}}}"#, request["id"]));
        request
    }
}

#[tokio::test]
async fn insert_medium_goes_through_an_fd_set_and_always_frees_it() {
    let (ours, theirs) = UnixStream::pair().expect("pair");
    let peer = tokio::task::spawn_blocking(move || {
        let mut peer = FdPeer::new(theirs);
        peer.handshake();
        let added = peer.answer("add-fd", 1, r#""return": {"fdset-id": 7, "fd": 30}"#);
        assert_eq!(added["arguments"]["opaque"], "vmd iso tools");
        let change = peer.answer("blockdev-change-medium", 0, r#""return": {}"#);
        let expected = json!({"id": "cd0", "filename": "/dev/fdset/7", "format": "raw", "read-only-mode": "read-only"});
        assert_eq!(change["arguments"], expected);
        let removed = peer.answer("remove-fd", 0, r#""return": {}"#);
        assert_eq!(removed["arguments"], json!({"fdset-id": 7}));
        // Second insert: QEMU refuses the medium; the set is freed all the same.
        peer.answer("add-fd", 1, r#""return": {"fdset-id": 8, "fd": 31}"#);
        let refusal = r#""error": {"class": "GenericError", "desc": "Could not open"}"#;
        peer.answer("blockdev-change-medium", 0, refusal);
        let removed = peer.answer("remove-fd", 0, r#""return": {}"#);
        assert_eq!(removed["arguments"], json!({"fdset-id": 8}));
        peer
    });
    let qmp = Qmp::from_unix(ours, WAIT).await.expect("handshake");
    let file = std::fs::File::open("/dev/null").expect("open");
    qmp.insert_medium("cd0", file.into(), "vmd iso tools")
        .await
        .expect("inserted");
    let file = std::fs::File::open("/dev/null").expect("open");
    let err = qmp
        .insert_medium("cd0", file.into(), "vmd iso bad")
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, QmpError::Command { desc, .. } if desc == "Could not open"),
        "{err:?}"
    );
    peer.await.expect("fake peer");
}
