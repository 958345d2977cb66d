//! `/users`: accounts (`user.*`).

use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{User, UserAdd, UserPasswd, UserRemove, UserRemoved, UserSet};

use super::{named, Body, Flag, Path, Query};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Create, Errors, Lookup};
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(show, remove, set))
        .routes(routes!(passwd))
}

/// `?force=1` of `DELETE /users/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RemoveQuery {
    /// `1`, `true` or `yes`: also remove the user's VMs and private images.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    force: Flag,
}

/// Every account (`user.list`, admins).
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = Vec<User>), Errors))]
async fn list(rpc: Rpc) -> Reply<Vec<User>> {
    Ok(Json(rpc.user_list().await?))
}

/// Creates an account (`user.add`, admins).
#[utoipa::path(post, path = "/users", tag = "users", request_body = UserAdd,
    responses((status = 201, body = User), Create))]
async fn add(rpc: Rpc, Body(params): Body<UserAdd>) -> Result<(StatusCode, Json<User>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.user_add(params).await?)))
}

/// One account (`user.get`).
#[utoipa::path(get, path = "/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = User), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<User> {
    Ok(Json(rpc.user_get(name).await?))
}

/// Removes an account (`user.remove`, admins).
#[utoipa::path(delete, path = "/users/{name}", tag = "users",
    params(("name" = String, Path), RemoveQuery),
    responses((status = 200, body = UserRemoved), Change))]
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

/// Changes role, uid or quotas (`user.set`). Body: `UserSet` without `name`.
#[utoipa::path(patch, path = "/users/{name}", tag = "users", params(("name" = String, Path)),
    request_body(content = UserSet, description = "`name` is taken from the path"),
    responses((status = 200, body = User), Change))]
async fn set(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<User> {
    Ok(Json(rpc.user_set(named(name, Some(body))?).await?))
}

/// Sets or removes a password (`user.passwd`). Body: `{password, current_password}`
/// (`password` null or absent removes it).
#[utoipa::path(post, path = "/users/{name}/password", tag = "users",
    params(("name" = String, Path)),
    request_body(content = UserPasswd, description = "`name` is taken from the path"),
    responses((status = 204, description = "Changed"), Lookup))]
async fn passwd(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<StatusCode, WebError> {
    rpc.user_passwd(named(name, Some(body))?).await?;
    Ok(StatusCode::NO_CONTENT)
}
