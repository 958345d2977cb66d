//! `/vms`: the `vm.*` methods.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Vm, VmCreate, VmFilter, VmLogs};

use super::{named, Body, Flag, OptionalObject, Path, Query};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;

/// The routes of this module.
pub fn routes() -> Router<Vmd> {
    Router::new()
        .route("/vms", get(list).post(create))
        .route("/vms/{name}", get(show).patch(set).delete(remove))
        .route("/vms/{name}/start", post(start))
        .route("/vms/{name}/stop", post(stop))
        .route("/vms/{name}/reboot", post(reboot))
        .route("/vms/{name}/pause", post(pause))
        .route("/vms/{name}/resume", post(resume))
        .route("/vms/{name}/wipe", post(wipe))
        .route("/vms/{name}/extend", post(extend))
        .route("/vms/{name}/logs", get(logs))
}

/// `?all=1&user=NAME` of `GET /vms`.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: Flag,
    user: Option<String>,
}

/// `?tail_bytes=N` or `?follow=1` of `GET /vms/{name}/logs`.
#[derive(Deserialize)]
struct LogsQuery {
    tail_bytes: Option<u64>,
    #[serde(default)]
    follow: Flag,
}

async fn list(rpc: Rpc, Query(q): Query<ListQuery>) -> Reply<Vec<Vm>> {
    let filter = VmFilter {
        all: q.all.0,
        user: q.user,
    };
    Ok(Json(rpc.vm_list(Some(filter)).await?))
}

async fn create(
    rpc: Rpc,
    Body(params): Body<VmCreate>,
) -> Result<(StatusCode, Json<Vm>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.vm_create(params).await?)))
}

async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_get(name).await?))
}

/// Body: any of `{cpus, memory_mib, disk_bytes, description}` (`vm.set`).
async fn set(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_set(named(name, Some(body))?).await?))
}

async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.vm_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_start(name).await?))
}

/// Body: optional `{force, timeout_secs}`.
async fn stop(
    rpc: Rpc,
    Path(name): Path<String>,
    OptionalObject(body): OptionalObject,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_stop(named(name, body)?).await?))
}

async fn reboot(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_reboot(name).await?))
}

async fn pause(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_pause(name).await?))
}

async fn resume(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_resume(name).await?))
}

async fn wipe(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_wipe(name).await?))
}

/// Body: `{by_secs}`.
async fn extend(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_extend(named(name, Some(body))?).await?))
}

/// The log's tail, or with `?follow=1` an SSE stream of what is appended ([`super::streams`]).
async fn logs(
    rpc: Rpc,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, WebError> {
    if q.follow.0 {
        return super::streams::follow_logs(rpc, name).await;
    }
    let logs: VmLogs = rpc.vm_logs(name, q.tail_bytes).await?;
    Ok(Json(logs).into_response())
}
