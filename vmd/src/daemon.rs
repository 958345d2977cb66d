//! Wiring: resolve paths, lock the state directory, open store and storage, reconcile, bind the
//! socket, signal readiness, serve until SIGTERM/SIGINT, drain, exit.
//!
//! Readiness (`READY=1`) is sent only after reconcile, so a supervisor never routes requests to
//! a daemon that has not yet checked its state. `STOPPING=1` is sent when a signal arrives.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::auth::identity::IdentityConfig;
use crate::config::{Args, Config};
use crate::manager::{AuthConfig, Manager, ManagerConfig, NetConfig};
use crate::paths::Paths;
use crate::rpc::{self, socket, Limits};
use crate::storage::{qemu_img, Storage};
use crate::{host, store::Store};

/// Runs the daemon until a termination signal.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let paths = Paths::resolve(args.socket, args.state_dir);
    let config = Config::load(args.config.as_deref(), &paths.default_config)?;
    check_nofile_limit(raise_nofile_limit(), config.max_connections);
    std::fs::create_dir_all(&paths.state_dir).with_context(|| {
        format!(
            "cannot create state directory {}",
            paths.state_dir.display()
        )
    })?;
    std::fs::set_permissions(&paths.state_dir, std::fs::Permissions::from_mode(0o755))?;
    let _lock = lock_state_dir(&paths.lock_file())?;
    let manager = open_manager(&paths, &config).await?;
    manager
        .reconcile()
        .await
        .context("start-up consistency check failed")?;
    let adopted = manager
        .adopt()
        .await
        .context("re-adopting running VMs failed")?;
    manager
        .restore_networks()
        .await
        .context("restoring lab networks failed")?;
    let shutdown = CancellationToken::new();
    manager.spawn_network_supervisor(shutdown.clone());
    manager.check_space().await;
    manager.watch_space(shutdown.clone());
    manager.name_placeholder_accounts().await;
    manager.spawn_expiry(shutdown.clone());
    let listener = socket::bind(
        &paths.socket,
        config.socket_mode()?,
        config.socket_group.as_deref(),
    )?;
    // Registered before READY=1: a SIGTERM right after readiness must be handled, not fatal.
    let signals = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    tokio::spawn(watch_signals(signals, shutdown.clone()));
    notify(sd_notify::NotifyState::Ready);
    tracing::info!(socket = %paths.socket.display(), state_dir = %paths.state_dir.display(), adopted, "vmd ready");
    let limits = Limits {
        max_request_bytes: config.max_request_bytes,
        max_upload_bytes: config.max_upload_bytes,
        upload_idle: std::time::Duration::from_secs(config.upload_idle_secs.max(1)),
        max_connections: config.max_connections,
        max_connections_per_uid: config.max_connections_per_uid,
        console_idle: config.console_idle(),
    };
    rpc::serve(listener, manager, limits, shutdown).await;
    let _ = std::fs::remove_file(&paths.socket);
    tracing::info!("vmd stopped");
    Ok(())
}

async fn open_manager(paths: &Paths, config: &Config) -> anyhow::Result<Arc<Manager>> {
    let store = Store::open(&paths.database())?;
    let storage = Storage::open(&paths.state_dir, &config.image_sandbox_user)?;
    let qemu_img_version = qemu_img::version()
        .await
        .context("qemu-img is required (install qemu-utils)")?;
    let manager_config = ManagerConfig {
        socket_path: paths.socket.clone(),
        state_dir: paths.state_dir.clone(),
        accelerator: host::choose_accelerator(config.accelerator, Path::new("/")),
        host_memory_mib: host::memory_mib(),
        qemu_img_version,
        run_dir: paths.run_dir(),
        qemu_user: qemu_user(&config.qemu_user),
        sandbox: config.sandbox,
        stop_timeout_secs: config.stop_timeout_secs,
        console_log_max_bytes: config.console_log_max_bytes,
        min_free_bytes: config.min_free_bytes,
        reserve_bytes: config.reserve_bytes,
        auth: AuthConfig {
            identity: IdentityConfig {
                admin_group: config.admin_group.clone(),
                auto_register: config.auto_register_local_users,
            },
            session_ttl_secs: config.session_ttl_secs.max(60),
            quota: config.quota()?,
            host_memory_limit_mib: config.host_memory_limit_mib(host::memory_mib())?,
            console_ticket_secs: config.console_ticket_secs,
        },
        net: NetConfig {
            pool: config.network.pool()?,
            max_networks_per_user: config.network.max_networks_per_user,
            port_forward_addresses: config.network.port_forward_addresses.clone(),
        },
    };
    tracing::debug!(accelerator = %manager_config.accelerator.name, reason = %manager_config.accelerator.reason, "accelerator chosen");
    Ok(Manager::new(store, storage, manager_config))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every connection, guest monitor and
/// console holds descriptors, and the default soft limit (often 1024) is below
/// `max_connections` plus what the guests need. Failure is logged, not fatal. Returns the
/// soft limit in force afterwards, if known.
fn raise_nofile_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the descriptor limit");
            return None;
        }
    };
    if soft >= hard {
        tracing::debug!(soft, hard, "descriptor limit already at its maximum");
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::debug!(from = soft, to = hard, "descriptor limit raised"),
        Err(err) => tracing::warn!(error = %err, soft, hard, "cannot raise the descriptor limit"),
    }
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Descriptors kept for the store, guests' monitors and consoles beyond the connections.
const NOFILE_RESERVE: u64 = 256;

/// Warns when `max_connections` cannot be reached within the descriptor limit: accepts would
/// then pause on EMFILE before the cap refuses anyone.
fn check_nofile_limit(soft: Option<u64>, max_connections: usize) {
    let needed = max_connections as u64 + NOFILE_RESERVE;
    if let Some(soft) = soft.filter(|soft| *soft < needed) {
        tracing::warn!(
            limit = soft,
            max_connections,
            needed,
            "descriptor limit is below max_connections plus a reserve; lower max_connections or raise LimitNOFILE"
        );
    }
}

/// QEMU drops privileges only when vmd runs as root; "" opts out.
fn qemu_user(configured: &str) -> Option<String> {
    (vm_proto::paths::current_uid() == 0 && !configured.is_empty()).then(|| configured.to_string())
}

/// Takes the exclusive lock that makes one daemon per state directory.
fn lock_state_dir(path: &Path) -> anyhow::Result<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another vmd is using state directory {} ({errno})",
            path.parent().unwrap_or(path).display()
        )
    })
}

async fn watch_signals((mut term, mut int): (Signal, Signal), shutdown: CancellationToken) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    notify(sd_notify::NotifyState::Stopping);
    tracing::info!(signal = name, "vmd stopping");
    shutdown.cancel();
}

fn notify(state: sd_notify::NotifyState) {
    if let Err(err) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %err, "sd_notify failed");
    }
}
