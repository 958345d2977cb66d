//! Browser consoles: `POST /vms/{name}/console-ticket` (`vm.console_ticket`) and the
//! `GET /vms/{name}/vnc` and `/serial` WebSockets, opened with such a ticket (see
//! [`crate::console`]).
//!
//! The WebSocket routes take no cookie or bearer token: the ticket in `?ticket=` is the
//! credential, checked by vmd when vmd-web opens the stream, before the WebSocket is accepted;
//! a refusal is vmd's HTTP error and no WebSocket. A present `Origin` must name the request's
//! `Host` (403 otherwise), so other sites cannot open consoles even with a leaked ticket. The
//! `binary` subprotocol is chosen when offered (noVNC offers it). Text frames are written as
//! bytes on `/serial` (xterm.js sends keys as text) and dropped on `/vnc`.
//!
//! A message or frame from the browser may be at most [`MAX_MESSAGE`] bytes; a larger one
//! closes the WebSocket (code 1009). noVNC sends key, pointer and update-request messages of a
//! few bytes, xterm.js a keystroke or a paste: only a clipboard or paste over 64 KiB is cut.
//! Each console holds a slot of [`crate::limits`] until its pump ends, counted against the
//! session cookie's credential when the browser sends one along, else the global cap only.

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{ConsoleKind, ConsoleTicket, ConsoleTicketRequest};
use vm_proto::ErrorCode;

use super::{Body, Path, Query};
use crate::auth::{check_origin, Credential, Rpc};
use crate::console::{self, TextFrames};
use crate::error::WebError;
use crate::openapi::Lookup;
use crate::vmd::Vmd;

/// The WebSocket subprotocol answered when offered.
const SUBPROTOCOL: &str = "binary";

/// Largest message and frame accepted from the browser (tungstenite's default is 64 MiB).
const MAX_MESSAGE: usize = 64 * 1024;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(ticket))
        .routes(routes!(vnc))
        .routes(routes!(serial))
}

/// Body of `POST /vms/{name}/console-ticket`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    /// Which stream the ticket opens.
    kind: ConsoleKind,
}

/// `?ticket=T` of the WebSocket routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TicketQuery {
    /// A ticket from `POST /vms/{name}/console-ticket` of the same kind (the credential).
    #[serde(default)]
    ticket: String,
    /// `/serial` only: take the console over from the client attached now, which is told
    /// and disconnected (vmd's `?force=1`). Ignored on `/vnc`.
    #[serde(default)]
    force: bool,
}

/// A one-shot ticket that opens one console WebSocket of the VM (`vm.console_ticket`).
#[utoipa::path(post, path = "/vms/{name}/console-ticket", tag = "consoles",
    params(("name" = String, Path)), request_body = TicketBody,
    responses((status = 200, body = ConsoleTicket), Lookup))]
async fn ticket(
    rpc: Rpc,
    Path(vm): Path<String>,
    Body(body): Body<TicketBody>,
) -> Result<Json<ConsoleTicket>, WebError> {
    let request = ConsoleTicketRequest {
        vm,
        kind: body.kind,
    };
    Ok(Json(rpc.vm_console_ticket(request).await?))
}

/// The VM's screen (QEMU's RFB stream) over a WebSocket, authorized by `?ticket=`.
#[utoipa::path(get, path = "/vms/{name}/vnc", tag = "consoles", security(()),
    params(("name" = String, Path), TicketQuery),
    responses((status = 101, description = "WebSocket (subprotocol `binary` when offered)"), Lookup))]
async fn vnc(
    State(vmd): State<Vmd>,
    Path(vm): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, WebError> {
    attach(
        &vmd,
        (&vm, ConsoleKind::Vnc, false),
        &q.ticket,
        &headers,
        ws,
    )
    .await
}

/// The VM's serial console over a WebSocket, authorized by `?ticket=`; `&force=true` takes
/// it over from the client attached now.
#[utoipa::path(get, path = "/vms/{name}/serial", tag = "consoles", security(()),
    params(("name" = String, Path), TicketQuery),
    responses((status = 101, description = "WebSocket (subprotocol `binary` when offered)"), Lookup))]
async fn serial(
    State(vmd): State<Vmd>,
    Path(vm): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, WebError> {
    attach(
        &vmd,
        (&vm, ConsoleKind::Serial, q.force),
        &q.ticket,
        &headers,
        ws,
    )
    .await
}

/// Checks Origin and the upgrade, opens the stream on vmd with the ticket, then accepts.
async fn attach(
    vmd: &Vmd,
    (vm, kind, force): (&str, ConsoleKind, bool),
    ticket: &str,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, WebError> {
    check_origin(headers)?;
    let ws = ws.map_err(|err| {
        WebError::new(ErrorCode::InvalidArgument, err.body_text())
            .hint("open this URL as a WebSocket")
    })?;
    vm_proto::names::validate_name("VM", vm)
        .map_err(|err| WebError::new(ErrorCode::InvalidArgument, err))?;
    let credential = Credential::of(headers);
    let slot = vmd
        .limits()
        .stream(credential.as_ref().map(Credential::token))?;
    let stream = console::open(vmd.socket(), vm, (kind, force), ticket).await?;
    let text = match kind {
        ConsoleKind::Serial => TextFrames::AsBytes,
        ConsoleKind::Vnc => TextFrames::Ignore,
    };
    Ok(ws
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            console::pump(socket, stream, text).await;
            drop(slot);
        }))
}
