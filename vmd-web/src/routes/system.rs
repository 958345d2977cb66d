//! `/me`, `/system`, `/health`, and browser login/logout (`auth.*`, `system.info`).

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde_json::{json, Value};
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Login, SystemInfo, WhoAmI};
use vm_proto::ErrorCode;

use super::Body;
use crate::auth::{csrf_token, Rpc, SessionCookie};
use crate::error::WebError;
use crate::vmd::Vmd;

/// The routes of this module (`/health` is mounted by the app, outside the CSRF layer).
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/me", get(me))
        .route("/system", get(system))
        .route("/login", post(login))
        .route("/logout", post(logout))
}

async fn me(rpc: Rpc) -> Result<Json<WhoAmI>, WebError> {
    Ok(Json(rpc.auth_whoami().await?))
}

async fn system(rpc: Rpc) -> Result<Json<SystemInfo>, WebError> {
    Ok(Json(rpc.system_info().await?))
}

/// `{user, password}` → session cookie and `{user, role, expires_at, csrf}`.
async fn login(
    State(vmd): State<Vmd>,
    Extension(cookie): Extension<SessionCookie>,
    Body(params): Body<Login>,
) -> Result<Response, WebError> {
    let session = vmd.connect(None).await?.auth_login(params).await?;
    crate::trace::name_user(&session.info.user);
    let body = json!({
        "user": session.info.user,
        "role": session.role,
        "expires_at": session.info.expires_at,
        "csrf": csrf_token(&session.token),
    });
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, cookie.set(&session.token)?);
    Ok((headers, Json(body)).into_response())
}

/// Ends the session and clears the cookie.
async fn logout(
    Extension(cookie): Extension<SessionCookie>,
    rpc: Rpc,
) -> Result<Response, WebError> {
    rpc.auth_logout().await?;
    Ok(([(SET_COOKIE, cookie.clear())], StatusCode::NO_CONTENT).into_response())
}

/// 200 when vmd completes a handshake (a refused credential counts: vmd answered), else 503.
pub async fn health(State(vmd): State<Vmd>) -> Result<Json<Value>, WebError> {
    match vmd.connect(None).await {
        Ok(_) => Ok(Json(json!({"status": "ok"}))),
        Err(err) if err.0.kind() == ErrorCode::Unauthenticated => Ok(Json(json!({"status": "ok"}))),
        Err(err) => Err(err),
    }
}
