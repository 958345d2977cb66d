//! Browser consoles through vmd-web, against a real vmd and the real test guest: a full RFB
//! handshake and a framebuffer update over the VNC WebSocket, the guest's ready marker and a
//! typed command over the serial one, and the refusals (reused, expired, foreign or
//! wrong-kind tickets, foreign Origin, another user's VM), and that a message over vmd-web's
//! 64 KiB limit closes the WebSocket.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use common::guest::BOOT;
use common::{Vmd, Web, DEADLINE};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A console WebSocket read as a byte stream.
struct Ws {
    ws: WebSocketStream<TcpStream>,
    buf: VecDeque<u8>,
    closed: bool,
}

/// Opens `/api/v1/vms/{vm}/{endpoint}?ticket=` offering `binary`, with `origin` if given;
/// returns the socket, or the HTTP status and body of the refusal.
async fn open(web: &Web, path: &str, origin: Option<&str>) -> Result<Ws, (u16, Value)> {
    let url = format!("ws://{}{path}", web.addr);
    let mut request = url.into_client_request().expect("request");
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "binary".parse().expect("value"));
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().expect("value"));
    }
    let tcp = TcpStream::connect(&web.addr).await.expect("connect");
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((ws, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol");
            assert_eq!(protocol.map(|p| p.as_bytes()), Some(&b"binary"[..]));
            Ok(Ws {
                ws,
                buf: VecDeque::new(),
                closed: false,
            })
        }
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Err((response.status().as_u16(), json))
        }
        Err(err) => panic!("WebSocket handshake failed: {err}"),
    }
}

/// The WebSocket path of `endpoint` of VM `vm` with `ticket`.
fn ws_path(vm: &str, endpoint: &str, ticket: &str) -> String {
    format!("/api/v1/vms/{vm}/{endpoint}?ticket={ticket}")
}

impl Ws {
    /// Receives one message into the buffer; false once closed.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, self.ws.next())
            .await
            .expect("nothing from the WebSocket before the deadline");
        match message {
            Some(Ok(Message::Binary(bytes))) => self.buf.extend(bytes.iter()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => self.closed = true,
            Some(Ok(other)) => assert!(!other.is_text(), "a text frame from vmd-web"),
        }
        !self.closed
    }

    /// Reads exactly `n` bytes.
    async fn read(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + DEADLINE;
        while self.buf.len() < n {
            assert!(self.fill(deadline).await, "closed while reading {n} bytes");
        }
        self.buf.drain(..n).collect()
    }

    async fn u8(&mut self) -> u8 {
        self.read(1).await[0]
    }

    async fn u16(&mut self) -> u16 {
        let b = self.read(2).await;
        u16::from_be_bytes([b[0], b[1]])
    }

    async fn u32(&mut self) -> u32 {
        let b = self.read(4).await;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Reads until the text seen contains `needle`.
    async fn expect(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !String::from_utf8_lossy(self.buf.make_contiguous()).contains(needle) {
            let seen = String::from_utf8_lossy(self.buf.make_contiguous()).into_owned();
            assert!(
                self.fill(deadline).await,
                "closed before {needle:?}; saw:\n{seen}"
            );
        }
        self.buf.clear();
    }

    async fn send(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }
}

/// A ticket for `kind` of `vm` through the REST route, as `token`'s user.
fn ticket(web: &Web, token: &str, vm: &str, kind: &str) -> Value {
    let path = format!("/api/v1/vms/{vm}/console-ticket");
    web.bearer(token, "POST", &path, Some(&json!({ "kind": kind })))
        .expect(200)
}

/// The secret of a ticket answer.
fn secret(ticket: &Value) -> String {
    ticket["ticket"].as_str().expect("ticket").to_string()
}

/// vmd, vmd-web, the test guest imported as `guest` and VM `g` of `ann` started.
fn lab(config: &str) -> (Vmd, Web, String) {
    let vmd = Vmd::start_configured(config);
    vmd.import_guest("guest");
    let web = Web::start(&vmd);
    let ann = vmd.user_token("ann", None);
    let vm = json!({"name": "g", "image": "guest", "memory_mib": 128});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    web.bearer(&ann, "POST", "/api/v1/vms/g/start", None)
        .expect(200);
    (vmd, web, ann)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnc_websocket_completes_the_rfb_handshake_and_gets_the_screen() {
    let (_vmd, web, ann) = tokio::task::block_in_place(|| lab(""));
    let t = tokio::task::block_in_place(|| secret(&ticket(&web, &ann, "g", "vnc")));
    let origin = format!("http://{}", web.addr);
    let mut s = open(&web, &ws_path("g", "vnc", &t), Some(&origin))
        .await
        .expect("the VNC WebSocket opens");
    assert_eq!(s.read(12).await, b"RFB 003.008\n");
    s.send(Message::binary(b"RFB 003.008\n".to_vec())).await;
    let n = s.u8().await as usize;
    assert!(n > 0, "the server refused the connection");
    let types = s.read(n).await;
    assert!(types.contains(&1), "security type None offered: {types:?}");
    s.send(Message::binary(vec![1u8])).await;
    assert_eq!(s.u32().await, 0, "SecurityResult OK");
    s.send(Message::binary(vec![1u8])).await; // ClientInit, shared
    let (width, height) = (s.u16().await, s.u16().await);
    assert!(
        width >= 320 && height >= 200,
        "framebuffer {width}x{height}"
    );
    s.read(16).await; // pixel format
    let name_len = s.u32().await as usize;
    s.read(name_len).await;
    // FramebufferUpdateRequest, not incremental, the whole screen.
    let mut req = vec![3u8, 0, 0, 0, 0, 0];
    req.extend_from_slice(&width.to_be_bytes());
    req.extend_from_slice(&height.to_be_bytes());
    s.send(Message::binary(req)).await;
    assert_eq!(s.u8().await, 0, "a FramebufferUpdate message");
    s.u8().await;
    assert!(s.u16().await >= 1, "at least one rectangle");

    let (status, body) = open(&web, &ws_path("g", "vnc", &t), None)
        .await
        .err()
        .expect("a used ticket is refused");
    assert_eq!(
        (status, body["kind"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    let serial = tokio::task::block_in_place(|| secret(&ticket(&web, &ann, "g", "serial")));
    let refused = open(&web, &ws_path("g", "vnc", &serial), None).await;
    assert_eq!(
        refused.err().map(|e| e.0),
        Some(401),
        "a serial ticket on /vnc"
    );
    s.ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_websocket_reads_the_ready_marker_and_runs_commands() {
    let (vmd, web, ann) = tokio::task::block_in_place(|| lab(""));
    // Attached while the guest boots, so the marker comes live through the WebSocket.
    let t = tokio::task::block_in_place(|| secret(&ticket(&web, &ann, "g", "serial")));
    let mut s = open(&web, &ws_path("g", "serial", &t), None)
        .await
        .expect("the serial WebSocket opens");
    s.expect("GUEST-READY g", BOOT).await;
    // xterm.js sends keys as text frames; binary frames work too.
    // Every command prints its own marker: output of an earlier one may arrive late, and a
    // close before the guest has read a whole line drops the rest of it.
    s.send(Message::text("echo \"web\"\"-$((6*7))\"\n")).await;
    s.expect("web-42", DEADLINE).await;
    s.send(Message::binary(b"true; echo \"binary\"\"-$?\"\n".to_vec()))
        .await;
    s.expect("binary-0", DEADLINE).await;
    // Closing the WebSocket answers the Close and frees the console (one attach at a time).
    s.ws.close(None).await.expect("close");
    while s.fill(Instant::now() + DEADLINE).await {}
    let mut s = reattach(&web, &ann).await;
    s.send(Message::text("echo \"again\"\"-$((6*7))\"\n")).await;
    s.expect("again-42", DEADLINE).await;
    // The VM stopping ends vmd's stream: vmd-web closes the WebSocket.
    tokio::task::block_in_place(|| vmd.ok("vm.stop", json!([{"name": "g", "force": true}])));
    let deadline = Instant::now() + DEADLINE;
    while s.fill(deadline).await {}
    assert!(s.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_the_websocket() {
    let (_vmd, web, ann) = tokio::task::block_in_place(|| lab(""));
    let t = tokio::task::block_in_place(|| secret(&ticket(&web, &ann, "g", "serial")));
    let mut s = open(&web, &ws_path("g", "serial", &t), None)
        .await
        .expect("the serial WebSocket opens");
    // vmd-web takes messages and frames of up to 64 KiB; the write may fail once it closes.
    let _ = s.ws.send(Message::binary(vec![b'x'; 128 * 1024])).await;
    // Without the limit the bytes would go to the guest and the socket stay open: fill()
    // then fails at the deadline.
    let deadline = Instant::now() + DEADLINE;
    while s.fill(deadline).await {}
    assert!(s.closed);
}

/// Opens the serial console again with fresh tickets until vmd has freed the previous attach.
async fn reattach(web: &Web, token: &str) -> Ws {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let t = tokio::task::block_in_place(|| secret(&ticket(web, token, "g", "serial")));
        match open(web, &ws_path("g", "serial", &t), None).await {
            Ok(ws) => return ws,
            Err((423, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err((status, body)) => panic!("reattach refused: {status} {body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_bound_to_their_owner_expire_and_need_the_same_origin() {
    let vmd = Vmd::start_configured("console_ticket_secs = 1\n");
    vmd.import_disk("base");
    let web = Web::start(&vmd);
    let (ann, bob) = (vmd.user_token("ann", None), vmd.user_token("bob", None));
    let vm = json!({"name": "g", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);

    let path = "/api/v1/vms/g/console-ticket";
    web.bearer(&bob, "POST", path, Some(&json!({"kind": "vnc"})))
        .expect_error(404, "not_found");
    web.request("POST", path, &[], Some(&json!({"kind": "vnc"})))
        .expect_error(401, "unauthenticated");
    web.bearer(&ann, "POST", path, Some(&json!({"kind": "screen"})))
        .expect_error(400, "invalid_argument");

    let t = secret(&ticket(&web, &ann, "g", "vnc"));
    let (status, body) = open(&web, &ws_path("g", "vnc", &t), Some("http://evil.example"))
        .await
        .err()
        .expect("a foreign Origin is refused");
    assert_eq!(
        (status, body["kind"].as_str()),
        (403, Some("permission_denied"))
    );
    let refused = open(&web, "/api/v1/vms/g/vnc", None).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401), "no ticket");
    // vmd's own refusal passes through: a good ticket for a stopped VM.
    let t = secret(&ticket(&web, &ann, "g", "vnc"));
    let refused = open(&web, &ws_path("g", "vnc", &t), None).await.err();
    let kind = refused.as_ref().and_then(|(_, b)| b["kind"].as_str());
    assert_eq!(kind, Some("wrong_state"), "{refused:?}");

    let answer = ticket(&web, &ann, "g", "serial");
    let expires: SystemTime =
        humantime::parse_rfc3339_weak(answer["expires_at"].as_str().expect("expires_at"))
            .expect("RFC 3339");
    // `expires_at` is in whole seconds, rounded down from the real expiry: wait one more.
    while SystemTime::now() <= expires + Duration::from_millis(1100) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = open(&web, &ws_path("g", "serial", &secret(&answer)), None)
        .await
        .err()
        .expect("an expired ticket is refused");
    assert_eq!(
        (status, body["kind"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    // A plain GET is not a WebSocket.
    web.request("GET", &ws_path("g", "serial", "x"), &[], None)
        .expect_error(400, "invalid_argument");
}
