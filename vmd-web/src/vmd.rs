//! The client to vmd: one JSON-RPC (WebSocket) connection per HTTP request, over vmd's Unix
//! socket, whose handshake carries the caller's `Authorization: Bearer` credential.
//!
//! A connection made without a credential is identified by vmd through the socket's peer
//! credentials, i.e. as vmd-web's own uid: only `auth.login` (which needs none) and the health
//! probe do that. Every other request goes through [`crate::auth::Rpc`], which requires one.
//!
//! Each subscription buffers at most [`SUBSCRIPTION_BUFFER`] notifications that the HTTP
//! client has not read yet. When a slow reader lets that buffer fill, jsonrpsee drops the
//! subscription (it has "lagged"): the SSE stream sends what it buffered and ends, rather than
//! vmd-web buffering without bound. The caps on connections held open for callers are in
//! [`crate::limits`], carried here so that every handler reaches them through the state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, AUTHORIZATION};
use jsonrpsee::ws_client::{HeaderMap, WsClient, WsClientBuilder};
use tokio::net::UnixStream;
use vm_proto::ErrorCode;

use crate::error::WebError;
use crate::limits::{Caps, Limits};
use crate::trace;

/// How long one call to vmd may take (below the HTTP timeout layer's 60 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(55);
/// Notifications buffered per subscription (each up to 64 KiB) before a lagging reader's
/// subscription is dropped: at most 1 MiB per stream.
const SUBSCRIPTION_BUFFER: usize = 16;

/// Where vmd is; cheap to clone into every request.
#[derive(Clone, Debug)]
pub struct Vmd {
    socket: Arc<PathBuf>,
    limits: Limits,
}

impl Vmd {
    /// vmd on `socket`.
    pub fn new(socket: PathBuf) -> Vmd {
        Vmd {
            socket: Arc::new(socket),
            limits: Limits::default(),
        }
    }

    /// The same vmd, with these caps on what vmd-web holds open for callers.
    pub fn limited(self, caps: Caps) -> Vmd {
        Vmd {
            limits: Limits::new(caps),
            ..self
        }
    }

    /// The caps' live counts.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// vmd's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A connection carrying `token` (none: only for `auth.login` and the health probe). With
    /// a token, vmd is also asked who that is, for the request's trace ([`trace::learn_user`]).
    pub async fn connect(&self, token: Option<&str>) -> Result<Arc<WsClient>, WebError> {
        let headers = headers(token)?;
        let stream = UnixStream::connect(self.socket.as_path())
            .await
            .map_err(|err| unreachable(&err.to_string()))?;
        let client = WsClientBuilder::default()
            .request_timeout(CALL_TIMEOUT)
            .max_buffer_capacity_per_subscription(SUBSCRIPTION_BUFFER)
            .set_headers(headers)
            .build_with_stream("ws://localhost/", stream)
            .await
            .map_err(|err| handshake_failed(&err.to_string()))?;
        let client = Arc::new(client);
        if token.is_some() {
            trace::learn_user(&client);
        }
        Ok(client)
    }
}

/// The `Authorization` header for `token`, marked sensitive.
fn headers(token: Option<&str>) -> Result<HeaderMap, WebError> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
            WebError::new(
                ErrorCode::Unauthenticated,
                "the credential is not a valid token",
            )
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// vmd is not there (or not reachable by vmd-web).
pub fn unreachable(cause: &str) -> WebError {
    WebError::new(ErrorCode::Unavailable, format!("cannot reach vmd: {cause}"))
        .hint("is vmd running, and may vmd-web's user open its socket?")
}

/// A refused handshake: 401 is a bad credential, anything else an unavailable vmd.
fn handshake_failed(cause: &str) -> WebError {
    if cause.contains("401") {
        return WebError::new(ErrorCode::Unauthenticated, "vmd refused the credentials")
            .hint("log in again, or use a valid API token");
    }
    unreachable(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vmd = Vmd::new(dir.path().join("none.sock"));
        let err = vmd.connect(Some("t")).await.expect_err("no vmd");
        assert_eq!(err.0.kind(), ErrorCode::Unavailable);
    }

    #[test]
    fn a_401_handshake_is_unauthenticated() {
        let err = handshake_failed("rejected with status code: 401");
        assert_eq!(err.0.kind(), ErrorCode::Unauthenticated);
        assert_eq!(handshake_failed("eof").0.kind(), ErrorCode::Unavailable);
    }
}
