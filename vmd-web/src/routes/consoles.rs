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

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{ConsoleKind, ConsoleTicket, ConsoleTicketRequest};
use vm_proto::ErrorCode;

use super::{Body, Path, Query};
use crate::auth::{check_origin, Rpc};
use crate::console::{self, TextFrames};
use crate::error::WebError;
use crate::vmd::Vmd;

/// The WebSocket subprotocol answered when offered.
const SUBPROTOCOL: &str = "binary";

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/vms/{name}/console-ticket", post(ticket))
        .route("/vms/{name}/vnc", get(vnc))
        .route("/vms/{name}/serial", get(serial))
}

/// Body of `POST /vms/{name}/console-ticket`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    kind: ConsoleKind,
}

/// `?ticket=T` of the WebSocket routes.
#[derive(Deserialize)]
struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

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

async fn vnc(
    State(vmd): State<Vmd>,
    Path(vm): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, WebError> {
    attach(&vmd, (&vm, ConsoleKind::Vnc), &q.ticket, &headers, ws).await
}

async fn serial(
    State(vmd): State<Vmd>,
    Path(vm): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, WebError> {
    attach(&vmd, (&vm, ConsoleKind::Serial), &q.ticket, &headers, ws).await
}

/// Checks Origin and the upgrade, opens the stream on vmd with the ticket, then accepts.
async fn attach(
    vmd: &Vmd,
    (vm, kind): (&str, ConsoleKind),
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
    let stream = console::open(vmd.socket(), vm, kind, ticket).await?;
    let text = match kind {
        ConsoleKind::Serial => TextFrames::AsBytes,
        ConsoleKind::Vnc => TextFrames::Ignore,
    };
    Ok(ws
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| console::pump(socket, stream, text)))
}
