//! Resource limits against clients that hold on: concurrent uploads cannot promise the same
//! free space twice (one space ledger, 507 for the rest, release on completion, import or
//! disconnect), and event subscribers that never read cost vmd bounded memory while a reading
//! subscriber still gets the whole stored history, paged, with no gap.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, Tmpfs, DEADLINE};
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::{json, Value};
use vm_proto::api::VmdApiClient;
use vm_proto::types::EventKind;

const MIB: u64 = 1 << 20;
/// Bytes of each upload sent before it holds.
const FIRST_PART: usize = 16 << 10;

/// An upload whose headers and first bytes are sent, the rest held back.
struct OpenUpload {
    stream: UnixStream,
    body: Vec<u8>,
    reply: Vec<u8>,
    closed: bool,
}

impl OpenUpload {
    fn start(d: &Daemon, body: Vec<u8>) -> OpenUpload {
        let mut stream = UnixStream::connect(&d.socket).expect("connect");
        let head = format!(
            "PUT /v1/uploads HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("head");
        // vmd may refuse (507) from the headers alone and close before the body is sent.
        if let Err(e) = stream.write_all(&body[..FIRST_PART]) {
            let refused = matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset);
            assert!(refused, "first part: {e}");
        }
        stream.set_nonblocking(true).expect("nonblocking");
        OpenUpload {
            stream,
            body,
            reply: Vec::new(),
            closed: false,
        }
    }

    /// Reads what has arrived without waiting; true once the server closed (reply complete).
    fn poll(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        while !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.reply.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read reply: {e}"),
            }
        }
        self.closed
    }

    /// Status and JSON body of a complete reply.
    fn reply(&self) -> (u16, Value) {
        let text = String::from_utf8_lossy(&self.reply);
        let (head, body) = text.split_once("\r\n\r\n").expect("http reply");
        let status = head.split_whitespace().nth(1).expect("status");
        let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status.parse().expect("status"), json)
    }

    /// Sends the rest of the body and waits for the reply.
    fn finish(mut self) -> (u16, Value) {
        assert!(!self.poll(), "answered before the body was complete");
        self.stream.set_nonblocking(false).expect("blocking");
        self.stream
            .set_read_timeout(Some(DEADLINE))
            .expect("timeout");
        let rest = self.body.split_off(FIRST_PART);
        self.stream.write_all(&rest).expect("rest of the body");
        self.stream.read_to_end(&mut self.reply).expect("reply");
        self.reply()
    }

    /// Sends the rest of the body and returns the reply, whichever it is: a refused upload
    /// was answered (and closed) before its body, so the write may fail; an accepted one is
    /// answered once the body is complete.
    fn finish_or_refusal(mut self) -> (u16, Value) {
        self.stream.set_nonblocking(false).expect("blocking");
        self.stream
            .set_read_timeout(Some(DEADLINE))
            .expect("timeout");
        let rest = self.body.split_off(FIRST_PART);
        let _ = self.stream.write_all(&rest);
        let _ = self.stream.read_to_end(&mut self.reply);
        self.reply()
    }
}

/// `len` bytes that `iso.import` accepts: zeros with an ISO 9660 volume descriptor.
fn iso_bytes(len: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len as usize];
    bytes[32769..32774].copy_from_slice(b"CD001");
    bytes
}

fn free_bytes(d: &Daemon) -> u64 {
    let info = d.ok("system.info", json!([]));
    info["disk"]["free_bytes"].as_u64().expect("free_bytes")
}

fn upload_files(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.state.join("uploads"))
        .expect("uploads dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Polls `cond` until it holds or the deadline passes.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_space(status: u16, body: &Value) {
    assert_eq!(status, 507, "{body}");
    let message = body["error"]["message"].as_str().expect("error message");
    assert!(
        message.contains("reserved by uploads in flight"),
        "{message}"
    );
    assert!(body["error"]["code"].is_i64(), "{body}");
}

#[test]
fn concurrent_uploads_cannot_promise_the_same_space_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _tmpfs = Tmpfs::mount(&dir.path().join("state"), "64m");
    // No floor and no reserve on this small file system: the ledger alone is under test.
    let d = Daemon::start_configured(dir, "min_free_bytes = 0\nreserve_bytes = 0\n");
    let free = free_bytes(&d);
    let size = free * 45 / 100;

    // Six uploads open at once, each declaring 45% of the free space: one fits.
    let mut six: Vec<OpenUpload> = (0..6)
        .map(|_| OpenUpload::start(&d, iso_bytes(size)))
        .collect();
    let mut answered = 0;
    let deadline = Instant::now() + DEADLINE;
    while answered < 5 {
        assert!(
            Instant::now() < deadline,
            "only {answered} of 6 uploads were refused: the others were all accepted"
        );
        std::thread::sleep(Duration::from_millis(20));
        answered = six.iter_mut().map(|u| u.poll()).filter(|&c| c).count();
    }
    let (refused, mut held): (Vec<_>, Vec<_>) = six.into_iter().partition(|u| u.closed);
    assert_eq!(refused.len(), 5, "exactly one upload is accepted");
    for upload in &refused {
        let (status, body) = upload.reply();
        assert_no_space(status, &body);
    }
    let (status, staged) = held.pop().expect("the accepted upload").finish();
    assert_eq!(status, 201, "{staged}");
    assert_eq!(staged["size_bytes"], size);

    // Staged, it still holds room for its import: 20% more does not fit beside it.
    let (status, body) = OpenUpload::start(&d, iso_bytes(free / 5)).finish_or_refusal();
    assert_no_space(status, &body);

    // Importing consumes the upload and its reservation; removing the ISO frees the bytes.
    d.ok(
        "iso.import",
        json!([{"name": "big", "upload_id": staged["upload_id"]}]),
    );
    d.ok("iso.remove", json!(["big"]));
    assert!(upload_files(&d).is_empty());

    // A client that goes away mid-upload releases its space at once.
    let holder = OpenUpload::start(&d, iso_bytes(size));
    wait_for("the partial file", || upload_files(&d).len() == 1);
    let (status, body) = OpenUpload::start(&d, iso_bytes(size)).finish_or_refusal();
    assert_no_space(status, &body);
    drop(holder);
    wait_for("the partial file to go", || upload_files(&d).is_empty());
    let (status, body) = OpenUpload::start(&d, iso_bytes(size)).finish_or_refusal();
    assert_eq!(status, 201, "released space is granted again: {body}");
}

/// Stored events put in before vmd starts: as many as it keeps.
const HISTORY: u64 = 100_000;
/// Subscribers that never read.
const STALLED: usize = 30;
/// What all of them together may add to vmd's resident memory.
const RSS_BUDGET: u64 = 40 * MIB;

/// Fills the events table of a stopped vmd's database with `HISTORY` ~200-byte events in one
/// transaction; returns the highest sequence number.
fn fill_history(db: &Path) -> u64 {
    let mut conn = rusqlite::Connection::open(db).expect("open vmd.db");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (at_ms, kind, vm, message) VALUES (?1, 'vm_created', ?2, ?3)",
            )
            .expect("prepare");
        for i in 0..HISTORY {
            let message = format!("{i:08} {}", "history ".repeat(24));
            insert
                .execute(rusqlite::params![i as i64, format!("load-{i}"), message])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    conn.query_row("SELECT MAX(seq) FROM events", [], |r| r.get::<_, i64>(0))
        .expect("max seq") as u64
}

/// A kB figure from `/proc/PID/status`, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("kB");
    kb * 1024
}

/// A WebSocket subscribed to `events.subscribe` from 0 that never reads a byte.
fn stalled_subscriber(d: &Daemon) -> UnixStream {
    let mut stream = UnixStream::connect(&d.socket).expect("connect");
    let upgrade = "GET / HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    stream.write_all(upgrade.as_bytes()).expect("upgrade");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": [0]});
    stream
        .write_all(&ws_text_frame(call.to_string().as_bytes()))
        .expect("frame");
    stream
}

/// A masked client text frame (payload under 64 KiB).
fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x99];
    let mut frame = vec![0x81];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Samples vmd's RSS until it stays within 1 MiB for 3 s (or the deadline); returns the last.
fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut samples: Vec<u64> = Vec::new();
    loop {
        samples.push(proc_status(pid, "VmRSS:"));
        let window = &samples[samples.len().saturating_sub(12)..];
        let spread = window.iter().max().unwrap_or(&0) - window.iter().min().unwrap_or(&0);
        if (window.len() == 12 && spread < MIB) || Instant::now() > deadline {
            return *window.last().unwrap_or(&0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Drains what the server queued for a stalled subscriber; returns the byte count.
fn pending_bytes(stream: &mut UnixStream) -> Vec<u8> {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return bytes,
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn subscribers_that_never_read_cost_bounded_memory() {
    let first = Daemon::start();
    let dir = first.kill9();
    let last_seq = fill_history(&dir.path().join("state/vmd.db"));
    let d = Daemon::start_in(dir);
    let pid = d.pid();
    let before = settled_rss(pid);

    let mut stalled: Vec<UnixStream> = (0..STALLED).map(|_| stalled_subscriber(&d)).collect();
    let after = settled_rss(pid);
    let peak = proc_status(pid, "VmHWM:");
    eprintln!(
        "vmd RSS: {} MiB before, {} MiB with {STALLED} stalled subscribers (peak {} MiB)",
        before / MIB,
        after / MIB,
        peak / MIB
    );
    for stream in &mut stalled {
        let pending = pending_bytes(stream);
        let text = String::from_utf8_lossy(&pending);
        assert!(
            text.starts_with("HTTP/1.1 101"),
            "not upgraded: {text:.200}"
        );
        assert!(
            text.contains("events.event"),
            "no events streamed: {text:.400}"
        );
    }
    assert!(
        peak.saturating_sub(before) < RSS_BUDGET,
        "{STALLED} stalled subscribers grew vmd from {} MiB to a peak of {} MiB",
        before / MIB,
        peak / MIB
    );
    drop(stalled);
    eprintln!("vmd RSS after they left: {} MiB", settled_rss(pid) / MIB);
    let listed = d.ok("events.list", json!([0, 5 * HISTORY]));
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1000),
        "events.list caps its page"
    );
    read_all_history(&d, last_seq);
}

/// A fresh subscriber from 0 gets every stored event once, in order, then live ones.
fn read_all_history(d: &Daemon, last_seq: u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&d.socket)
            .await
            .expect("connect");
        let ws = WsClientBuilder::default()
            .max_buffer_capacity_per_subscription(4 * HISTORY as usize)
            .build_with_stream("ws://localhost/", stream)
            .await
            .expect("ws client");
        let mut sub = ws.events_subscribe(Some(0)).await.expect("subscribe");
        let mut seqs = Vec::new();
        while seqs.last().is_none_or(|&s| s < last_seq) {
            let event = tokio::time::timeout(DEADLINE, sub.next())
                .await
                .expect("event in time")
                .expect("open")
                .expect("valid");
            seqs.push(event.seq);
        }
        assert!(seqs.len() as u64 >= HISTORY, "only {} events", seqs.len());
        let gaps = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert_eq!(gaps, 0, "sequence numbers must be contiguous");
        assert_eq!(*seqs.last().expect("some"), last_seq);

        let disk = common::raw_disk(d.dir.path(), "tiny.raw", "1M");
        d.import(&disk, "tiny");
        let mut prev = last_seq;
        loop {
            let event = tokio::time::timeout(DEADLINE, sub.next())
                .await
                .expect("live event in time")
                .expect("open")
                .expect("valid");
            assert!(event.seq > prev, "{} after {prev}", event.seq);
            prev = event.seq;
            if event.kind == EventKind::ImageImported {
                break;
            }
        }
    });
}

#[test]
fn a_stalled_upload_is_dropped_and_its_space_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _tmpfs = Tmpfs::mount(&dir.path().join("state"), "64m");
    let config = "min_free_bytes = 0\nreserve_bytes = 0\nupload_idle_secs = 2\n";
    let d = Daemon::start_configured(dir, config);
    let size = free_bytes(&d) * 45 / 100;
    // A client that sends its headers and a few bytes, then nothing.
    let mut stalled = OpenUpload::start(&d, iso_bytes(size));
    wait_for("the stalled upload to be dropped", || stalled.poll());
    let (status, body) = stalled.reply();
    assert_eq!(status, 408, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("upload stalled"),
        "{body}"
    );
    wait_for("the partial file to be removed", || {
        upload_files(&d).is_empty()
    });
    // Its reservation is gone: the same size fits again.
    let (status, body) = OpenUpload::start(&d, iso_bytes(size)).finish();
    assert_eq!(status, 201, "{body}");
}
