//! `GET /events/history`: the stored events as JSON pages (`events.list`), for reading back
//! the audit trail. The live stream `GET /events` (SSE) is in [`super::streams`].

use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::Event;

use super::Query;
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::Errors;
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new().routes(routes!(history))
}

/// `?since=N&limit=M` of `GET /events/history`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only events with a greater seq (default 0: from the oldest kept).
    since: Option<u64>,
    /// At most this many (default and cap 1000).
    limit: Option<u64>,
}

/// Stored events the caller may see with `seq > since`, oldest first, at most `limit`
/// (`events.list`; admins see every event, a user those of their own and shared objects).
/// Page on with the last `seq` as `since`; a page shorter than `min(limit, 1000)` is the end.
#[utoipa::path(get, path = "/events/history", tag = "events", params(HistoryQuery),
    responses((status = 200, body = Vec<Event>), Errors))]
async fn history(rpc: Rpc, Query(q): Query<HistoryQuery>) -> Result<Json<Vec<Event>>, WebError> {
    Ok(Json(rpc.events_list(q.since, q.limit).await?))
}
