//! Streams through vmd-web over a real vmd: the events SSE stream (and that it is filtered per
//! user), following a console log, and a 1 GiB ISO upload that vmd-web must not buffer.

mod common;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Vmd, Web, DEADLINE};
use serde_json::{json, Value};

/// An open SSE response, read event by event.
struct Sse {
    reader: BufReader<TcpStream>,
    partial: Vec<u8>,
}

/// One SSE event: its `id` and its `data`.
#[derive(Debug)]
struct SseEvent {
    id: Option<String>,
    data: String,
}

impl Sse {
    /// `GET path` as `token` (HTTP/1.0, so the body is not chunked); asserts a 200 stream.
    fn open(web: &Web, token: &str, path: &str, extra: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(&web.addr).expect("connect to vmd-web");
        let mut head = format!(
            "GET {path} HTTP/1.0\r\nhost: {}\r\nauthorization: Bearer {token}\r\n",
            web.addr
        );
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        stream
            .write_all(format!("{head}\r\n").as_bytes())
            .expect("write");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut sse = Sse {
            reader: BufReader::new(stream),
            partial: Vec::new(),
        };
        let mut response = String::new();
        while let Some(line) = sse.line(Instant::now() + DEADLINE) {
            if line.is_empty() {
                break;
            }
            response.push_str(&line);
            response.push('\n');
        }
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
        assert!(response.contains("text/event-stream"), "{response}");
        sse
    }

    /// The next line (without its end), or `None` at EOF or `deadline`.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        while Instant::now() < deadline {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => return None,
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&self.partial)
                        .trim_end()
                        .to_string();
                    self.partial.clear();
                    return Some(line);
                }
                Ok(_) | Err(_) => continue,
            }
        }
        None
    }

    /// The next event (keep-alive comments skipped), or `None` at EOF or `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<SseEvent> {
        let mut event = SseEvent {
            id: None,
            data: String::new(),
        };
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() && !event.data.is_empty() {
                return Some(event);
            }
            if let Some(id) = line.strip_prefix("id: ") {
                event.id = Some(id.to_string());
            } else if let Some(data) = line.strip_prefix("data: ") {
                event.data.push_str(data);
            }
        }
    }

    /// Events until one matches `want`; panics at the deadline. Returns those before it.
    fn until(&mut self, want: impl Fn(&Value) -> bool) -> (Vec<Value>, Value) {
        let deadline = Instant::now() + DEADLINE;
        let mut before = Vec::new();
        while let Some(event) = self.next(deadline) {
            let json: Value = serde_json::from_str(&event.data).expect("event JSON");
            assert_eq!(event.id, Some(json["seq"].to_string()), "{json}");
            if want(&json) {
                return (before, json);
            }
            before.push(json);
        }
        panic!("the awaited event did not come; got {before:?}");
    }
}

/// Whether `event` is the creation of VM `vm`.
fn created(vm: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == "vm_created" && e["vm"] == vm
}

#[test]
fn events_stream_is_filtered_per_user_and_resumes() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let ann = vmd.user_token("ann", None);
    let bob = vmd.user_token("bob", None);
    let web = Web::start(&vmd);

    let mut ann_events = Sse::open(&web, &ann, "/api/v1/events?since=0", &[]);
    let vm = json!({"name": "ann1", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    let (_, ann1) = ann_events.until(created("ann1"));

    // Bob's backlog starts at 0, yet holds nothing of ann's VM before his own.
    let mut bob_events = Sse::open(&web, &bob, "/api/v1/events?since=0", &[]);
    let vm = json!({"name": "bob1", "image": "base"});
    web.bearer(&bob, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    let (before, _) = bob_events.until(created("bob1"));
    assert!(before.iter().all(|e| e["vm"] != "ann1"), "{before:?}");

    // Last-Event-ID wins over ?since: the stream resumes after ann1's creation.
    let seq = ann1["seq"].to_string();
    let mut resumed = Sse::open(
        &web,
        &ann,
        "/api/v1/events?since=0",
        &[("last-event-id", &seq)],
    );
    let vm = json!({"name": "ann2", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    let (before, ann2) = resumed.until(created("ann2"));
    let first = before.first().unwrap_or(&ann2);
    assert!(first["seq"].as_u64() > ann1["seq"].as_u64(), "{first}");
}

#[test]
fn logs_follow_streams_vmd_notes_and_only_to_the_owner() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let ann = vmd.user_token("ann", None);
    let bob = vmd.user_token("bob", None);
    let web = Web::start(&vmd);
    let vm = json!({"name": "logvm", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);

    web.bearer(&bob, "GET", "/api/v1/vms/logvm/logs?follow=1", None)
        .expect_error(404, "not_found");
    let mut logs = Sse::open(&web, &ann, "/api/v1/vms/logvm/logs?follow=1", &[]);
    // vmd starts following at the log's end once it has accepted: wipe until a note shows.
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    while !text.contains("disk wiped") {
        assert!(Instant::now() < deadline, "no wipe note in {text:?}");
        web.bearer(&ann, "POST", "/api/v1/vms/logvm/wipe", None)
            .expect(200);
        if let Some(event) = logs.next(Instant::now() + Duration::from_secs(3)) {
            let chunk: String = serde_json::from_str(&event.data).expect("JSON string");
            text.push_str(&chunk);
        }
    }
    assert!(text.contains("[vmd "), "{text:?}");
}

/// A sparse ISO of `len` bytes with the ISO 9660 descriptor vmd checks for.
fn sparse_iso(path: &Path, len: u64) {
    let mut file = std::fs::File::create(path).expect("create");
    file.set_len(len).expect("set_len");
    file.seek(SeekFrom::Start(32769)).expect("seek");
    file.write_all(b"CD001").expect("write");
}

/// vmd-web's peak resident memory in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_1_gib_iso_streams_through_without_buffering_and_images_upload_too() {
    let vmd = Vmd::start();
    let admin = vmd.admin_token();
    let ann = vmd.user_token("ann", None);
    let web = Web::start(&vmd);

    let small = vmd.dir.path().join("small.iso");
    sparse_iso(&small, 64 << 10);
    web.upload(&ann, "/api/v1/isos?name=small", &small)
        .expect_error(403, "permission_denied");

    let big = vmd.dir.path().join("big.iso");
    sparse_iso(&big, 1 << 30);
    let started = Instant::now();
    let iso = web
        .upload(&admin, "/api/v1/isos?name=big", &big)
        .expect(201);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(iso["name"], "big", "{iso}");
    let _ = std::fs::remove_file(&big);
    let list = web.bearer(&admin, "GET", "/api/v1/isos", None).expect(200);
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|i| i["name"] == "big")),
        "{list}"
    );
    let disk = vmd.dir.path().join("disk.raw");
    let mut bytes = vec![0u8; 16 << 20];
    bytes[510..512].copy_from_slice(&[0x55, 0xaa]);
    std::fs::write(&disk, bytes).expect("write disk");
    let image = web
        .upload(&admin, "/api/v1/images?name=base", &disk)
        .expect(201);
    assert_eq!(image["name"], "base", "{image}");
    let peak = peak_rss_kib(web.pid());
    eprintln!("1 GiB upload through vmd-web: {secs:.1} s, vmd-web VmHWM {peak} KiB");
    assert!(peak < 64 << 10, "vmd-web peaked at {peak} KiB");
}

#[test]
fn a_wrong_file_is_refused_on_its_first_bytes_not_after_all_of_them() {
    let vmd = Vmd::start();
    let admin = vmd.admin_token();
    let web = Web::start(&vmd);
    let mut qcow2 = vec![0u8; 512];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    let (resp, sent) = web.upload_until_refused(&admin, "/api/v1/isos?name=x", &qcow2, 4 << 30);
    let json = resp.expect_error(400, "invalid_argument");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(message.contains("this is not an ISO"), "{json}");
    assert!(
        json["hint"]
            .as_str()
            .is_some_and(|h| h.contains("image import")),
        "{json}"
    );
    // TCP buffers on both hops hold a few MiB; vmd itself reads at most its first MiB.
    eprintln!("refused after {sent} bytes of 4 GiB sent to vmd-web");
    assert!(sent < 64 << 20, "{sent} bytes were sent before the refusal");

    let mut iso = vec![0u8; 64 << 10];
    iso[32769..32774].copy_from_slice(b"CD001");
    let (resp, sent) = web.upload_until_refused(&admin, "/api/v1/images?name=cd", &iso, 4 << 30);
    let json = resp.expect_error(400, "invalid_argument");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("this is an ISO")),
        "{json}"
    );
    assert!(sent < 64 << 20, "{sent} bytes were sent before the refusal");
}
