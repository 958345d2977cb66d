//! Connection to vmd: JSON-RPC over a WebSocket on the daemon's Unix socket.
//!
//! The socket is `--socket`, else `$VMD_SOCKET`, else the default of
//! [`vm_proto::paths::default_socket_path`]. Any failure to connect or to complete the WebSocket
//! handshake is [`CliError::Unreachable`] (exit 5) with a hint saying what to check.
//!
//! Subscriptions (`logs -f`, `events -f`, `wait`) end when the connection does;
//! [`subscription_ended`] tells a lost connection (an error) from a close by vmd.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonrpsee::core::client::{Subscription, SubscriptionCloseReason};
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use tokio::net::UnixStream;

use crate::error::CliError;

/// How long one call may take; imports convert whole disk images, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// The hint for a daemon that is not there.
const NOT_RUNNING_HINT: &str =
    "is vmd running? start it with `vmd` or `systemctl start vmd`; set --socket or VMD_SOCKET";

/// How long to wait, when a subscription ends, to learn whether the connection ended with it.
const DISCONNECT_GRACE: Duration = Duration::from_millis(200);

/// Which socket to use: the flag, then `$VMD_SOCKET`, then the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    vm_proto::paths::client_socket_path(flag)
}

/// Connects a JSON-RPC client to the daemon at `socket`.
pub async fn connect(socket: &Path) -> Result<WsClient, CliError> {
    let stream = connect_stream(socket).await?;
    WsClientBuilder::default()
        .request_timeout(REQUEST_TIMEOUT)
        .build_with_stream("ws://localhost/", stream)
        .await
        .map_err(|err| {
            let cause = format!("WebSocket handshake failed: {err}");
            let hint = match cause.contains("503") {
                true => "vmd is at its connection limit (max_connections / max_connections_per_uid): close idle clients (consoles, `vmctl events -f`) or retry",
                false => "is this a vmd socket? set --socket or VMD_SOCKET",
            };
            CliError::Unreachable {
                socket: socket.to_path_buf(),
                cause,
                hint: hint.to_string(),
            }
        })
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

    #[tokio::test]
    async fn missing_socket_is_unreachable_with_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("none.sock");
        let err = connect(&socket).await.expect_err("no daemon");
        assert_eq!(err.exit_code(), 5);
        assert!(err.to_string().starts_with("cannot reach vmd at "), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("is vmd running")));
    }

    #[tokio::test]
    async fn non_websocket_peer_is_unreachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("x.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        tokio::spawn(async move {
            let _peer = listener.accept().await;
        });
        let err = connect(&socket).await.expect_err("not vmd");
        assert_eq!(err.exit_code(), 5);
        assert!(err.to_string().contains("handshake"), "{err}");
    }
}
