//! HTTP/1.1 on the daemon's socket, beside JSON-RPC: one request per connection, for uploads
//! ([`crate::upload`]) and console attachment ([`crate::console`]).
//!
//! With a [`Credential`], each request carries `Authorization: Bearer TOKEN`.
//!
//! Error replies have the body `{"error": {"code", "message", "data"}}` and decode into the
//! same [`ApiError`] as JSON-RPC errors, so they exit with the same codes.

use std::path::Path;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use vm_proto::ApiError;

use crate::client::{connect_stream, Credential};
use crate::error::CliError;

/// Sends one request on a fresh connection and returns the response head. The connection is
/// driven in the background with upgrades enabled, so that a `101` reply can be taken over.
/// `what` prefixes failures, e.g. `upload failed`; `token` goes in `Authorization`.
pub async fn round_trip<B>(
    socket: &Path,
    token: Option<&Credential>,
    mut request: Request<B>,
    what: &str,
) -> Result<Response<Incoming>, CliError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    request
        .headers_mut()
        .extend(crate::client::auth_headers(token)?);
    let failed = |err: hyper::Error| CliError::Protocol(format!("{what}: {}", chain(&err)));
    let io = TokioIo::new(connect_stream(socket).await?);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(failed)?;
    // Drives the connection until the body is read or the upgraded stream is dropped.
    tokio::spawn(connection.with_upgrades());
    sender.send_request(request).await.map_err(failed)
}

/// Turns an error reply (`{"error": {"code", "message", "data"}}`) into a [`CliError`]; a body
/// that is not vmd's becomes `<what>: HTTP <status>: <start of the body>`.
pub fn decode_error(what: &str, status: StatusCode, body: &[u8]) -> CliError {
    match ApiError::from_http_body(body) {
        Some(api) => CliError::Api(api),
        None => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string();
            CliError::Protocol(format!("{what}: HTTP {status}: {text}"))
        }
    }
}

/// An error and its sources joined by ": ".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_decode_to_api_errors() {
        let body = br#"{"error":{"code":400,"message":"not a disk image",
            "data":{"kind":"invalid_argument","chain":["not a disk image","bad magic"]}}}"#;
        let err = decode_error("upload failed", StatusCode::BAD_REQUEST, body);
        assert_eq!(err.exit_code(), 6);
        assert_eq!(err.to_string(), "not a disk image: bad magic");
        let err = decode_error(
            "upload failed",
            StatusCode::BAD_GATEWAY,
            b"<html>proxy</html>",
        );
        assert_eq!(
            err.to_string(),
            "upload failed: HTTP 502 Bad Gateway: <html>proxy</html>"
        );
    }

    #[test]
    fn console_refusals_exit_like_rpc_errors() {
        let reply = |code: u16, kind: &str| {
            let body = serde_json::json!({"error": {"code": code, "message": "m",
                "data": {"kind": kind, "chain": ["m"]}}});
            let status = StatusCode::from_u16(code).expect("status");
            decode_error("console", status, body.to_string().as_bytes())
        };
        assert_eq!(reply(404, "not_found").exit_code(), 3);
        assert_eq!(reply(412, "wrong_state").exit_code(), 4);
        assert_eq!(reply(423, "in_use").exit_code(), 4);
    }
}
