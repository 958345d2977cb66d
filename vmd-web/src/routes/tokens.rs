//! `/tokens`: API tokens and sessions (`token.*`).

use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Token, TokenCreate, TokenSecret};

use super::{Body, Path};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::vmd::Vmd;

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

async fn list(rpc: Rpc) -> Result<Json<Vec<Token>>, WebError> {
    Ok(Json(rpc.token_list().await?))
}

async fn create(
    rpc: Rpc,
    Body(params): Body<TokenCreate>,
) -> Result<(StatusCode, Json<TokenSecret>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.token_create(params).await?)))
}

async fn revoke(rpc: Rpc, Path(id): Path<u64>) -> Result<StatusCode, WebError> {
    rpc.token_revoke(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
