//! JSON-RPC method handlers: each one reads the caller, delegates to the manager and maps the
//! error. No logic lives here.

use std::sync::Arc;

use jsonrpsee::core::async_trait;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use vm_proto::api::VmdApiServer;
use vm_proto::types::{Image, ImageImport, SystemInfo, Vm, VmCreate};
use vm_proto::{ApiError, ErrorCode};

use super::Caller;
use crate::manager::{Error, Manager};

/// The server side of [`VmdApiServer`].
pub struct Handlers {
    manager: Arc<Manager>,
}

impl Handlers {
    /// Handlers over `manager`.
    pub fn new(manager: Arc<Manager>) -> Handlers {
        Handlers { manager }
    }
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn map<T>(result: Result<T, Error>) -> RpcResult<T> {
    result.map_err(|e| {
        if e.code() == ErrorCode::Internal {
            tracing::warn!(error = %vm_proto::ApiError::from_error(ErrorCode::Internal, &e).full_message(), "request failed");
        }
        ApiError::from(e).into()
    })
}

fn caller(ext: &Extensions) -> RpcResult<Caller> {
    ext.get::<Caller>()
        .copied()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "peer credentials missing").into())
}

#[async_trait]
impl VmdApiServer for Handlers {
    async fn system_info(&self) -> RpcResult<SystemInfo> {
        map(self.manager.system_info().await)
    }

    async fn image_import(&self, ext: &Extensions, params: ImageImport) -> RpcResult<Image> {
        let uid = caller(ext)?.uid;
        map(self.manager.import_image(params, uid).await)
    }

    async fn image_list(&self) -> RpcResult<Vec<Image>> {
        map(self.manager.list_images().await)
    }

    async fn image_get(&self, name: String) -> RpcResult<Image> {
        map(self.manager.image(&name).await)
    }

    async fn image_remove(&self, name: String) -> RpcResult<()> {
        map(self.manager.remove_image(&name).await)
    }

    async fn vm_create(&self, ext: &Extensions, params: VmCreate) -> RpcResult<Vm> {
        let uid = caller(ext)?.uid;
        map(self.manager.create_vm(params, uid).await)
    }

    async fn vm_list(&self) -> RpcResult<Vec<Vm>> {
        map(self.manager.list_vms().await)
    }

    async fn vm_get(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.vm(&name).await)
    }

    async fn vm_remove(&self, name: String) -> RpcResult<()> {
        map(self.manager.remove_vm(&name).await)
    }

    async fn vm_wipe(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.wipe_vm(&name).await)
    }
}
