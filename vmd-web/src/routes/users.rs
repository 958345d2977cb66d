//! `/users`: accounts (`user.*`).

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use vm_proto::api::VmdApiClient;
use vm_proto::types::{User, UserAdd, UserRemove, UserRemoved};

use super::{named, Body, Flag, Path, Query};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/users", get(list).post(add))
        .route("/users/{name}", get(show).delete(remove).patch(set))
        .route("/users/{name}/password", post(passwd))
}

/// `?force=1` of `DELETE /users/{name}`.
#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: Flag,
}

async fn list(rpc: Rpc) -> Reply<Vec<User>> {
    Ok(Json(rpc.user_list().await?))
}

async fn add(rpc: Rpc, Body(params): Body<UserAdd>) -> Result<(StatusCode, Json<User>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.user_add(params).await?)))
}

async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<User> {
    Ok(Json(rpc.user_get(name).await?))
}

async fn remove(
    rpc: Rpc,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Reply<UserRemoved> {
    Ok(Json(
        rpc.user_remove(UserRemove {
            name,
            force: q.force.0,
        })
        .await?,
    ))
}

/// Body: `UserSet` without `name`.
async fn set(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<User> {
    Ok(Json(rpc.user_set(named(name, Some(body))?).await?))
}

/// Body: `{password, current_password}` (`password` null or absent removes it).
async fn passwd(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<StatusCode, WebError> {
    rpc.user_passwd(named(name, Some(body))?).await?;
    Ok(StatusCode::NO_CONTENT)
}
