//! `/isos`: listing, showing and removing ISOs (`iso.*`). Uploads (`POST /isos`)
//! are in [`super::uploads`].

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use vm_proto::api::VmdApiClient;
use vm_proto::types::Iso;

use super::Path;
use crate::auth::Rpc;
use crate::error::WebError;
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/isos", get(list))
        .route("/isos/{name}", get(show).delete(remove))
}

async fn list(rpc: Rpc) -> Result<Json<Vec<Iso>>, WebError> {
    Ok(Json(rpc.iso_list().await?))
}

async fn show(rpc: Rpc, Path(name): Path<String>) -> Result<Json<Iso>, WebError> {
    Ok(Json(rpc.iso_get(name).await?))
}

async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.iso_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}
