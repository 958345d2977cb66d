//! What the console and VNC endpoints share: an HTTP upgrade to a VM's byte stream. The
//! request must name the endpoint's `Upgrade` protocol and come from an identified caller —
//! the request's identity, or a one-shot ticket (`X-Vmd-Ticket`, from `vm.console_ticket`)
//! for this VM and kind, which then stands for its account; vmd then connects to the QEMU
//! socket itself and answers `101 Switching Protocols`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use vm_proto::types::ConsoleKind;
use vm_proto::{ApiError, ErrorCode, TICKET_HEADER};

use super::console::{pump, until_revoked, End};
use super::upload::{error_response, status_of};
use super::Identity;
use crate::auth::Subject;
use crate::manager::{Error, Manager};

/// The VM name if `path` is `/v1/vms/<name>/<endpoint>`.
pub fn vm_of<'a>(path: &'a str, endpoint: &str) -> Option<&'a str> {
    path.strip_prefix(vm_proto::CONSOLE_PATH_PREFIX)?
        .strip_suffix(endpoint)?
        .strip_suffix('/')
        .filter(|n| !n.contains('/'))
}

/// One upgradeable endpoint.
pub struct Endpoint {
    /// Its `Upgrade` protocol token.
    pub protocol: &'static str,
    /// What it is, for messages (`console`, `VNC`).
    pub what: &'static str,
    /// What to use instead of a bare request.
    pub hint: &'static str,
    /// The kind a ticket must be for.
    pub kind: ConsoleKind,
}

/// The caller of an upgrade request to `endpoint` of VM `vm`, or the response refusing it.
pub async fn caller(
    manager: &Manager,
    req: &HttpRequest<Incoming>,
    who: &Identity,
    (endpoint, vm): (&Endpoint, &str),
) -> Result<Subject, Box<HttpResponse>> {
    let protocol = req.headers().get(UPGRADE).and_then(|v| v.to_str().ok());
    if protocol != Some(endpoint.protocol) {
        let message = format!("{} needs `Upgrade: {}`", endpoint.what, endpoint.protocol);
        let err = ApiError::new(ErrorCode::InvalidArgument, message).with_hint(endpoint.hint);
        return Err(Box::new(error_response(StatusCode::BAD_REQUEST, &err)));
    }
    if let Some(ticket) = req.headers().get(TICKET_HEADER) {
        let ticket = ticket.to_str().unwrap_or_default();
        return manager
            .redeem_ticket(ticket, vm, endpoint.kind)
            .await
            .map_err(|err| Box::new(refused(err)));
    }
    who.subject()
        .cloned()
        .map_err(|err| Box::new(error_response(status_of(&err), &err)))
}

/// The response for a manager error.
pub fn refused(err: Error) -> HttpResponse {
    let api = ApiError::from(err);
    error_response(status_of(&api), &api)
}

/// A connection to QEMU's socket at `path`, or a 500 response.
pub async fn connect(path: &Path) -> Result<UnixStream, Box<HttpResponse>> {
    UnixStream::connect(path).await.map_err(|e| {
        let err = ApiError::from_error(ErrorCode::Internal, &e);
        Box::new(error_response(StatusCode::INTERNAL_SERVER_ERROR, &err))
    })
}

/// Accepts the upgrade of `req` to `protocol` and relays it to `qemu` in the background:
/// both ways until either side ends, the client idles for `idle`, `subject` may no longer
/// operate VM `name`, or `kick` brings a farewell line (another client took the console
/// over: the line is written to the client, then the connection closed); `done` hears why
/// it ended.
pub fn relay(
    manager: Arc<Manager>,
    req: HttpRequest<Incoming>,
    qemu: UnixStream,
    (subject, name): (Subject, String),
    (protocol, idle): (&'static str, Option<Duration>),
    (kick, done): (Option<Kick>, impl FnOnce(End) + Send + 'static),
) -> HttpResponse {
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let mut farewell = None;
            let end = tokio::select! {
                end = pump(&mut client, qemu, idle) => end,
                () = until_revoked(&manager, &subject, &name) => End::Revoked,
                Some(line) = kicked(kick) => {
                    farewell = Some(line);
                    End::TakenOver
                }
            };
            if let Some(line) = farewell {
                let _ = client.write_all(line.as_bytes()).await;
                let _ = client.shutdown().await;
            }
            drop(client);
            done(end);
        }
    });
    switching(protocol)
}

/// The farewell line of a session that is taken over.
pub type Kick = tokio::sync::oneshot::Receiver<String>;

/// The farewell line once `kick` brings one; `None` if it never will.
async fn kicked(kick: Option<Kick>) -> Option<String> {
    kick?.await.ok()
}

/// `101 Switching Protocols` to `protocol`.
fn switching(protocol: &'static str) -> HttpResponse {
    let mut resp = HttpResponse::new(HttpBody::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static(protocol));
    resp
}
