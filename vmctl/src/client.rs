//! Connection to vmd: JSON-RPC over a WebSocket on the daemon's Unix socket.
//!
//! The socket is `--socket`, else `$VMD_SOCKET`, else the default of
//! [`vm_proto::paths::default_socket_path`]. Any failure to connect or to complete the WebSocket
//! handshake is [`CliError::Unreachable`] (exit 5) with a hint saying what to check, except a
//! handshake refused with 401, which is `unauthenticated` (exit 7): a bad `--token`.
//!
//! With a [`Credential`] (`--token` or `$VMD_TOKEN`) every request carries
//! `Authorization: Bearer TOKEN`: the WebSocket handshake here, and the HTTP requests of
//! [`crate::http`]. Without one, vmd identifies the caller by the socket's peer credentials.
//!
//! Subscriptions (`logs -f`, `events -f`, `wait`) end when the connection does;
//! [`subscription_ended`] tells a lost connection (an error) from a close by vmd.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderValue, AUTHORIZATION};
use jsonrpsee::core::client::{Subscription, SubscriptionCloseReason};
use jsonrpsee::ws_client::{HeaderMap, WsClient, WsClientBuilder};
use tokio::net::UnixStream;
use vm_proto::{ApiError, ErrorCode};

use crate::error::CliError;

/// How long one call may take; imports convert whole disk images, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// The hint for a daemon that is not there.
const NOT_RUNNING_HINT: &str =
    "is vmd running? start it with `vmd` or `systemctl start vmd`; set --socket or VMD_SOCKET";

/// How long to wait, when a subscription ends, to learn whether the connection ended with it.
const DISCONNECT_GRACE: Duration = Duration::from_millis(200);

/// The hint for a handshake refused with 401.
const BAD_TOKEN_HINT: &str = "the token of --token or VMD_TOKEN is invalid, expired or revoked: \
get a new one with `vmctl login USER` or `vmctl token create`, or unset VMD_TOKEN";

/// A bearer token (`--token`, `$VMD_TOKEN`). Its `Debug` never shows the secret, and its
/// header value is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// The credential of `--token`/`$VMD_TOKEN`; an empty value means none.
    pub fn new(token: Option<String>) -> Option<Credential> {
        token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Credential(t.trim().to_string()))
    }

    /// `Bearer TOKEN`, marked sensitive. A token that is not a valid header value exits 6.
    pub fn header_value(&self) -> Result<HeaderValue, CliError> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.0)).map_err(|_| {
            CliError::invalid(
                "the token of --token or VMD_TOKEN has characters a token cannot have",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// The `Authorization` header of `token`, if any.
pub fn auth_headers(token: Option<&Credential>) -> Result<HeaderMap, CliError> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, token.header_value()?);
    }
    Ok(headers)
}

/// Which socket to use: the flag, then `$VMD_SOCKET`, then the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    vm_proto::paths::client_socket_path(flag)
}

/// Connects a JSON-RPC client to the daemon at `socket`, sending `token` in the handshake.
pub async fn connect(socket: &Path, token: Option<&Credential>) -> Result<WsClient, CliError> {
    let headers = auth_headers(token)?;
    let stream = connect_stream(socket).await?;
    WsClientBuilder::default()
        .request_timeout(REQUEST_TIMEOUT)
        .set_headers(headers)
        .build_with_stream("ws://localhost/", stream)
        .await
        .map_err(|err| handshake_failed(socket, &err.to_string()))
}

/// The error for a refused or failed WebSocket handshake.
fn handshake_failed(socket: &Path, err: &str) -> CliError {
    let cause = format!("WebSocket handshake failed: {err}");
    if cause.contains("401") {
        let err = ApiError::new(ErrorCode::Unauthenticated, "vmd refused the credentials");
        return CliError::Api(err.with_hint(BAD_TOKEN_HINT));
    }
    let hint = match cause.contains("503") {
        true => "vmd is at its connection limit (max_connections / max_connections_per_uid): close idle clients (consoles, `vmctl events -f`) or retry",
        false => "is this a vmd socket? set --socket or VMD_SOCKET",
    };
    CliError::Unreachable {
        socket: socket.to_path_buf(),
        cause,
        hint: hint.to_string(),
    }
}

/// Opens a raw connection to the socket (also used for uploads).
pub async fn connect_stream(socket: &Path) -> Result<UnixStream, CliError> {
    UnixStream::connect(socket)
        .await
        .map_err(|err| CliError::Unreachable {
            socket: socket.to_path_buf(),
            hint: hint_for(socket, &err),
            cause: err.to_string(),
        })
}

/// Why `subscription` stopped yielding items: `Ok` when vmd closed it; an error when vmctl fell
/// behind (vmctl's buffer overflowed) or the connection to vmd was lost.
pub async fn subscription_ended<T>(
    client: &WsClient,
    subscription: &Subscription<T>,
) -> Result<(), CliError> {
    if let Some(SubscriptionCloseReason::Lagged) = subscription.close_reason() {
        return Err(CliError::Protocol(
            "vmctl fell behind the stream from vmd and was cut off".to_string(),
        ));
    }
    match tokio::time::timeout(DISCONNECT_GRACE, client.on_disconnect()).await {
        Ok(cause) => Err(CliError::from(cause)),
        Err(_still_connected) => Ok(()),
    }
}

/// The hint for a failed connect: group membership for EACCES, else "start vmd".
fn hint_for(socket: &Path, err: &std::io::Error) -> String {
    if err.kind() != ErrorKind::PermissionDenied {
        return NOT_RUNNING_HINT.to_string();
    }
    match socket_group(socket) {
        Some(group) if group != "root" => format!(
            "you need to be in the socket's group {group}: `sudo usermod -aG {group} $USER`, then log in again"
        ),
        Some(group) => format!("you need to be in the socket's group ({group}), or run vmctl with sudo"),
        None => "you need to be in the socket's group".to_string(),
    }
}

/// The name of the group owning `socket`, if it can be found.
fn socket_group(socket: &Path) -> Option<String> {
    let gid = std::fs::metadata(socket).ok()?.gid();
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok()??;
    Some(group.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that touches `$VMD_SOCKET`, so no other test races with it.
    #[test]
    fn socket_precedence_is_flag_env_default() {
        let flag = Some(PathBuf::from("/flag.sock"));
        std::env::set_var(vm_proto::SOCKET_ENV, "/env.sock");
        assert_eq!(socket_path(flag.clone()), PathBuf::from("/flag.sock"));
        assert_eq!(socket_path(None), PathBuf::from("/env.sock"));
        std::env::set_var(vm_proto::SOCKET_ENV, "");
        assert_eq!(socket_path(None), vm_proto::paths::default_socket_path());
        std::env::remove_var(vm_proto::SOCKET_ENV);
        assert_eq!(socket_path(None), vm_proto::paths::default_socket_path());
    }

    #[test]
    fn credentials_never_show_and_become_bearer_headers() {
        let token = Credential::new(Some("s3cret-token\n".into())).expect("token");
        assert!(!format!("{token:?}").contains("s3cret"));
        let headers = auth_headers(Some(&token)).expect("headers");
        let value = &headers[AUTHORIZATION];
        assert_eq!(value.to_str().expect("ascii"), "Bearer s3cret-token");
        assert!(value.is_sensitive() && !format!("{headers:?}").contains("s3cret"));
        assert!(auth_headers(None).expect("none").is_empty());
        assert_eq!(Credential::new(Some(" ".into())), None);
        let bad = Credential::new(Some("a\u{7f}b".into())).expect("token");
        assert_eq!(bad.header_value().expect_err("bad").exit_code(), 6);
    }

    #[test]
    fn a_refused_token_is_unauthenticated() {
        let socket = Path::new("/x.sock");
        let err = handshake_failed(socket, "Connection rejected with status code: 401");
        assert_eq!((err.exit_code(), err.kind()), (7, "unauthenticated"));
        assert!(err.hint().is_some_and(|h| h.contains("VMD_TOKEN")));
        assert_eq!(handshake_failed(socket, "status code: 503").exit_code(), 5);
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable_with_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("none.sock");
        let err = connect(&socket, None).await.expect_err("no daemon");
        assert_eq!(err.exit_code(), 5);
        assert!(err.to_string().starts_with("cannot reach vmd at "), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("is vmd running")));
    }

    /// A peer that reads the handshake, hands it over, and refuses it with 401.
    async fn refusing_peer(listener: tokio::net::UnixListener) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.expect("read");
            request.push(byte[0]);
        }
        let reply = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        stream.write_all(reply).await.expect("reply");
        String::from_utf8(request).expect("utf-8").to_lowercase()
    }

    #[tokio::test]
    async fn the_handshake_carries_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("x.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let peer = tokio::spawn(refusing_peer(listener));
        let token = Credential::new(Some("Tok-1".into()));
        let err = connect(&socket, token.as_ref()).await.expect_err("refused");
        let request = peer.await.expect("peer");
        assert!(
            request.contains("authorization: bearer tok-1\r\n"),
            "{request}"
        );
        assert_eq!(err.exit_code(), 7, "{err}");
        assert!(!err.to_string().contains("Tok-1") && !format!("{err:?}").contains("Tok-1"));
    }

    #[tokio::test]
    async fn non_websocket_peer_is_unreachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("x.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        tokio::spawn(async move {
            let _peer = listener.accept().await;
        });
        let err = connect(&socket, None).await.expect_err("not vmd");
        assert_eq!(err.exit_code(), 5);
        assert!(err.to_string().contains("handshake"), "{err}");
    }
}
