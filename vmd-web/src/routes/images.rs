//! `/images`: listing, showing, changing (`PATCH`: `image.set`), removing and sealing base
//! images (`image.*`). `POST /images`
//! (an upload, or `image.create` from an ISO) is in [`super::uploads`]; `image.publish` is
//! `POST /vms/{name}/publish` in [`super::vms`].

use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Image, ImageSet};

use super::{named, Body, Path};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Errors, Lookup};
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, set, remove))
        .routes(routes!(seal))
}

/// The images the caller may use (`image.list`).
#[utoipa::path(get, path = "/images", tag = "images",
    responses((status = 200, body = Vec<Image>), Errors))]
async fn list(rpc: Rpc) -> Result<Json<Vec<Image>>, WebError> {
    Ok(Json(rpc.image_list().await?))
}

/// One image (`image.get`).
#[utoipa::path(get, path = "/images/{name}", tag = "images", params(("name" = String, Path)),
    responses((status = 200, body = Image), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Result<Json<Image>, WebError> {
    Ok(Json(rpc.image_get(name).await?))
}

/// Changes an image's OS family, description or visibility (`image.set`): admins any image,
/// a user their own private ones. Body: any of the `ImageSet` fields; `name` is the path's.
#[utoipa::path(patch, path = "/images/{name}", tag = "images", params(("name" = String, Path)),
    request_body(content = ImageSet, description = "`name` is taken from the path"),
    responses((status = 200, body = Image), Change))]
async fn set(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Image>, WebError> {
    Ok(Json(rpc.image_set(named(name, Some(body))?).await?))
}

/// Deletes an image no VM uses (`image.remove`).
#[utoipa::path(delete, path = "/images/{name}", tag = "images", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Change))]
async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.image_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Seals an installed base: its stopped install VM goes, its disk becomes the base
/// (`image.seal`).
#[utoipa::path(post, path = "/images/{name}/seal", tag = "images",
    params(("name" = String, Path)), responses((status = 200, body = Image), Change))]
async fn seal(rpc: Rpc, Path(name): Path<String>) -> Result<Json<Image>, WebError> {
    Ok(Json(rpc.image_seal(name).await?))
}
