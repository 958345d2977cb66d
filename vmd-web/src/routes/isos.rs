//! `/isos`: listing, showing and removing ISOs (`iso.*`). Uploads (`POST /isos`)
//! are in [`super::uploads`]; inserting one into a VM is `PUT /vms/{name}/iso` ([`super::vms`]).

use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::Iso;

use super::Path;
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Errors, Lookup};
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
}

/// Every ISO (`iso.list`).
#[utoipa::path(get, path = "/isos", tag = "isos", responses((status = 200, body = Vec<Iso>), Errors))]
async fn list(rpc: Rpc) -> Result<Json<Vec<Iso>>, WebError> {
    Ok(Json(rpc.iso_list().await?))
}

/// One ISO (`iso.get`).
#[utoipa::path(get, path = "/isos/{name}", tag = "isos", params(("name" = String, Path)),
    responses((status = 200, body = Iso), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Result<Json<Iso>, WebError> {
    Ok(Json(rpc.iso_get(name).await?))
}

/// Deletes an ISO no VM has inserted (`iso.remove`).
#[utoipa::path(delete, path = "/isos/{name}", tag = "isos", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Change))]
async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.iso_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}
