//! The API front end: a Unix socket served as HTTP/1.1 — JSON-RPC 2.0 by POST or WebSocket at
//! `/` (jsonrpsee), and raw upload bytes by `PUT /v1/uploads`.
//!
//! Each accepted connection's peer credentials (SO_PEERCRED) become a [`Caller`]. Every HTTP
//! request on it is then authenticated ([`identity`]): with `Authorization: Bearer TOKEN` as
//! the token's account (a bad token gets HTTP 401, never the peer's identity), else as the
//! peer uid's account. The resulting [`Identity`] rides in the request extensions, where
//! handlers read it. Handlers are thin: they delegate to the
//! [`Manager`](crate::manager::Manager), which authorizes, and map its errors once via
//! `vm_proto::ApiError`.
//!
//! Before a connection is served it must be admitted ([`admission`]: `max_connections` in
//! total, `max_connections_per_uid` per non-root uid); one over a cap gets HTTP 503. Accept
//! failures pause accepting with a growing delay ([`accept`]).

mod accept;
pub mod admission;
mod console;
mod follow;
mod handlers;
mod identity;
pub mod socket;
mod upgrade;
mod upload;
mod upload_body;
mod vnc;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::body::Incoming;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, HttpRequest, HttpResponse, Server, ServerConfig,
    StopHandle, TowerService,
};
use jsonrpsee::RpcModule;
use std::convert::Infallible;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::layer::util::Identity as NoLayer;
use tower::Service;

use crate::manager::Manager;
use accept::{Acceptor, Refuser};
use admission::{Admission, Admitted};
use handlers::Handlers;
pub use identity::Identity;
use vm_proto::api::VmdApiServer;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Peer uid.
    pub uid: u32,
    /// Peer gid.
    pub gid: u32,
    /// Peer pid, when the kernel reports it.
    pub pid: Option<i32>,
}

/// Size, connection and idle limits of the front end.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest JSON-RPC request body (HTTP) or message (WebSocket).
    pub max_request_bytes: u32,
    /// Largest upload.
    pub max_upload_bytes: u64,
    /// An upload that sends nothing this long is dropped.
    pub upload_idle: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections of one non-root uid.
    pub max_connections_per_uid: usize,
    /// A console client that sends nothing for this long is detached; `None`: never.
    pub console_idle: Option<Duration>,
}

/// Messages (responses and subscription items) queued per connection for a client that does
/// not read; once full, the connection's subscriptions wait (jsonrpsee's back-pressure). An
/// event is a few hundred bytes, so a stalled subscriber costs well under a MiB here.
pub const MESSAGE_BUFFER: u32 = 64;

/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until `shutdown` is cancelled, then drains connections.
pub async fn serve(
    listener: UnixListener,
    manager: Arc<Manager>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let (stop_handle, server_handle) = stop_channel();
    let methods: RpcModule<Handlers> = Handlers::new(manager.clone()).into_rpc();
    let config = ServerConfig::builder()
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(u32::MAX / 2)
        .max_connections(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .set_message_buffer_capacity(MESSAGE_BUFFER)
        .build();
    let builder = Server::builder().set_config(config).to_service_builder();
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_uid);
    let (mut acceptor, mut refuser) = (Acceptor::new(listener), Refuser::default());
    let tracker = TaskTracker::new();
    while let Some(stream) = acceptor.next(&shutdown).await {
        let Some(caller) = caller_of(&stream) else {
            continue;
        };
        match admission.admit(caller.uid) {
            Ok(permit) => {
                let rpc = builder.clone().build(methods.clone(), stop_handle.clone());
                let stream = Admitted::new(stream, permit);
                let stop = stop_handle.clone();
                tracker.spawn(connection(
                    stream,
                    caller,
                    rpc,
                    manager.clone(),
                    limits,
                    stop,
                ));
            }
            Err(refusal) => refuser.refuse(&tracker, stream, caller, refusal),
        }
    }
    let _ = server_handle.stop();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// The peer's credentials; `None` (and the connection dropped) if the kernel has none.
fn caller_of(stream: &UnixStream) -> Option<Caller> {
    match stream.peer_cred() {
        Ok(c) => Some(Caller {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        }),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read peer credentials; dropping connection");
            None
        }
    }
}

/// The jsonrpsee service of one connection.
type RpcService = TowerService<NoLayer, NoLayer>;

async fn connection(
    stream: Admitted<UnixStream>,
    caller: Caller,
    rpc: RpcService,
    manager: Arc<Manager>,
    limits: Limits,
    stop: StopHandle,
) {
    let svc = tower::service_fn(move |mut req: HttpRequest<Incoming>| -> BoxFuture<'static, Result<HttpResponse, Infallible>> {
        let manager = manager.clone();
        let mut rpc = rpc.clone();
        Box::pin(async move {
            let who = match identity::authenticate(&manager, caller, req.headers()).await {
                Ok(who) => who,
                Err(refusal) => return Ok(refusal),
            };
            req.extensions_mut().insert(who.clone());
            if req.uri().path() == vm_proto::UPLOAD_PATH {
                return Ok(upload::handle(&manager, who, req, limits.max_upload_bytes, limits.upload_idle).await);
            }
            if let Some(name) = console::vm_of(req.uri().path()).map(str::to_string) {
                return Ok(console::handle(manager, who, req, name, limits.console_idle).await);
            }
            if let Some(name) = vnc::vm_of(req.uri().path()).map(str::to_string) {
                return Ok(vnc::handle(manager, who, req, name, limits.console_idle).await);
            }
            Ok(rpc.call(req).await.unwrap_or_else(|err| upload::failed(&*err)))
        })
    });
    if let Err(err) = serve_with_graceful_shutdown(stream, svc, stop.shutdown()).await {
        tracing::debug!(error = %err, uid = caller.uid, "connection ended with an error");
    }
}
