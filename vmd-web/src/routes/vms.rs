//! `/vms`: the `vm.*` methods, and `image.publish` as `POST /vms/{name}/publish`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{
    Image, ImagePublish, IsoAttach, OsFamily, Vm, VmCreate, VmExtend, VmFilter, VmLogs, VmSet,
    VmStop,
};

use super::streams::Slot;
use super::{named, Body, Flag, OptionalObject, Path, Query};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Create, Errors, Lookup};
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;
type Created<T> = Result<(StatusCode, Json<T>), WebError>;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, set, remove))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(reboot))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(wipe))
        .routes(routes!(extend))
        .routes(routes!(logs))
        .routes(routes!(attach_iso, detach_iso))
        .routes(routes!(publish))
}

/// `?all=1&user=NAME` of `GET /vms`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `1`, `true` or `yes`: every user's VMs (admins only).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    all: Flag,
    /// That user's VMs (admins, or the caller's own name).
    user: Option<String>,
    /// Label selectors, comma-separated, all of which must match: `key` or `key=value`.
    label: Option<String>,
}

/// `?tail_bytes=N` or `?follow=1` of `GET /vms/{name}/logs`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// How much of the log's end to return.
    tail_bytes: Option<u64>,
    /// `1`, `true` or `yes`: an SSE stream of what is appended, each event a JSON string.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    follow: Flag,
}

/// Body of `PUT /vms/{name}/iso`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    /// The ISO to insert.
    iso: String,
}

/// Body of `POST /vms/{name}/publish`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// Name of the new base image.
    name: String,
    /// Whether every user may use it (default: public for admins, private for users).
    #[serde(default)]
    public: Option<bool>,
    /// OS family (default: the VM's base image's).
    #[serde(default)]
    os: Option<OsFamily>,
    /// Free text for people, at most 200 characters on one line (default: none).
    #[serde(default)]
    description: Option<String>,
    /// Reset the copy's identity offline (machine-id, SSH host keys, cloud-init state, logs).
    #[serde(default)]
    generalize: bool,
    /// Whether the new image runs cloud-init (default: the VM's base image's).
    #[serde(default)]
    cloud_init: Option<bool>,
}

/// Lists the caller's VMs (`vm.list`).
#[utoipa::path(get, path = "/vms", tag = "vms", params(ListQuery),
    responses((status = 200, body = Vec<Vm>), Errors))]
async fn list(rpc: Rpc, Query(q): Query<ListQuery>) -> Reply<Vec<Vm>> {
    let filter = VmFilter {
        all: q.all.0,
        user: q.user,
        labels: q
            .label
            .map(|l| l.split(',').map(String::from).collect())
            .unwrap_or_default(),
    };
    Ok(Json(rpc.vm_list(Some(filter)).await?))
}

/// Defines a VM, stopped (`vm.create`).
#[utoipa::path(post, path = "/vms", tag = "vms", request_body = VmCreate,
    responses((status = 201, body = Vm), Create))]
async fn create(rpc: Rpc, Body(params): Body<VmCreate>) -> Created<Vm> {
    Ok((StatusCode::CREATED, Json(rpc.vm_create(params).await?)))
}

/// One VM (`vm.get`).
#[utoipa::path(get, path = "/vms/{name}", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_get(name).await?))
}

/// Changes a VM's settings (`vm.set`): cpus, memory and disk (grow only) while stopped, the
/// description any time. Body: any of the `VmSet` fields; `name` is the path's.
#[utoipa::path(patch, path = "/vms/{name}", tag = "vms", params(("name" = String, Path)),
    request_body(content = VmSet, description = "`name` is taken from the path"),
    responses((status = 200, body = Vm), Create))]
async fn set(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_set(named(name, Some(body))?).await?))
}

/// Deletes a stopped VM and its overlay (`vm.remove`).
#[utoipa::path(delete, path = "/vms/{name}", tag = "vms", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Change))]
async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.vm_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a VM (`vm.start`).
#[utoipa::path(post, path = "/vms/{name}/start", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Create))]
async fn start(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_start(name).await?))
}

/// Stops a VM (`vm.stop`). Body: optional `VmStop` fields; `name` is the path's.
#[utoipa::path(post, path = "/vms/{name}/stop", tag = "vms", params(("name" = String, Path)),
    request_body(content = Option<VmStop>, description = "Optional; `name` is taken from the path"),
    responses((status = 200, body = Vm), Change))]
async fn stop(
    rpc: Rpc,
    Path(name): Path<String>,
    OptionalObject(body): OptionalObject,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_stop(named(name, body)?).await?))
}

/// Resets a running VM (`vm.reboot`).
#[utoipa::path(post, path = "/vms/{name}/reboot", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn reboot(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_reboot(name).await?))
}

/// Pauses a running VM (`vm.pause`).
#[utoipa::path(post, path = "/vms/{name}/pause", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn pause(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_pause(name).await?))
}

/// Resumes a paused VM (`vm.resume`).
#[utoipa::path(post, path = "/vms/{name}/resume", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn resume(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_resume(name).await?))
}

/// Resets a stopped VM's disk to its base (`vm.wipe`).
#[utoipa::path(post, path = "/vms/{name}/wipe", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn wipe(rpc: Rpc, Path(name): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_wipe(name).await?))
}

/// Moves a VM's deadline (`vm.extend`). Body: `{by_secs}`.
#[utoipa::path(post, path = "/vms/{name}/extend", tag = "vms", params(("name" = String, Path)),
    request_body(content = VmExtend, description = "`name` is taken from the path"),
    responses((status = 200, body = Vm), Lookup))]
async fn extend(
    rpc: Rpc,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Vm> {
    Ok(Json(rpc.vm_extend(named(name, Some(body))?).await?))
}

/// The log's tail (`vm.logs`), or with `?follow=1` an SSE stream of what is appended
/// (`vm.follow_logs`, [`super::streams`]).
#[utoipa::path(get, path = "/vms/{name}/logs", tag = "vms",
    params(("name" = String, Path), LogsQuery),
    responses((status = 200, content(
        (VmLogs = "application/json"),
        (String = "text/event-stream"))), Lookup))]
async fn logs(
    State(vmd): State<Vmd>,
    headers: HeaderMap,
    rpc: Rpc,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, WebError> {
    if q.follow.0 {
        let slot = Slot::take(&vmd, &headers)?;
        return super::streams::follow_logs(slot, rpc, name).await;
    }
    let logs: VmLogs = rpc.vm_logs(name, q.tail_bytes).await?;
    Ok(Json(logs).into_response())
}

/// Inserts an ISO into the VM's CD-ROM drive, running or stopped (`vm.attach_iso`).
#[utoipa::path(put, path = "/vms/{name}/iso", tag = "vms", params(("name" = String, Path)),
    request_body = AttachBody, responses((status = 200, body = Vm), Change))]
async fn attach_iso(rpc: Rpc, Path(vm): Path<String>, Body(body): Body<AttachBody>) -> Reply<Vm> {
    let params = IsoAttach { vm, iso: body.iso };
    Ok(Json(rpc.vm_attach_iso(params).await?))
}

/// Ejects the VM's ISO (`vm.detach_iso`).
#[utoipa::path(delete, path = "/vms/{name}/iso", tag = "vms", params(("name" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn detach_iso(rpc: Rpc, Path(vm): Path<String>) -> Reply<Vm> {
    Ok(Json(rpc.vm_detach_iso(vm).await?))
}

/// Flattens a stopped VM's disk into a new sealed base image (`image.publish`).
#[utoipa::path(post, path = "/vms/{name}/publish", tag = "vms", params(("name" = String, Path)),
    request_body = PublishBody, responses((status = 201, body = Image), Create))]
async fn publish(
    rpc: Rpc,
    Path(vm): Path<String>,
    Body(body): Body<PublishBody>,
) -> Created<Image> {
    let params = ImagePublish {
        vm,
        name: body.name,
        public: body.public,
        os: body.os,
        description: body.description,
        generalize: body.generalize,
        cloud_init: body.cloud_init,
    };
    Ok((StatusCode::CREATED, Json(rpc.image_publish(params).await?)))
}
