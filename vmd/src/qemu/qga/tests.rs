//! The guest-agent client against a peer on a real Unix socket pair that plays the agent,
//! well-behaved and hostile.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::*;

/// The agent's side of the channel.
struct Peer {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Peer {
    fn pair() -> (Qga, Peer) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let (read, writer) = theirs.into_split();
        let peer = Peer {
            reader: BufReader::new(read),
            writer,
        };
        (Qga::from_stream(ours), peer)
    }

    /// The next request: its command and id (the sync's `arguments.id` or the `id`).
    async fn request(&mut self) -> (String, Value) {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .await
            .expect("read");
        let start = line.iter().position(|&b| b != SENTINEL).unwrap_or(0);
        let request: Value = serde_json::from_slice(&line[start..]).expect("json request");
        let id = request
            .pointer("/arguments/id")
            .or_else(|| request.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        (request["execute"].as_str().unwrap_or("").to_string(), id)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Answers the sync after `stale` bytes.
    async fn sync(&mut self, stale: &[u8]) {
        let (command, id) = self.request().await;
        assert_eq!(command, "guest-sync-delimited");
        self.send(stale).await;
        let reply = format!("\u{0}{}\n", json!({"return": id}));
        let mut bytes = reply.into_bytes();
        bytes[0] = SENTINEL;
        self.send(&bytes).await;
    }

    /// Answers the next command with `value`.
    async fn answer(&mut self, expected: &str, value: Value) {
        let (command, id) = self.request().await;
        assert_eq!(command, expected);
        let line = format!("{}\n", json!({"return": value, "id": id}));
        self.send(line.as_bytes()).await;
    }
}

fn debian_interfaces() -> Value {
    json!([
        {"name": "lo", "hardware-address": "00:00:00:00:00:00",
         "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
        {"name": "enp0s2", "hardware-address": "52:54:00:12:34:56",
         "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
            {"ip-address-type": "ipv6", "ip-address": "fec0::5054:ff:fe12:3456", "prefix": 64}],
         "statistics": {"rx-bytes": 1}}
    ])
}

#[tokio::test]
async fn syncs_past_stale_bytes_and_reports() {
    let (mut qga, mut peer) = Peer::pair();
    let agent = tokio::spawn(async move {
        // Half a line, an old reply, and an old sync reply with another id.
        let mut stale = b"{\"return\": {\"host-na".to_vec();
        stale.extend_from_slice(b"\n{\"return\": 7, \"id\": 1}\n");
        stale.push(SENTINEL);
        stale.extend_from_slice(b"{\"return\": 12345}\n");
        peer.sync(&stale).await;
        let osinfo = json!({"id": "debian", "kernel-release": "6.1.0-28-cloud-amd64",
            "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 12 (bookworm)"});
        peer.answer("guest-get-osinfo", osinfo).await;
        peer.answer("guest-get-host-name", json!({"host-name": "web1"}))
            .await;
        peer.answer("guest-network-get-interfaces", debian_interfaces())
            .await;
        peer
    });
    qga.sync().await.expect("sync");
    let report = qga.report().await.expect("report");
    agent.await.expect("agent");
    assert_eq!(report.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!(report.kernel.as_deref(), Some("6.1.0-28-cloud-amd64"));
    assert_eq!(report.hostname.as_deref(), Some("web1"));
    let addrs: Vec<String> = report
        .addresses
        .iter()
        .map(|a| format!("{} {}/{}", a.interface, a.address, a.prefix))
        .collect();
    assert_eq!(
        addrs,
        ["enp0s2 10.0.2.15/24", "enp0s2 fec0::5054:ff:fe12:3456/64"]
    );
    assert_eq!(
        report.addresses[0].mac.as_deref(),
        Some("52:54:00:12:34:56")
    );
}

#[tokio::test]
async fn refused_commands_leave_parts_empty_and_foreign_ids_are_skipped() {
    let (mut qga, mut peer) = Peer::pair();
    let agent = tokio::spawn(async move {
        peer.sync(b"").await;
        let (_, id) = peer.request().await;
        let error =
            json!({"error": {"class": "CommandNotFound", "desc": "nope\u{1b}[2J"}, "id": id});
        peer.send(b"{\"return\": {\"pretty-name\": \"forged\"}, \"id\": 999}\n")
            .await;
        peer.send(format!("{error}\n").as_bytes()).await;
        peer.answer("guest-get-host-name", json!({"host-name": "h"}))
            .await;
        peer.answer("guest-network-get-interfaces", json!([])).await;
    });
    qga.sync().await.expect("sync");
    let report = qga.report().await.expect("report");
    agent.await.expect("agent");
    assert_eq!((report.os, report.hostname.as_deref()), (None, Some("h")));
}

#[tokio::test]
async fn an_oversized_reply_ends_the_session() {
    let (mut qga, mut peer) = Peer::pair();
    let agent = tokio::spawn(async move {
        peer.sync(b"").await;
        let _ = peer.request().await;
        let flood = vec![b'x'; MAX_REPLY + 2];
        // The client stops reading once the limit is passed: the write may fail.
        let _ = peer.writer.write_all(&flood).await;
        peer
    });
    qga.sync().await.expect("sync");
    let err = qga.execute("guest-get-osinfo").await.expect_err("flood");
    assert!(matches!(err, QgaError::Oversized), "{err:?}");
    drop(qga);
    agent.await.expect("agent");
}

#[tokio::test]
async fn a_stale_flood_without_sentinel_is_refused() {
    let (mut qga, mut peer) = Peer::pair();
    let agent = tokio::spawn(async move {
        let _ = peer.request().await;
        let flood = vec![b'{'; 64 << 10];
        for _ in 0..(MAX_STALE / flood.len() + 2) {
            if peer.writer.write_all(&flood).await.is_err() {
                break;
            }
        }
    });
    let err = qga.sync().await.expect_err("flood");
    assert!(matches!(err, QgaError::Oversized), "{err:?}");
    drop(qga);
    agent.await.expect("agent");
}

#[tokio::test(start_paused = true)]
async fn a_silent_agent_times_out() {
    let (mut qga, peer) = Peer::pair();
    let err = qga.sync().await.expect_err("silence");
    assert!(matches!(err, QgaError::Timeout { step: "sync" }), "{err:?}");
    drop(peer);
    let err = qga.sync().await.expect_err("closed");
    assert!(matches!(err, QgaError::Closed | QgaError::Io(_)), "{err:?}");
}

#[test]
fn hostile_strings_and_counts_are_bounded() {
    let mut report = GuestReport::default();
    let evil = format!("\u{1b}[31mEvil\r\nOS\u{202e}{}", "A".repeat(1000));
    report.set_osinfo(&json!({"pretty-name": evil, "kernel-release": "\u{7}"}));
    let os = report.os.clone().expect("os");
    assert!(os.starts_with("[31mEvilOSAAA"), "{os}");
    assert_eq!(os.chars().count(), report::MAX_TEXT);
    assert_eq!(report.kernel, None, "only control characters");
    let iface = |i: usize| {
        json!({"name": format!("eth{i}\n"), "hardware-address": "zz:00",
            "ip-addresses": [
                {"ip-address": format!("10.0.{}.{}", i / 250, i % 250), "prefix": 24},
                {"ip-address": "10.0.0.1; rm -rf /", "prefix": 24},
                {"ip-address": "10.0.0.2", "prefix": 33},
                {"ip-address": "::1", "prefix": 128}]})
    };
    let many: Vec<Value> = (0..1000).map(iface).collect();
    report.set_interfaces(&Value::Array(many));
    assert_eq!(report.addresses.len(), report::MAX_INTERFACES);
    let first = &report.addresses[0];
    assert_eq!(
        (
            first.interface.as_str(),
            first.address.to_string(),
            first.mac.clone()
        ),
        ("eth0", "10.0.0.0".to_string(), None)
    );
    report.set_interfaces(&json!({"not": "a list"}));
    assert!(report.addresses.is_empty());
}
