//! Streaming an upload to vmd: `PUT /v1/uploads` over HTTP/1.1 on its Unix socket, with the
//! caller's bearer token.
//!
//! The upload is declared `?kind=iso` or `?kind=disk` by the route, so vmd checks the file's
//! first bytes ([`vm_proto::sniff`]) and refuses a wrong one at once; vmd-web relays that
//! answer and stops reading the caller's body. vmd then closes the connection while the body
//! is still being written, and hyper may report the failed write instead of vmd's answer:
//! vmd-web therefore applies the same rules to the head it forwards ([`Sniffed`]) and, when
//! the upload was cut off after a head the rules refuse, answers with that refusal (the one
//! vmd gave) rather than "upload failed".
//!
//! The incoming request body is forwarded frame by frame as it arrives (hyper's back-pressure
//! paces the browser to vmd's disk), so vmd-web never holds more than a few frames of it.
//!
//! The request carries `Expect: 100-continue`, and the first byte of the body goes out only
//! once vmd has answered `100 Continue` (it does when it starts reading, i.e. once it has
//! accepted the caller and the size). A refusal (not an admin, no space) is then vmd's final
//! answer to the head alone: vmd-web relays it instead of failing half-way through writing a
//! body vmd will never read. Should no `100` come within [`CONTINUE_WAIT`], the body is sent
//! anyway, as RFC 9110 lets a client do. vmd
//! answers 201 with an [`Upload`], or an error status with `{"error": {code, message, data}}`,
//! decoded into the same [`ApiError`] as JSON-RPC errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::Notify;
use vm_proto::sniff::{check, Refusal, UploadKind, HEAD_BYTES};
use vm_proto::types::Upload;
use vm_proto::upload::KIND_PARAM;
use vm_proto::{ApiError, ErrorCode};

use crate::error::WebError;
use crate::vmd::{unreachable, Vmd};

/// The largest reply from vmd read back (its replies are small JSON objects).
const REPLY_LIMIT: usize = 64 << 10;
/// How long the body waits for vmd's `100 Continue`.
const CONTINUE_WAIT: Duration = Duration::from_secs(5);

/// Streams `body` (`length` bytes, declared a `kind`) to vmd as `token`'s user; returns vmd's
/// [`Upload`].
pub async fn send(
    vmd: &Vmd,
    token: &str,
    (kind, length): (UploadKind, u64),
    body: Body,
) -> Result<Upload, WebError> {
    let stream = UnixStream::connect(vmd.socket())
        .await
        .map_err(|err| unreachable(&err.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(lost)?;
    // Drives the connection until the reply is read; it ends with the request.
    tokio::spawn(connection);
    let proceed = Arc::new(Notify::new());
    let sniffed = Sniffed::new(kind, length);
    let frames = gated(
        Arc::clone(&proceed),
        body.into_data_stream()
            .inspect_ok(sniffed.tap())
            .map_ok(Frame::data),
    );
    let mut bearer = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| WebError::new(ErrorCode::Unauthenticated, "the credential is not a token"))?;
    bearer.set_sensitive(true);
    let mut request = Request::builder()
        .method(Method::PUT)
        .uri(format!(
            "{}?{KIND_PARAM}={}",
            vm_proto::UPLOAD_PATH,
            kind.as_str()
        ))
        .header(HOST, "localhost")
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, length)
        .header(EXPECT, "100-continue")
        .header(AUTHORIZATION, bearer)
        .body(StreamBody::new(frames))
        .map_err(|err| WebError::new(ErrorCode::Internal, err.to_string()))?;
    hyper::ext::on_informational(&mut request, move |reply| {
        if reply.status() == StatusCode::CONTINUE {
            proceed.notify_one();
        }
    });
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(err) => return Err(sniffed.refusal().unwrap_or_else(|| lost(err))),
    };
    let status = response.status();
    let reply = Limited::new(response.into_body(), REPLY_LIMIT)
        .collect()
        .await
        .map_err(|err| WebError::new(ErrorCode::Unavailable, format!("upload failed: {err}")))?
        .to_bytes();
    decode(status, &reply)
}

/// `frames`, held back until `proceed` is notified (vmd's `100 Continue`) or
/// [`CONTINUE_WAIT`] has passed.
fn gated<S, T>(proceed: Arc<Notify>, frames: S) -> impl Stream<Item = Result<T, axum::Error>>
where
    S: Stream<Item = Result<T, axum::Error>>,
{
    let wait = async move {
        let _ = tokio::time::timeout(CONTINUE_WAIT, proceed.notified()).await;
    };
    futures::stream::once(wait)
        .filter_map(|()| std::future::ready(None))
        .chain(frames)
}

/// The head of the forwarded body, up to [`HEAD_BYTES`], and what the upload rules say of it.
#[derive(Clone)]
struct Sniffed {
    kind: UploadKind,
    length: u64,
    state: Arc<Mutex<(Vec<u8>, Option<Refusal>)>>,
}

impl Sniffed {
    fn new(kind: UploadKind, length: u64) -> Sniffed {
        let state = Arc::new(Mutex::new((Vec::new(), None)));
        Sniffed {
            kind,
            length,
            state,
        }
    }

    /// A callback for each forwarded chunk: collects the head, then judges it once.
    fn tap(&self) -> impl FnMut(&Bytes) {
        let this = self.clone();
        move |chunk| this.take(chunk)
    }

    fn take(&self, chunk: &Bytes) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (head, refusal) = &mut *state;
        let whole = usize::try_from(self.length).unwrap_or(usize::MAX);
        let want = HEAD_BYTES.min(whole);
        if head.len() >= want {
            return;
        }
        let more = (want - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..more]);
        if head.len() == want {
            *refusal = check(self.kind, head, None, self.length).err();
        }
    }

    /// The refusal of the head, as vmd words it, if the rules refuse it.
    fn refusal(&self) -> Option<WebError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refusal = state.1.as_ref()?;
        Some(WebError::new(ErrorCode::InvalidArgument, refusal.to_string()).hint(refusal.hint()))
    }
}

/// The upload was cut off (the client went away, or vmd closed the connection).
fn lost(err: hyper::Error) -> WebError {
    WebError::new(ErrorCode::Unavailable, format!("upload failed: {err}"))
}

/// vmd's reply: an [`Upload`] on 201, else its error.
fn decode(status: StatusCode, body: &[u8]) -> Result<Upload, WebError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|err| {
            WebError::new(
                ErrorCode::Internal,
                format!("unexpected upload reply from vmd: {err}"),
            )
        });
    }
    match ApiError::from_http_body(body) {
        Some(api) => Err(WebError(api)),
        None => Err(WebError::new(
            ErrorCode::Internal,
            format!("upload failed: vmd answered HTTP {status}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmd_refusals_keep_their_kind() {
        let body = br#"{"error":{"code":403,"message":"only admins may upload",
            "data":{"kind":"permission_denied","chain":["only admins may upload"]}}}"#;
        let err = decode(StatusCode::FORBIDDEN, body).expect_err("refused");
        assert_eq!(err.0.kind(), ErrorCode::PermissionDenied);
        let err = decode(StatusCode::BAD_GATEWAY, b"<html>").expect_err("not vmd");
        assert_eq!(err.0.kind(), ErrorCode::Internal);
        let ok = br#"{"upload_id":"u1","size_bytes":3,"sha256":"ab"}"#;
        assert_eq!(decode(StatusCode::CREATED, ok).expect("ok").size_bytes, 3);
    }
}
