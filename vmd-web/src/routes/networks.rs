//! `/networks` (`net.*`) and a VM's NICs and port forwards (`vm.nic_*`, `vm.port_*`) as
//! `/vms/{name}/nics` and `/vms/{name}/ports`. Thin: each handler is one JSON-RPC call.

use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{
    Network, NetworkCreate, NicChange, PortAdd, PortForward, PortRemove, Protocol, Vm,
};

use super::{Body, Path};
use crate::auth::Rpc;
use crate::error::WebError;
use crate::openapi::{Change, Create, Errors, Lookup};
use crate::vmd::Vmd;

type Reply<T> = Result<Json<T>, WebError>;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Vmd> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(add_nic))
        .routes(routes!(remove_nic))
        .routes(routes!(list_ports, add_port))
        .routes(routes!(remove_port))
}

/// Body of `POST /vms/{name}/nics`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NicBody {
    /// The network to join.
    network: String,
}

/// Body of `POST /vms/{name}/ports`: [`PortAdd`] without the VM (it is in the path).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PortBody {
    /// Default TCP.
    #[serde(default)]
    protocol: Protocol,
    /// Default 127.0.0.1.
    #[serde(default)]
    host_address: Option<String>,
    /// Host port.
    host_port: u16,
    /// Guest port.
    guest_port: u16,
}

/// The networks the caller may use (`net.list`).
#[utoipa::path(get, path = "/networks", tag = "networks", responses((status = 200, body = Vec<Network>), Errors))]
async fn list(rpc: Rpc) -> Reply<Vec<Network>> {
    Ok(Json(rpc.net_list().await?))
}

/// Creates a network (`net.create`).
#[utoipa::path(post, path = "/networks", tag = "networks", request_body = NetworkCreate,
    responses((status = 201, body = Network), Create))]
async fn create(
    rpc: Rpc,
    Body(params): Body<NetworkCreate>,
) -> Result<(StatusCode, Json<Network>), WebError> {
    Ok((StatusCode::CREATED, Json(rpc.net_create(params).await?)))
}

/// One network with members and leases (`net.get`).
#[utoipa::path(get, path = "/networks/{name}", tag = "networks", params(("name" = String, Path)),
    responses((status = 200, body = Network), Lookup))]
async fn show(rpc: Rpc, Path(name): Path<String>) -> Reply<Network> {
    Ok(Json(rpc.net_get(name).await?))
}

/// Removes a network no VM uses (`net.remove`).
#[utoipa::path(delete, path = "/networks/{name}", tag = "networks", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Change))]
async fn remove(rpc: Rpc, Path(name): Path<String>) -> Result<StatusCode, WebError> {
    rpc.net_remove(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a NIC on a network to a stopped VM (`vm.nic_add`).
#[utoipa::path(post, path = "/vms/{name}/nics", tag = "networks", params(("name" = String, Path)),
    request_body = NicBody, responses((status = 200, body = Vm), Change))]
async fn add_nic(rpc: Rpc, Path(vm): Path<String>, Body(body): Body<NicBody>) -> Reply<Vm> {
    let network = body.network;
    Ok(Json(rpc.vm_nic_add(NicChange { vm, network }).await?))
}

/// Removes a stopped VM's NIC on a network (`vm.nic_remove`).
#[utoipa::path(delete, path = "/vms/{name}/nics/{network}", tag = "networks",
    params(("name" = String, Path), ("network" = String, Path)),
    responses((status = 200, body = Vm), Change))]
async fn remove_nic(rpc: Rpc, Path((vm, network)): Path<(String, String)>) -> Reply<Vm> {
    Ok(Json(rpc.vm_nic_remove(NicChange { vm, network }).await?))
}

/// A VM's port forwards (`vm.port_list`).
#[utoipa::path(get, path = "/vms/{name}/ports", tag = "networks", params(("name" = String, Path)),
    responses((status = 200, body = Vec<PortForward>), Lookup))]
async fn list_ports(rpc: Rpc, Path(vm): Path<String>) -> Reply<Vec<PortForward>> {
    Ok(Json(rpc.vm_port_list(vm).await?))
}

/// Adds a port forward, live while the VM runs (`vm.port_add`).
#[utoipa::path(post, path = "/vms/{name}/ports", tag = "networks", params(("name" = String, Path)),
    request_body = PortBody, responses((status = 200, body = Vm), Change))]
async fn add_port(rpc: Rpc, Path(vm): Path<String>, Body(b): Body<PortBody>) -> Reply<Vm> {
    let params = PortAdd {
        vm,
        protocol: b.protocol,
        host_address: b.host_address,
        host_port: b.host_port,
        guest_port: b.guest_port,
    };
    Ok(Json(rpc.vm_port_add(params).await?))
}

/// Removes a port forward (`vm.port_remove`); the protocol is `tcp` or `udp`.
#[utoipa::path(delete, path = "/vms/{name}/ports/{protocol}/{host_port}", tag = "networks",
    params(("name" = String, Path), ("protocol" = String, Path), ("host_port" = u16, Path)),
    responses((status = 200, body = Vm), Change))]
async fn remove_port(
    rpc: Rpc,
    Path((vm, protocol, host_port)): Path<(String, String, u16)>,
) -> Reply<Vm> {
    let protocol = Protocol::parse(&protocol).ok_or_else(|| {
        WebError::new(
            vm_proto::ErrorCode::InvalidArgument,
            format!("protocol {protocol:?} is not tcp or udp"),
        )
    })?;
    let params = PortRemove {
        vm,
        protocol,
        host_port,
    };
    Ok(Json(rpc.vm_port_remove(params).await?))
}
