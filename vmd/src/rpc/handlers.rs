//! JSON-RPC method handlers: each one reads the caller's identity, delegates to the manager
//! (which authorizes) with the caller as the actor of the events it records, and maps the
//! error. No logic lives here.

use std::future::Future;
use std::sync::Arc;

use jsonrpsee::core::async_trait;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use jsonrpsee::PendingSubscriptionSink;
use vm_proto::api::VmdApiServer;
use vm_proto::types::{
    ConsoleTicket, ConsoleTicketRequest, Event, Image, ImageCreate, ImageImport, ImagePublish,
    ImageSet, Iso, IsoAttach, IsoImport, Login, Network, NetworkCreate, NicChange, PortAdd,
    PortForward, PortRemove, SystemInfo, Template, TemplateCreate, Token, TokenCreate, TokenSecret,
    User, UserAdd, UserPasswd, UserRemove, UserRemoved, UserSet, Vm, VmCreate, VmExtend, VmFilter,
    VmLogs, VmSet, VmStop, WhoAmI,
};
use vm_proto::{ApiError, ErrorCode};

use super::follow::EventsFrom;
use super::Identity;
use crate::auth::{actor, policy, Subject};
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

/// The authenticated caller of the request.
fn subject(ext: &Extensions) -> Result<Subject, ApiError> {
    match ext.get::<Identity>() {
        Some(identity) => identity.subject().cloned(),
        None => Err(ApiError::new(
            ErrorCode::Internal,
            "request identity missing",
        )),
    }
}

/// Runs `call` for the request's caller, as the actor of the events it records.
async fn call<T, F, Fut>(manager: &Manager, ext: &Extensions, call: F) -> RpcResult<T>
where
    F: FnOnce(Subject) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let s = subject(ext).map_err(ErrorObjectOwned::from)?;
    let lasting = ext.get::<Identity>().is_some_and(Identity::lasting);
    let scope = s.clone();
    map(actor::scope(&scope, async move {
        // A WebSocket's identity was made at its upgrade: read the caller again.
        let s = match lasting {
            true => manager.refresh(&s).await?,
            false => s,
        };
        call(s).await
    })
    .await)
}

#[async_trait]
impl VmdApiServer for Handlers {
    async fn system_info(&self, ext: &Extensions) -> RpcResult<SystemInfo> {
        call(&self.manager, ext, |s| async move {
            self.manager.system_info(&s).await
        })
        .await
    }

    async fn image_import(&self, ext: &Extensions, params: ImageImport) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.import_image(&s, params).await
        })
        .await
    }

    async fn image_list(&self, ext: &Extensions) -> RpcResult<Vec<Image>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_images(&s).await
        })
        .await
    }

    async fn image_get(&self, ext: &Extensions, name: String) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_image(&s, &name).await
        })
        .await
    }

    async fn image_set(&self, ext: &Extensions, params: ImageSet) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.set_image(&s, params).await
        })
        .await
    }

    async fn image_remove(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_image(&s, &name).await
        })
        .await
    }

    async fn vm_create(&self, ext: &Extensions, params: VmCreate) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.create_vm(&s, params).await
        })
        .await
    }

    async fn vm_list(&self, ext: &Extensions, filter: Option<VmFilter>) -> RpcResult<Vec<Vm>> {
        let filter = filter.unwrap_or_default();
        call(&self.manager, ext, |s| async move {
            self.manager.list_vms(&s, filter).await
        })
        .await
    }

    async fn vm_extend(&self, ext: &Extensions, params: VmExtend) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.extend_vm(&s, params).await
        })
        .await
    }

    async fn vm_set(&self, ext: &Extensions, params: VmSet) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.set_vm(&s, params).await
        })
        .await
    }

    async fn vm_get(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_vm(&s, &name).await
        })
        .await
    }

    async fn vm_remove(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_vm(&s, &name).await
        })
        .await
    }

    async fn vm_wipe(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.wipe_vm(&s, &name).await
        })
        .await
    }

    async fn vm_start(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.start_vm(&s, &name).await
        })
        .await
    }

    async fn vm_stop(&self, ext: &Extensions, params: VmStop) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.stop_vm(&s, params).await
        })
        .await
    }

    async fn vm_reboot(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.reboot_vm(&s, &name).await
        })
        .await
    }

    async fn vm_pause(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.pause_vm(&s, &name).await
        })
        .await
    }

    async fn vm_resume(&self, ext: &Extensions, name: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.resume_vm(&s, &name).await
        })
        .await
    }

    async fn vm_logs(
        &self,
        ext: &Extensions,
        name: String,
        tail_bytes: Option<u64>,
    ) -> RpcResult<VmLogs> {
        call(&self.manager, ext, |s| async move {
            self.manager.vm_logs(&s, &name, tail_bytes).await
        })
        .await
    }

    async fn vm_follow_logs(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        name: String,
    ) -> SubscriptionResult {
        let who = match subject(ext) {
            Ok(s) => self
                .manager
                .get_vm(&s, &name)
                .await
                .map(|_| s)
                .map_err(ApiError::from),
            Err(err) => Err(err),
        };
        let who = match who {
            Ok(s) => s,
            Err(err) => {
                pending.reject(ErrorObjectOwned::from(err)).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        let log = self.manager.console_log(&name);
        let allowed = || async {
            match self.manager.refresh(&who).await {
                Ok(now) => self.manager.get_vm(&now, &name).await.is_ok(),
                Err(_) => false,
            }
        };
        super::follow::follow_log(sink, log, allowed).await?;
        Ok(())
    }

    async fn events_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        since: Option<u64>,
    ) -> SubscriptionResult {
        let who = match subject(ext) {
            Ok(s) => s,
            Err(err) => {
                pending.reject(ErrorObjectOwned::from(err)).await;
                return Ok(());
            }
        };
        let viewer = || async {
            let now = self.manager.refresh(&who).await.ok()?;
            Some(policy::viewer(&now))
        };
        let events = self.manager.events();
        let from = match since {
            Some(seq) => EventsFrom::After(seq),
            None => EventsFrom::Now(events.subscribe()),
        };
        let sink = pending.accept().await?;
        super::follow::stream_events(sink, events, from, viewer).await?;
        Ok(())
    }

    async fn events_list(
        &self,
        ext: &Extensions,
        since: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<Event>> {
        let (since, limit) = (since.unwrap_or(0), limit.unwrap_or(LIST_MAX));
        call(&self.manager, ext, |s| async move {
            self.manager
                .events()
                .list(policy::viewer(&s), since, limit)
                .await
        })
        .await
    }

    async fn iso_import(&self, ext: &Extensions, params: IsoImport) -> RpcResult<Iso> {
        call(&self.manager, ext, |s| async move {
            self.manager.import_iso(&s, params).await
        })
        .await
    }

    async fn iso_list(&self, ext: &Extensions) -> RpcResult<Vec<Iso>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_isos(&s).await
        })
        .await
    }

    async fn iso_get(&self, ext: &Extensions, name: String) -> RpcResult<Iso> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_iso(&s, &name).await
        })
        .await
    }

    async fn iso_remove(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_iso(&s, &name).await
        })
        .await
    }

    async fn vm_attach_iso(&self, ext: &Extensions, params: IsoAttach) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.attach_iso(&s, params).await
        })
        .await
    }

    async fn vm_console_ticket(
        &self,
        ext: &Extensions,
        params: ConsoleTicketRequest,
    ) -> RpcResult<ConsoleTicket> {
        call(&self.manager, ext, |s| async move {
            self.manager.console_ticket(&s, params).await
        })
        .await
    }

    async fn vm_detach_iso(&self, ext: &Extensions, vm: String) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.detach_iso(&s, &vm).await
        })
        .await
    }

    async fn image_create(&self, ext: &Extensions, params: ImageCreate) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.create_image(&s, params).await
        })
        .await
    }

    async fn image_seal(&self, ext: &Extensions, name: String) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.seal_image(&s, &name).await
        })
        .await
    }

    async fn image_publish(&self, ext: &Extensions, params: ImagePublish) -> RpcResult<Image> {
        call(&self.manager, ext, |s| async move {
            self.manager.publish_image(&s, params).await
        })
        .await
    }

    async fn auth_login(&self, params: Login) -> RpcResult<TokenSecret> {
        map(self.manager.login(params).await)
    }

    async fn auth_logout(&self, ext: &Extensions) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.logout(&s).await
        })
        .await
    }

    async fn auth_whoami(&self, ext: &Extensions) -> RpcResult<WhoAmI> {
        call(&self.manager, ext, |s| async move {
            self.manager.whoami(&s).await
        })
        .await
    }

    async fn user_add(&self, ext: &Extensions, params: UserAdd) -> RpcResult<User> {
        call(&self.manager, ext, |s| async move {
            self.manager.add_user(&s, params).await
        })
        .await
    }

    async fn user_list(&self, ext: &Extensions) -> RpcResult<Vec<User>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_users(&s).await
        })
        .await
    }

    async fn user_get(&self, ext: &Extensions, name: String) -> RpcResult<User> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_user(&s, &name).await
        })
        .await
    }

    async fn user_remove(&self, ext: &Extensions, params: UserRemove) -> RpcResult<UserRemoved> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_user(&s, params).await
        })
        .await
    }

    async fn user_passwd(&self, ext: &Extensions, params: UserPasswd) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.set_password(&s, params).await
        })
        .await
    }

    async fn user_set(&self, ext: &Extensions, params: UserSet) -> RpcResult<User> {
        call(&self.manager, ext, |s| async move {
            self.manager.set_user(&s, params).await
        })
        .await
    }

    async fn token_create(&self, ext: &Extensions, params: TokenCreate) -> RpcResult<TokenSecret> {
        call(&self.manager, ext, |s| async move {
            self.manager.create_token(&s, params).await
        })
        .await
    }

    async fn token_list(&self, ext: &Extensions) -> RpcResult<Vec<Token>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_tokens(&s).await
        })
        .await
    }

    async fn token_revoke(&self, ext: &Extensions, id: u64) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.revoke_token(&s, id).await
        })
        .await
    }

    async fn template_create(
        &self,
        ext: &Extensions,
        params: TemplateCreate,
    ) -> RpcResult<Template> {
        call(&self.manager, ext, |s| async move {
            self.manager.create_template(&s, params).await
        })
        .await
    }

    async fn template_list(&self, ext: &Extensions) -> RpcResult<Vec<Template>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_templates(&s).await
        })
        .await
    }

    async fn template_get(&self, ext: &Extensions, name: String) -> RpcResult<Template> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_template(&s, &name).await
        })
        .await
    }

    async fn template_remove(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_template(&s, &name).await
        })
        .await
    }

    async fn net_create(&self, ext: &Extensions, params: NetworkCreate) -> RpcResult<Network> {
        call(&self.manager, ext, |s| async move {
            self.manager.create_network(&s, params).await
        })
        .await
    }

    async fn net_list(&self, ext: &Extensions) -> RpcResult<Vec<Network>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_networks(&s).await
        })
        .await
    }

    async fn net_get(&self, ext: &Extensions, name: String) -> RpcResult<Network> {
        call(&self.manager, ext, |s| async move {
            self.manager.get_network(&s, &name).await
        })
        .await
    }

    async fn net_remove(&self, ext: &Extensions, name: String) -> RpcResult<()> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_network(&s, &name).await
        })
        .await
    }

    async fn vm_nic_add(&self, ext: &Extensions, params: NicChange) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.add_nic(&s, params).await
        })
        .await
    }

    async fn vm_nic_remove(&self, ext: &Extensions, params: NicChange) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_nic(&s, params).await
        })
        .await
    }

    async fn vm_port_add(&self, ext: &Extensions, params: PortAdd) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.add_port(&s, params).await
        })
        .await
    }

    async fn vm_port_list(&self, ext: &Extensions, vm: String) -> RpcResult<Vec<PortForward>> {
        call(&self.manager, ext, |s| async move {
            self.manager.list_ports(&s, &vm).await
        })
        .await
    }

    async fn vm_port_remove(&self, ext: &Extensions, params: PortRemove) -> RpcResult<Vm> {
        call(&self.manager, ext, |s| async move {
            self.manager.remove_port(&s, params).await
        })
        .await
    }
}
