//! JSON-RPC method handlers: each one reads the caller, delegates to the manager and maps the
//! error. No logic lives here.

use std::sync::Arc;

use jsonrpsee::core::async_trait;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use jsonrpsee::PendingSubscriptionSink;
use vm_proto::api::VmdApiServer;
use vm_proto::types::{
    Event, Image, ImageCreate, ImageImport, ImagePublish, Iso, IsoAttach, IsoImport, SystemInfo,
    Vm, VmCreate, VmLogs, VmStop,
};
use vm_proto::{ApiError, ErrorCode};

use super::follow::EventsFrom;
use super::Caller;
use crate::manager::events::LIST_MAX;
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

    async fn vm_start(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.start_vm(&name).await)
    }

    async fn vm_stop(&self, params: VmStop) -> RpcResult<Vm> {
        map(self.manager.stop_vm(params).await)
    }

    async fn vm_reboot(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.reboot_vm(&name).await)
    }

    async fn vm_pause(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.pause_vm(&name).await)
    }

    async fn vm_resume(&self, name: String) -> RpcResult<Vm> {
        map(self.manager.resume_vm(&name).await)
    }

    async fn vm_logs(&self, name: String, tail_bytes: Option<u64>) -> RpcResult<VmLogs> {
        map(self.manager.vm_logs(&name, tail_bytes).await)
    }

    async fn vm_follow_logs(
        &self,
        pending: PendingSubscriptionSink,
        name: String,
    ) -> SubscriptionResult {
        if let Err(err) = self.manager.vm(&name).await {
            pending
                .reject(ErrorObjectOwned::from(ApiError::from(err)))
                .await;
            return Ok(());
        }
        let sink = pending.accept().await?;
        super::follow::follow_log(sink, self.manager.console_log(&name)).await;
        Ok(())
    }

    async fn events_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        since: Option<u64>,
    ) -> SubscriptionResult {
        let events = self.manager.events();
        let from = match since {
            Some(seq) => EventsFrom::After(seq),
            None => EventsFrom::Now(events.subscribe()),
        };
        let sink = pending.accept().await?;
        super::follow::stream_events(sink, events, from).await?;
        Ok(())
    }

    async fn events_list(&self, since: Option<u64>, limit: Option<u64>) -> RpcResult<Vec<Event>> {
        let limit = limit.unwrap_or(LIST_MAX);
        map(self.manager.events().list(since.unwrap_or(0), limit).await)
    }

    async fn iso_import(&self, ext: &Extensions, params: IsoImport) -> RpcResult<Iso> {
        let uid = caller(ext)?.uid;
        map(self.manager.import_iso(params, uid).await)
    }

    async fn iso_list(&self) -> RpcResult<Vec<Iso>> {
        map(self.manager.list_isos().await)
    }

    async fn iso_get(&self, name: String) -> RpcResult<Iso> {
        map(self.manager.iso(&name).await)
    }

    async fn iso_remove(&self, name: String) -> RpcResult<()> {
        map(self.manager.remove_iso(&name).await)
    }

    async fn vm_attach_iso(&self, params: IsoAttach) -> RpcResult<Vm> {
        map(self.manager.attach_iso(params).await)
    }

    async fn vm_detach_iso(&self, vm: String) -> RpcResult<Vm> {
        map(self.manager.detach_iso(&vm).await)
    }

    async fn image_create(&self, ext: &Extensions, params: ImageCreate) -> RpcResult<Image> {
        let uid = caller(ext)?.uid;
        map(self.manager.create_image(params, uid).await)
    }

    async fn image_seal(&self, name: String) -> RpcResult<Image> {
        map(self.manager.seal_image(&name).await)
    }

    async fn image_publish(&self, ext: &Extensions, params: ImagePublish) -> RpcResult<Image> {
        let uid = caller(ext)?.uid;
        map(self.manager.publish_image(params, uid).await)
    }
}
