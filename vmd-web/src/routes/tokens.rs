//! `/tokens`: API tokens and sessions (`token.*`).

use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Token, TokenCreate, TokenSecret};

use super::{Body, Path};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Create, Errors, Lookup};
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// The caller's tokens and sessions, or everyone's for admins (`token.list`).
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = Vec<Token>), Errors))]
async fn list(rpc: Rpc) -> Result<Json<Vec<Token>>, WebError> {
    Ok(Json(rpc.token_list().await?))
}

/// Makes an API token; its secret is shown this once (`token.create`).
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenCreate,
    responses((status = 201, body = TokenSecret), Create))]
async fn create(
    rpc: Rpc,
    Body(params): Body<TokenCreate>,
) -> Result<(StatusCode, Json<TokenSecret>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.token_create(params).await?)))
}

/// Revokes a token or ends a session (`token.revoke`).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = u64, Path)),
    responses((status = 204, description = "Revoked"), Lookup))]
async fn revoke(rpc: Rpc, Path(id): Path<u64>) -> Result<StatusCode, WebError> {
    rpc.token_revoke(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
