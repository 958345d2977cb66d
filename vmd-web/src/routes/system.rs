//! `/me`, `/system`, `/health`, and browser login/logout (`auth.*`, `system.info`).

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Login, Role, SystemInfo, WhoAmI};
use vm_proto::ErrorCode;

use super::Body;
use crate::auth::{csrf_token, Rpc, SessionCookie};
use crate::error::WebError;
use crate::openapi::{Down, Errors};
use crate::vmd::Vmd;

/// The routes of this module (`/health` is mounted by the app, outside the CSRF layer).
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(system))
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// Reply of `POST /login`.
#[derive(Serialize, ToSchema)]
struct LoginReply {
    /// The account.
    user: String,
    /// Its role.
    role: Role,
    /// When the session ends, RFC 3339 UTC.
    expires_at: Option<String>,
    /// Send as the `X-CSRF-Token` header with the cookie on POST, PUT, PATCH and DELETE.
    csrf: String,
}

/// Reply of `GET /health`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Who the caller is, their quotas and use (`auth.whoami`).
#[utoipa::path(get, path = "/me", tag = "system",
    responses((status = 200, body = WhoAmI), Errors))]
async fn me(rpc: Rpc) -> Result<Json<WhoAmI>, WebError> {
    Ok(Json(rpc.auth_whoami().await?))
}

/// The daemon and host (`system.info`).
#[utoipa::path(get, path = "/system", tag = "system",
    responses((status = 200, body = SystemInfo), Errors))]
async fn system(rpc: Rpc) -> Result<Json<SystemInfo>, WebError> {
    Ok(Json(rpc.system_info().await?))
}

/// `{user, password}` → session cookie and `{user, role, expires_at, csrf}` (`auth.login`).
#[utoipa::path(post, path = "/login", tag = "system", security(()), request_body = Login,
    responses((status = 200, body = LoginReply,
        headers(("set-cookie" = String, description = "`vmd_session=…; HttpOnly; SameSite=Strict`"),
            ("cache-control" = String, description = "`no-store`"))),
        Errors))]
async fn login(
    State(vmd): State<Vmd>,
    Extension(cookie): Extension<SessionCookie>,
    Body(params): Body<Login>,
) -> Response {
    no_store(sign_in(&vmd, cookie, params).await)
}

/// Logs in on vmd, holding one of the login slots of [`crate::limits`] meanwhile.
async fn sign_in(vmd: &Vmd, cookie: SessionCookie, params: Login) -> Result<Response, WebError> {
    let _slot = vmd.limits().login()?;
    let session = vmd.connect(None).await?.auth_login(params).await?;
    crate::trace::name_user(&session.info.user);
    let body = LoginReply {
        csrf: csrf_token(&session.token),
        user: session.info.user,
        role: session.role,
        expires_at: session.info.expires_at,
    };
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, cookie.set(&session.token)?);
    Ok((headers, Json(body)).into_response())
}

/// `Cache-Control: no-store` on a reply that may carry a session.
fn no_store(reply: Result<Response, WebError>) -> Response {
    let mut response = reply.into_response();
    let value = HeaderValue::from_static("no-store");
    response.headers_mut().insert(CACHE_CONTROL, value);
    response
}

/// Ends the session and clears the cookie (`auth.logout`).
#[utoipa::path(post, path = "/logout", tag = "system",
    responses((status = 204, description = "Logged out; the cookie is cleared"), Errors))]
async fn logout(Extension(cookie): Extension<SessionCookie>, rpc: Rpc) -> Response {
    let reply = rpc.auth_logout().await.map_err(WebError::from);
    no_store(
        reply.map(|()| ([(SET_COOKIE, cookie.clear())], StatusCode::NO_CONTENT).into_response()),
    )
}

/// 200 when vmd completes a handshake (a refused credential counts: vmd answered), else 503.
/// Also served at `/health`.
#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()),
    responses((status = 200, body = Health), Down))]
pub async fn health(State(vmd): State<Vmd>) -> Result<Json<Health>, WebError> {
    let ok = Json(Health { status: "ok" });
    match vmd.connect(None).await {
        Ok(_) => Ok(ok),
        Err(err) if err.0.kind() == ErrorCode::Unauthenticated => Ok(ok),
        Err(err) => Err(err),
    }
}
