//! The manager owns the lab's objects: it validates requests, serialises work per object,
//! keeps the store and the files in agreement, and converts rows into API types.
//!
//! Request flow: RPC handler → `Manager` method → (per-name lock) → storage work (async,
//! qemu-img) → one store transaction (blocking task) that also moves files into place.
//! Read-only calls (`list`, `get`, `system_info`) take no per-object lock, so a slow operation
//! on one object never blocks them.

mod access;
mod accounts;
mod adopt;
mod clones;
pub mod console;
mod error;
pub mod events;
mod expiry;
mod guest;
mod image_set;
mod images;
mod install;
mod isos;
mod launch;
pub mod ledger;
mod locks;
pub mod logs;
mod media;
mod monitor;
mod net_error;
mod networks;
mod nics;
mod ports;
mod provision;
mod quota;
mod reconcile;
mod reconfigure;
mod restore;
pub mod runtime;
mod sessions;
mod snapshot;
mod space;
mod state;
mod template_error;
mod templates;
mod tickets;
mod unmanaged;
pub mod uploads;
mod vms;
mod wipe;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use vm_proto::types::{Accelerator, ConsistencyIssue, DiskUsage, SystemInfo};

pub use error::Error;
use locks::NameLocks;
use uploads::Uploads;

use crate::storage::reserve::SpaceReserve;
use crate::storage::{self, Storage};
use crate::store::{self, Store, StoreError};

/// Static facts the manager reports and enforces.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The socket being served (for `system.info`).
    pub socket_path: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Accelerator chosen for this host.
    pub accelerator: Accelerator,
    /// Host memory, the upper bound for a VM's memory.
    pub host_memory_mib: u64,
    /// `qemu-img --version`.
    pub qemu_img_version: String,
    /// Where per-VM socket directories live (beside the API socket).
    pub run_dir: PathBuf,
    /// User QEMU drops to when vmd runs as root.
    pub qemu_user: Option<String>,
    /// Whether QEMU runs with `-sandbox on`.
    pub sandbox: bool,
    /// Default graceful-stop timeout.
    pub stop_timeout_secs: u64,
    /// Console log size that triggers rotation.
    pub console_log_max_bytes: u64,
    /// Creates, starts and imports are refused below this much free space.
    pub min_free_bytes: u64,
    /// Size of the space reserve (0: none).
    pub reserve_bytes: u64,
    /// Identity, sessions, quotas and host admission.
    pub auth: AuthConfig,
    /// Lab networks and port forwards.
    pub net: NetConfig,
}

/// Settings of lab networks and port forwards.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Default subnets come from here; users' subnets must lie inside.
    pub pool: vm_proto::types::Subnet,
    /// Most networks one user may own.
    pub max_networks_per_user: u64,
    /// Host addresses port forwards may use besides 127.0.0.1.
    pub port_forward_addresses: Vec<String>,
}

/// Settings of accounts, sessions and quotas.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Admin group and auto-registration.
    pub identity: crate::auth::identity::IdentityConfig,
    /// Lifetime of a login session.
    pub session_ttl_secs: u64,
    /// Quotas of accounts without overrides.
    pub quota: vm_proto::types::Quota,
    /// Most memory the running VMs together may have, MiB.
    pub host_memory_limit_mib: u64,
    /// Life of a console ticket, seconds (at most 30).
    pub console_ticket_secs: u64,
}

/// The lab.
pub struct Manager {
    store: Arc<Store>,
    storage: Arc<Storage>,
    config: ManagerConfig,
    locks: NameLocks,
    uploads: Uploads,
    ledger: ledger::SpaceLedger,
    events: events::Events,
    // std Mutex: map lookups only, never held across an await.
    runtimes: Mutex<HashMap<String, Arc<runtime::Runtime>>>,
    /// Numbers console sessions ([`console::ConsoleSlot`]).
    console_ids: std::sync::atomic::AtomicU64,
    me: Weak<Manager>,
    started: Instant,
    // std Mutex: replaced once at start-up, read by system_info; never held across an await.
    issues: Mutex<Vec<ConsistencyIssue>>,
    cpu: Arc<crate::host_load::CpuSampler>,
    reserve: Arc<SpaceReserve>,
    space_low: AtomicBool,
    throttle: crate::auth::throttle::Throttle,
    // std Mutex: a counter update, never held across an await.
    login_log: Mutex<crate::log_limit::LogLimit>,
    expiry_wake: tokio::sync::Notify,
    // Password hashing takes ~20 MiB and tens of ms each: a flood of logins queues here
    // instead of taking every blocking thread and hundreds of MiB.
    argon: tokio::sync::Semaphore,
    tickets: tickets::Tickets,
    /// Bridges, firewall rules and dnsmasq of lab networks.
    hostnet: crate::hostnet::HostNet,
    // std Mutex: map updates only, never held across an await. The networks as the host
    // side knows them, by id (filled at start-up, changed by create and remove).
    nets: Mutex<HashMap<i64, crate::hostnet::NetSpec>>,
    // std Mutex: map updates only, never held across an await. Sealed memfds with the RAM
    // of templates whose clones were restored since start-up, by template id.
    template_ram: Mutex<HashMap<i64, Arc<std::os::fd::OwnedFd>>>,
}

impl Manager {
    /// Builds the manager over an open store and storage.
    pub fn new(store: Store, storage: Storage, config: ManagerConfig) -> Arc<Manager> {
        let reserve = Arc::new(SpaceReserve::new(&config.state_dir, config.reserve_bytes));
        let store = Arc::new(store.with_guard(reserve.clone()));
        let space_ledger = ledger::SpaceLedger::new(config.state_dir.clone());
        Arc::new_cyclic(|me| Manager {
            reserve,
            space_low: AtomicBool::new(false),
            throttle: Default::default(),
            login_log: Mutex::new(crate::log_limit::LogLimit::new(
                std::time::Duration::from_secs(10),
            )),
            expiry_wake: tokio::sync::Notify::new(),
            argon: tokio::sync::Semaphore::new(ARGON_AT_ONCE),
            tickets: Default::default(),
            hostnet: crate::hostnet::HostNet::new(config.run_dir.join("net")),
            nets: Mutex::new(HashMap::new()),
            template_ram: Mutex::new(HashMap::new()),
            events: events::Events::new(store.clone()),
            store,
            storage: Arc::new(storage),
            config,
            locks: NameLocks::default(),
            uploads: Uploads::default(),
            ledger: space_ledger,
            runtimes: Mutex::new(HashMap::new()),
            console_ids: Default::default(),
            me: me.clone(),
            started: Instant::now(),
            issues: Mutex::new(Vec::new()),
            cpu: Arc::default(),
        })
    }

    /// The caller of a request: the bearer token's account when one is given (a bad token is
    /// refused, never downgraded), else the account of the peer uid.
    pub async fn authenticate(
        &self,
        peer_uid: u32,
        bearer: Option<String>,
    ) -> Result<crate::auth::Subject, crate::auth::identity::AuthError> {
        use crate::auth::identity;
        let (store, cfg) = (self.store.clone(), self.config.auth.identity.clone());
        let now = now_secs();
        let found = tokio::task::spawn_blocking(move || match bearer {
            Some(token) => identity::from_token(&store, &cfg, &token, peer_uid, now),
            None => identity::from_peer(&store, &cfg, peer_uid, now),
        })
        .await;
        found.unwrap_or_else(|_| Err(identity::AuthError::BadToken("task failed")))
    }

    /// The event hub.
    pub fn events(&self) -> &events::Events {
        &self.events
    }

    /// The storage directories.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The ledger of space promised on the state file system.
    pub fn space_ledger(&self) -> &ledger::SpaceLedger {
        &self.ledger
    }

    /// The upload registry.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Serialises operations on one object; a busy object yields an error naming the holder.
    async fn lock(
        &self,
        kind: &'static str,
        name: &str,
        operation: &'static str,
    ) -> Result<locks::NameGuard, Error> {
        self.locks
            .lock(format!("{kind}:{name}"), operation)
            .await
            .map_err(|holder| Error::Busy {
                kind,
                name: name.to_string(),
                holder,
            })
    }

    /// Runs `f` against the store on a blocking thread.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }

    /// `system.info` (every caller may read it; only admins see the consistency issues).
    pub async fn system_info(&self, subject: &crate::auth::Subject) -> Result<SystemInfo, Error> {
        self.host_allows(subject, crate::auth::policy::Action::Read)?;
        let (image_count, vm_count) = self
            .db(|s| {
                Ok(s.read(|c| {
                    Ok::<_, StoreError>((store::count_images(c)?, store::count_vms(c)?))
                })?)
            })
            .await?;
        let storage = self.storage.clone();
        let state_dir = self.config.state_dir.clone();
        let cpu = Arc::clone(&self.cpu);
        let (disk, host) = tokio::task::spawn_blocking(move || {
            let disk = DiskUsage {
                images_bytes: storage::dir_usage(storage.images_dir()),
                overlays_bytes: storage::dir_usage(storage.overlays_dir()),
                free_bytes: storage::free_bytes(&state_dir),
                floor_bytes: 0,
                low: false,
                reserve_bytes: 0,
            };
            (disk, cpu.read())
        })
        .await?;
        Ok(SystemInfo {
            daemon_version: env!("CARGO_PKG_VERSION").into(),
            api_version: vm_proto::API_VERSION.into(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            socket_path: self.config.socket_path.display().to_string(),
            state_dir: self.config.state_dir.display().to_string(),
            images_dir: self.storage.images_dir().display().to_string(),
            overlays_dir: self.storage.overlays_dir().display().to_string(),
            qemu_img_version: self.config.qemu_img_version.clone(),
            accelerator: self.config.accelerator.clone(),
            image_count,
            vm_count,
            disk: DiskUsage {
                floor_bytes: self.config.min_free_bytes,
                low: disk.free_bytes < self.config.min_free_bytes,
                reserve_bytes: self.reserve_held(),
                ..disk
            },
            host: Some(host),
            issues: match subject.is_admin() {
                // They name other users' VMs and images, which are theirs to know.
                false => Vec::new(),
                true => self
                    .issues
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            },
        })
    }
}

/// Password hashes computed at once.
const ARGON_AT_ONCE: usize = 2;

impl Manager {
    /// Runs password work `f` on a blocking thread, a bounded number at a time.
    async fn argon<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .argon
            .acquire()
            .await
            .map_err(|_| Error::Invalid("daemon is shutting down".into()))?;
        Ok(tokio::task::spawn_blocking(f).await?)
    }
}

/// Now, in unix seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC.
fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
