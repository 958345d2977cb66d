//! `GET /v1/vms/<name>/console` with `Upgrade: vmd-console`: after `101 Switching Protocols`
//! the connection carries the VM's raw serial bytes both ways. One client per VM at a time;
//! the daemon connects to QEMU's console socket on the client's behalf.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tokio::net::UnixStream;
use vm_proto::{ApiError, ErrorCode, CONSOLE_PATH_PREFIX, CONSOLE_UPGRADE};

use super::upload::error_response;
use super::Caller;
use crate::manager::Manager;

/// The VM name if `path` is a console path.
pub fn vm_of(path: &str) -> Option<&str> {
    path.strip_prefix(CONSOLE_PATH_PREFIX)?
        .strip_suffix("/console")
        .filter(|n| !n.contains('/'))
}

/// Answers a console attach request.
pub async fn handle(
    manager: Arc<Manager>,
    caller: Caller,
    req: HttpRequest<Incoming>,
    name: String,
) -> HttpResponse {
    let wants_upgrade =
        req.headers().get(UPGRADE).and_then(|v| v.to_str().ok()) == Some(CONSOLE_UPGRADE);
    if !wants_upgrade {
        let err = ApiError::new(
            ErrorCode::InvalidArgument,
            format!("console needs `Upgrade: {CONSOLE_UPGRADE}`"),
        )
        .with_hint("use `vmctl console NAME`");
        return error_response(StatusCode::BAD_REQUEST, &err);
    }
    let attach = match manager.console_attach(&name).await {
        Ok(a) => a,
        Err(err) => {
            let api = ApiError::from(err);
            let status = StatusCode::from_u16(api.kind().code() as u16)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(status, &api);
        }
    };
    let qemu = match UnixStream::connect(attach.socket()).await {
        Ok(s) => s,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &ApiError::from_error(ErrorCode::Internal, &e),
            )
        }
    };
    tracing::debug!(vm = %name, uid = caller.uid, "console attached");
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let mut qemu = qemu;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut qemu).await;
        }
        tracing::debug!(vm = %name, "console detached");
        drop(attach);
    });
    let mut resp = HttpResponse::new(HttpBody::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut()
        .insert(UPGRADE, HeaderValue::from_static(CONSOLE_UPGRADE));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths() {
        assert_eq!(vm_of("/v1/vms/web1/console"), Some("web1"));
        assert_eq!(vm_of("/v1/vms/a/b/console"), None);
        assert_eq!(vm_of("/v1/vms/web1"), None);
    }
}
