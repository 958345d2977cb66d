//! Browser consoles: a VM's serial console or screen (QEMU's RFB stream) carried over a
//! WebSocket.
//!
//! vmd-web opens the byte stream on vmd's socket the way vmctl does, an HTTP/1.1 upgrade of
//! `GET /v1/vms/NAME/console` (`Upgrade: vmd-console`) or `/vnc` (`Upgrade: vmd-vnc`), but
//! authorized only by the one-shot ticket of `vm.console_ticket` in `X-Vmd-Ticket`: vmd-web
//! never holds the user's credential when the WebSocket arrives. A request without a ticket is
//! refused here, so it never reaches vmd as vmd-web's own uid. A serial request may ask to
//! take the console over from its current client (`?force=1` on vmd's endpoint).
//!
//! [`pump`] then copies bytes both ways: each chunk read from vmd (at most [`CHUNK`] bytes) is
//! one binary message, and the next read waits for its send to finish; each message from the
//! browser is written out before the next is read. So each direction holds at most one chunk,
//! and a slow side slows the other instead of filling memory. When vmd's stream ends the
//! browser gets a Close frame; when the browser closes (or goes away) the stream is shut down.

use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use vm_proto::types::ConsoleKind;
use vm_proto::{ApiError, ErrorCode, CONSOLE_PATH_PREFIX, TICKET_HEADER};

use crate::error::WebError;

/// Largest chunk read from vmd and sent as one WebSocket message.
pub const CHUNK: usize = 16 * 1024;
/// How long to wait for the browser's Close reply after vmd's stream ended.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Largest error body read from vmd.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The console byte stream on vmd's socket.
pub type Stream = TokioIo<Upgraded>;

/// What to do with text frames from the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFrames {
    /// Write their UTF-8 bytes (xterm.js sends keys as text).
    AsBytes,
    /// Drop them (RFB is binary; noVNC never sends text).
    Ignore,
}

/// vmd's endpoint and `Upgrade` protocol for `kind`; `force` takes a held serial console
/// over (`?force=1`; VNC has no holder to displace).
fn endpoint(kind: ConsoleKind, force: bool) -> (&'static str, &'static str) {
    match (kind, force) {
        (ConsoleKind::Serial, false) => ("console", vm_proto::CONSOLE_UPGRADE),
        (ConsoleKind::Serial, true) => ("console?force=1", vm_proto::CONSOLE_UPGRADE),
        (ConsoleKind::Vnc, _) => ("vnc", vm_proto::VNC_UPGRADE),
    }
}

/// Opens `kind` of VM `vm` on vmd's `socket` with `ticket` (with `force`, taking the serial
/// console over from its client); vmd's refusal becomes its error.
pub async fn open(
    socket: &std::path::Path,
    vm: &str,
    (kind, force): (ConsoleKind, bool),
    ticket: &str,
) -> Result<Stream, WebError> {
    let request = upgrade_request(vm, (kind, force), ticket)?;
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|err| WebError::new(ErrorCode::Unavailable, format!("cannot reach vmd: {err}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(lost)?;
    // Drives the connection until the upgraded stream is dropped.
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await.map_err(lost)?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(refusal(status, &body));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(lost)?;
    Ok(TokioIo::new(upgraded))
}

/// The upgrade request carrying the ticket (marked sensitive, so never logged).
fn upgrade_request(
    vm: &str,
    (kind, force): (ConsoleKind, bool),
    ticket: &str,
) -> Result<Request<Empty<Bytes>>, WebError> {
    let no_ticket = || {
        WebError::new(ErrorCode::Unauthenticated, "a console ticket is needed")
            .hint("POST /api/v1/vms/NAME/console-ticket, then pass it as ?ticket=")
    };
    if ticket.is_empty() {
        return Err(no_ticket());
    }
    let mut value = HeaderValue::try_from(ticket).map_err(|_| no_ticket())?;
    value.set_sensitive(true);
    let (path, protocol) = endpoint(kind, force);
    Request::get(format!("{CONSOLE_PATH_PREFIX}{vm}/{path}"))
        .header(HOST, "localhost")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, protocol)
        .header(TICKET_HEADER, value)
        .body(Empty::new())
        .map_err(|err| WebError::new(ErrorCode::InvalidArgument, format!("bad VM name: {err}")))
}

/// vmd's error reply (`{"error": {"code", "message", "data"}}`) as a [`WebError`].
fn refusal(status: StatusCode, body: &[u8]) -> WebError {
    match ApiError::from_http_body(body) {
        Some(api) => WebError(api),
        None => WebError::new(
            ErrorCode::Unavailable,
            format!("vmd refused the console with HTTP {status}"),
        ),
    }
}

/// The connection to vmd failed mid-request.
fn lost(err: hyper::Error) -> WebError {
    WebError::new(
        ErrorCode::Unavailable,
        format!("lost the connection to vmd: {err}"),
    )
}

/// Copies bytes between the browser's WebSocket and vmd's stream until either ends.
pub async fn pump(ws: WebSocket, vm: impl AsyncRead + AsyncWrite, text: TextFrames) {
    let (mut sink, mut source) = ws.split();
    let (mut from_vm, mut to_vm) = tokio::io::split(vm);
    let vm_ended = {
        let down = to_browser(&mut from_vm, &mut sink);
        let up = to_vm_stream(&mut source, &mut to_vm, text);
        tokio::pin!(down, up);
        tokio::select! {
            () = &mut down => true,
            () = &mut up => false,
        }
    };
    let _ = to_vm.shutdown().await;
    if vm_ended {
        let frame = CloseFrame {
            code: close_code::NORMAL,
            reason: "the VM's stream ended".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
        // Waits (briefly) for the browser's Close reply, dropping anything before it.
        let reply = async {
            while let Some(Ok(m)) = source.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, reply).await;
    } else {
        // Sends the Close reply tungstenite queued (or a Close of our own).
        let _ = sink.close().await;
    }
    tracing::debug!(vm_ended, "console session ended");
}

/// vmd → browser, one binary message per read; returns at EOF or on an error either side.
async fn to_browser<S>(from_vm: &mut (impl AsyncRead + Unpin), sink: &mut S)
where
    S: futures::Sink<Message> + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from_vm.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

/// Browser → vmd; returns at a Close frame, the end of the WebSocket, or an error either side.
async fn to_vm_stream<S>(source: &mut S, to_vm: &mut (impl AsyncWrite + Unpin), text: TextFrames)
where
    S: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(Ok(message)) = source.next().await {
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            Message::Text(t) if text == TextFrames::AsBytes => Bytes::from(t),
            Message::Close(_) => return,
            // Pings are answered by the WebSocket layer itself.
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
        };
        if to_vm.write_all(&bytes).await.is_err() || to_vm.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmd_refusals_keep_their_kind() {
        let body = br#"{"error":{"code":401,"message":"bad ticket","data":null}}"#;
        let err = refusal(StatusCode::UNAUTHORIZED, body);
        assert_eq!(err.0.kind(), ErrorCode::Unauthenticated);
        let err = refusal(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(err.0.kind(), ErrorCode::Unavailable);
    }

    #[test]
    fn no_ticket_never_reaches_vmd() {
        let err = upgrade_request("g", (ConsoleKind::Vnc, false), "").expect_err("empty");
        assert_eq!(err.0.kind(), ErrorCode::Unauthenticated);
        let err = upgrade_request("g", (ConsoleKind::Vnc, false), "a\nb").expect_err("bad header");
        assert_eq!(err.0.kind(), ErrorCode::Unauthenticated);
        let req = upgrade_request("g", (ConsoleKind::Serial, false), "vmt_x").expect("request");
        assert_eq!(req.uri().path(), "/v1/vms/g/console");
        assert_eq!(req.headers()[UPGRADE], "vmd-console");
        assert_eq!(req.headers()[TICKET_HEADER], "vmt_x");
    }

    #[test]
    fn force_reaches_vmd_for_the_serial_console_only() {
        let req = upgrade_request("g", (ConsoleKind::Serial, true), "vmt_x").expect("request");
        assert_eq!(req.uri().path(), "/v1/vms/g/console");
        assert_eq!(req.uri().query(), Some("force=1"));
        let req = upgrade_request("g", (ConsoleKind::Vnc, true), "vmt_x").expect("request");
        assert_eq!(req.uri().query(), None, "VNC has no holder to displace");
    }
}
