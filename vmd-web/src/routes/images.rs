//! `/images`: listing, showing and removing base images (`image.*`). Uploads (`POST /images`)
//! are in [`super::uploads`].

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use vm_proto::api::VmdApiClient;
use vm_proto::types::Image;

use super::Path;
use crate::auth::Rpc;
use crate::error::WebError;
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/images", get(list))
        .route("/images/{name}", get(show).delete(remove))
}

async fn list(rpc: Rpc) -> Result<Json<Vec<Image>>, WebError> {
    Ok(Json(rpc.image_list().await?))
}

async fn show(rpc: Rpc, Path(name): Path<String>) -> Result<Json<Image>, WebError> {
    Ok(Json(rpc.image_get(name).await?))
}

async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.image_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}
