//! Transcript tests: a fake QEMU on the other end of an in-memory pipe replays lines recorded
//! from qemu-system-x86_64 7.2.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::*;

pub(super) const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;
const STOP: &str =
    r#"{"timestamp": {"seconds": 1795333070, "microseconds": 195747}, "event": "STOP"}"#;
pub(super) const WAIT: Duration = Duration::from_secs(5);

/// The QEMU side of the pipe.
pub(super) struct FakeQemu {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
}

impl FakeQemu {
    fn new(stream: DuplexStream) -> FakeQemu {
        let (read, writer) = tokio::io::split(stream);
        FakeQemu {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        let framed = format!("{line}\r\n");
        self.writer
            .write_all(framed.as_bytes())
            .await
            .expect("send");
    }

    /// The next request, or `None` at EOF.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("request in time")
            .expect("read");
        (n > 0).then(|| serde_json::from_str(&line).expect("request is JSON"))
    }

    pub(super) async fn expect(&mut self, command: &str) -> Value {
        let request = self.recv().await.expect("a request");
        assert_eq!(request["execute"], command, "{request}");
        request["id"].clone()
    }

    pub(super) async fn reply(&mut self, id: &Value, body: &str) {
        self.send(&format!(r#"{{"return": {body}, "id": {id}}}"#))
            .await;
    }
}

pub(super) async fn connected() -> (Qmp, FakeQemu) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut fake = FakeQemu::new(server);
    let qmp = tokio::spawn(Qmp::from_stream(client, WAIT));
    fake.send(GREETING).await;
    let id = fake.expect("qmp_capabilities").await;
    fake.reply(&id, "{}").await;
    let qmp = qmp.await.expect("join").expect("handshake");
    (qmp, fake)
}

#[tokio::test]
async fn handshake_keeps_the_greeting() {
    let (qmp, _fake) = connected().await;
    assert_eq!(qmp.greeting()["version"]["qemu"]["minor"], 2);
    assert!(!qmp.is_closed());
}

#[tokio::test]
async fn event_before_the_reply_is_broadcast_and_the_reply_matched() {
    let (qmp, mut fake) = connected().await;
    let mut events = qmp.events();
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.stop().await }
    });
    let id = fake.expect("stop").await;
    fake.send(STOP).await;
    fake.reply(&id, "{}").await;
    call.await.expect("join").expect("stop");
    let event = events.recv().await.expect("event");
    assert_eq!(event.event, "STOP");
    assert_eq!(event.data, Value::Null);
    assert_eq!(event.timestamp_micros, 1_795_333_070_195_747);
}

#[tokio::test]
async fn typed_status_and_arguments() {
    let (qmp, mut fake) = connected().await;
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.query_status().await }
    });
    let id = fake.expect("query-status").await;
    fake.reply(
        &id,
        r#"{"status": "paused", "singlestep": false, "running": false}"#,
    )
    .await;
    let status = call.await.expect("join").expect("status");
    assert_eq!((status.status, status.running), (RunState::Paused, false));

    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move {
            qmp.execute(
                "human-monitor-command",
                Some(json!({"command-line": "info"})),
            )
            .await
        }
    });
    let request = fake.recv().await.expect("request");
    assert_eq!(request["arguments"]["command-line"], "info");
    fake.reply(&request["id"], r#""ok""#).await;
    assert_eq!(call.await.expect("join").expect("hmp"), json!("ok"));
}

#[tokio::test]
async fn error_reply_is_a_command_error() {
    let (qmp, mut fake) = connected().await;
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute("nope", None).await }
    });
    let id = fake.expect("nope").await;
    fake.send(&format!(
        r#"{{"id": {id}, "error": {{"class": "CommandNotFound", "desc": "The command nope has not been found"}}}}"#
    ))
    .await;
    match call.await.expect("join") {
        Err(QmpError::Command { class, desc }) => {
            assert_eq!(class, "CommandNotFound");
            assert_eq!(desc, "The command nope has not been found");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_lines_are_skipped() {
    let (qmp, mut fake) = connected().await;
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.cont().await }
    });
    let id = fake.expect("cont").await;
    fake.send("this is not json {").await;
    fake.send(r#"{"something": "else"}"#).await;
    fake.send("").await;
    fake.send(r#"{"return": {}, "id": 999}"#).await;
    fake.reply(&id, "{}").await;
    call.await.expect("join").expect("cont survives garbage");
    assert!(!qmp.is_closed());
}

#[tokio::test]
async fn replies_out_of_order_reach_their_callers() {
    let (qmp, mut fake) = connected().await;
    let first = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute("a", None).await }
    });
    let id_a = fake.expect("a").await;
    let second = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute("b", None).await }
    });
    let id_b = fake.expect("b").await;
    fake.reply(&id_b, r#""B""#).await;
    fake.reply(&id_a, r#""A""#).await;
    assert_eq!(first.await.expect("join").expect("a"), json!("A"));
    assert_eq!(second.await.expect("join").expect("b"), json!("B"));
}

#[tokio::test]
async fn eof_fails_pending_calls_and_resolves_closed() {
    let (qmp, mut fake) = connected().await;
    let closed = tokio::spawn(qmp.closed());
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.system_reset().await }
    });
    fake.expect("system_reset").await;
    drop(fake);
    assert!(matches!(call.await.expect("join"), Err(QmpError::Closed)));
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("closed in time")
        .expect("join");
    assert!(qmp.is_closed());
    assert!(matches!(qmp.query_status().await, Err(QmpError::Closed)));
    // Late waiters resolve at once.
    tokio::time::timeout(WAIT, qmp.closed())
        .await
        .expect("closed");
}

#[tokio::test]
async fn quit_answered_by_eof_is_success() {
    let (qmp, mut fake) = connected().await;
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.quit().await }
    });
    fake.expect("quit").await;
    fake.send(r#"{"timestamp": {"seconds": 1795333070, "microseconds": 195747}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#).await;
    drop(fake);
    call.await.expect("join").expect("quit");
}

#[tokio::test]
async fn a_late_reply_after_a_timeout_is_ignored() {
    let (qmp, mut fake) = connected().await;
    let slow = qmp.execute_timeout("slow", None, Duration::from_millis(20));
    let (result, id) = tokio::join!(slow, fake.expect("slow"));
    assert!(matches!(result, Err(QmpError::Timeout { command }) if command == "slow"));
    fake.reply(&id, "{}").await;
    let call = tokio::spawn({
        let qmp = qmp.clone();
        async move { qmp.execute("next", None).await }
    });
    let id = fake.expect("next").await;
    fake.reply(&id, "7").await;
    assert_eq!(call.await.expect("join").expect("next"), json!(7));
}

#[tokio::test]
async fn dropping_every_handle_half_closes() {
    let (qmp, mut fake) = connected().await;
    let clone = qmp.clone();
    drop(qmp);
    drop(clone);
    assert_eq!(fake.recv().await, None);
}

#[tokio::test]
async fn greeting_problems() {
    let (client, server) = tokio::io::duplex(1024);
    let mut fake = FakeQemu::new(server);
    fake.send(r#"{"return": {}}"#).await;
    let err = Qmp::from_stream(client, WAIT)
        .await
        .expect_err("no greeting");
    assert!(matches!(err, QmpError::BadGreeting), "{err:?}");

    let (client, server) = tokio::io::duplex(1024);
    drop(server);
    let err = Qmp::from_stream(client, WAIT).await.expect_err("eof");
    assert!(matches!(err, QmpError::Closed), "{err:?}");

    let (client, _server) = tokio::io::duplex(1024);
    let err = Qmp::from_stream(client, Duration::from_millis(20))
        .await
        .expect_err("silence");
    assert!(matches!(err, QmpError::GreetingTimeout), "{err:?}");
}

#[tokio::test]
async fn connect_waits_for_the_socket_to_appear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let connect = Qmp::connect(&path, WAIT);
    let serve = async {
        // Let the client see a missing socket first.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let (stream, _) = listener.accept().await.expect("accept");
        let mut fake = FakeQemu::new_unix(stream);
        fake.send(GREETING).await;
        let id = fake.expect("qmp_capabilities").await;
        fake.reply(&id, "{}").await;
        fake
    };
    let (qmp, _fake) = tokio::join!(connect, serve);
    qmp.expect("connected");
}

#[tokio::test]
async fn connect_gives_up_at_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.sock");
    let err = Qmp::connect(&path, Duration::from_millis(30))
        .await
        .expect_err("nothing there");
    match err {
        QmpError::Connect { source, .. } => assert_eq!(source.kind(), ErrorKind::NotFound),
        other => panic!("expected Connect, got {other:?}"),
    }
}

impl FakeQemu {
    /// A fake on a real socket, by way of a pipe pump.
    fn new_unix(stream: UnixStream) -> FakeQemu {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let (mut a, mut b) = (stream, theirs);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        FakeQemu::new(ours)
    }
}
