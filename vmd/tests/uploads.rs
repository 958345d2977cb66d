//! Uploads fail fast and stay small, against the real daemon and the built vmctl: a file of the
//! wrong kind is refused on its first bytes (by vmctl before it connects at all; by vmd after
//! at most its first MiB, closing the connection), and a sparse file crosses the socket as its
//! data only, is staged sparse, and keeps the sha256 of the whole file (`sha256sum FILE`).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{parse_response, path_str, Daemon, DEADLINE};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use testkit::http::stream_until_answered;

const MIB: u64 = 1 << 20;

/// Streams a `len`-byte file starting with `head` (zeros after it) as the body of
/// `PUT /v1/uploads?{query}`, 64 KiB per write, until vmd stops reading. Returns vmd's status
/// and body and how many body bytes could be written before vmd closed the connection (the
/// request asks for no close: vmd must close by itself).
fn stream_file(d: &Daemon, query: &str, head: &[u8], len: u64) -> (u16, String, u64) {
    stream_request(d, query, head, len, "")
}

fn stream_request(
    d: &Daemon,
    query: &str,
    head: &[u8],
    len: u64,
    extra: &str,
) -> (u16, String, u64) {
    let mut stream = UnixStream::connect(&d.socket).expect("connect to vmd");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.set_write_timeout(Some(DEADLINE)).expect("timeout");
    let request = format!(
        "PUT /v1/uploads?{query} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).expect("write head");
    let reader = stream.try_clone().expect("clone");
    let (raw, sent) = stream_until_answered(stream, reader, head, len);
    let (status, body) = parse_response(&raw);
    (status, body, sent)
}

fn qcow2_head() -> Vec<u8> {
    let mut head = vec![0u8; 512];
    head[..4].copy_from_slice(b"QFI\xfb");
    head[4..8].copy_from_slice(&3u32.to_be_bytes());
    head
}

fn iso_head() -> Vec<u8> {
    let mut head = vec![0u8; 64 << 10];
    head[32769..32774].copy_from_slice(b"CD001");
    head
}

#[test]
fn vmd_refuses_a_wrong_kind_within_the_first_mib_and_closes() {
    let d = Daemon::start();
    let before = d.snapshot();
    let (status, body, sent) = stream_file(&d, "kind=iso", &qcow2_head(), 1 << 30);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("this is not an ISO"), "{body}");
    assert!(body.contains("a qcow2 disk image"), "{body}");
    assert!(body.contains("vmctl image import"), "{body}");
    assert!(!body.contains("qemu-img"), "{body}");
    assert!(
        sent < MIB,
        "{sent} bytes of a 1 GiB body were sent before vmd answered"
    );
    eprintln!("iso refusal after {sent} bytes of 1 GiB");

    let (status, body, sent) = stream_file(&d, "kind=disk", &iso_head(), 1 << 30);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("this is an ISO"), "{body}");
    assert!(body.contains("vmctl iso upload"), "{body}");
    assert!(
        sent < MIB,
        "{sent} bytes of a 1 GiB body were sent before vmd answered"
    );
    eprintln!("disk refusal after {sent} bytes of 1 GiB");
    assert_eq!(
        d.snapshot(),
        before,
        "a refused upload leaves nothing behind"
    );

    // Declared right, the same kind of body is read to its end.
    let close = "connection: close\r\n";
    let (status, body, sent) = stream_request(&d, "kind=iso", &iso_head(), 4 * MIB, close);
    assert_eq!((status, sent), (201, 4 * MIB), "{body}");
}

/// A Unix-socket relay in front of vmd that counts the bytes clients send through it.
struct Relay {
    path: PathBuf,
    sent: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Relay {
    fn start(d: &Daemon) -> Relay {
        let path = d.dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).expect("bind relay");
        let (sent, connections) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (upstream, counter, count) = (d.socket.clone(), sent.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let vmd = UnixStream::connect(&upstream).expect("connect to vmd");
                pump(
                    client.try_clone().expect("clone"),
                    vmd.try_clone().expect("clone"),
                    Some(counter.clone()),
                );
                pump(vmd, client, None);
            }
        });
        Relay {
            path,
            sent,
            connections,
        }
    }
}

/// Copies `from` to `to` on a thread, adding what passes to `counter`.
fn pump(mut from: UnixStream, mut to: UnixStream, counter: Option<Arc<AtomicU64>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            if let Some(c) = &counter {
                c.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn vmctl_via(relay: &Relay, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::vmctl_bin())
        .arg("--socket")
        .arg(&relay.path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run vmctl")
}

#[test]
fn vmctl_refuses_a_wrong_kind_before_it_connects() {
    let d = Daemon::start();
    let relay = Relay::start(&d);
    let iso = d.dir.path().join("cd.iso");
    std::fs::write(&iso, iso_head()).expect("write");
    let out = vmctl_via(&relay, &["image", "import", path_str(&iso), "--name", "cd"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("this is an ISO (CD/DVD image), not a disk image"),
        "{stderr}"
    );
    assert!(stderr.contains("vmctl iso upload"), "{stderr}");

    let disk = d.dir.path().join("disk.qcow2");
    common::qemu_img(&["create", "-q", "-f", "qcow2", path_str(&disk), "1G"]);
    let out = vmctl_via(&relay, &["iso", "upload", path_str(&disk)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("this is not an ISO"), "{stderr}");
    assert!(!stderr.contains("qemu-img"), "{stderr}");
    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        0,
        "vmctl connected"
    );
    assert_eq!(relay.sent.load(Ordering::SeqCst), 0);
}

/// A 10 GiB raw disk (an MBR) with 100 MiB of data in 1 MiB pieces every 100 MiB; its path
/// and the sha256 of all its 10 GiB.
fn sparse_disk(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("sparse.raw");
    let file = std::fs::File::create(&path).expect("create");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..100u64 {
        let mut piece = vec![0u8; MIB as usize];
        for chunk in piece.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        if i == 0 {
            piece[510..512].copy_from_slice(&[0x55, 0xaa]);
        }
        file.write_all_at(&piece, i * 100 * MIB)
            .expect("write piece");
    }
    file.set_len(10 << 30).expect("size");
    let mut hasher = Sha256::new();
    let mut reader = std::fs::File::open(&path).expect("open");
    std::io::copy(&mut reader, &mut hasher).expect("hash");
    (path, hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_sparse_10_gib_disk_crosses_as_its_100_mib_of_data_and_is_staged_sparse() {
    let d = Daemon::start();
    let (disk, sha256) = sparse_disk(d.dir.path());
    let relay = Relay::start(&d);
    let out = vmctl_via(
        &relay,
        &[
            "--output",
            "json",
            "image",
            "import",
            path_str(&disk),
            "--name",
            "sparse",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image: Value = serde_json::from_slice(&out.stdout).expect("image json");
    assert_eq!(image["sha256"], sha256.as_str(), "{image}");
    assert_eq!(image["virtual_size_bytes"], 10u64 << 30, "{image}");
    let sent = relay.sent.load(Ordering::SeqCst);
    eprintln!("10 GiB sparse import: {sent} bytes on the wire");
    assert!(
        (100 * MIB..101 * MIB).contains(&sent),
        "{sent} bytes crossed the socket for 100 MiB of data"
    );

    let upload = put_extents(&d, &disk);
    // Hashing 10 GiB of holes would hold the upload up: the digest comes with the import.
    assert_eq!(
        (&upload["sha256"], &upload["sha256_pending"]),
        (&json!(""), &json!(true)),
        "{upload}"
    );
    assert_eq!(upload["size_bytes"], 10u64 << 30, "{upload}");
    let id = upload["upload_id"].as_str().expect("id");
    let staged = std::fs::metadata(d.state.join("uploads").join(id)).expect("staged file");
    assert_eq!(staged.len(), 10 << 30);
    let allocated = staged.blocks() * 512;
    assert!(
        allocated < 110 * MIB,
        "the staged upload takes {allocated} bytes"
    );
    let again = d.ok(
        "image.import",
        json!([{"name": "sparse2", "upload_id": id}]),
    );
    assert_eq!(again["sha256"], sha256.as_str(), "{again}");
}

/// Uploads `file` as its data extents (`?sparse=SIZE`), written by hand from `SEEK_DATA`.
fn put_extents(d: &Daemon, file: &Path) -> Value {
    let source = std::fs::File::open(file).expect("open");
    let size = source.metadata().expect("stat").len();
    let extents: Vec<(u64, u64)> = (0..100).map(|i| (i * 100 * MIB, MIB)).collect();
    let wire: u64 = extents.iter().map(|(_, len)| 16 + len).sum();
    let mut stream = UnixStream::connect(&d.socket).expect("connect");
    stream
        .set_read_timeout(Some(5 * DEADLINE))
        .expect("timeout");
    let head = format!(
        "PUT /v1/uploads?kind=disk&sparse={size} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {wire}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    for (offset, len) in extents {
        let mut data = vec![0u8; len as usize];
        source.read_exact_at(&mut data, offset).expect("read");
        stream.write_all(&offset.to_be_bytes()).expect("offset");
        stream.write_all(&len.to_be_bytes()).expect("length");
        stream.write_all(&data).expect("data");
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let (status, body) = parse_response(&raw);
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).expect("upload json")
}
