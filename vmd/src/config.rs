//! Command line and config file of the daemon.
//!
//! Precedence: command-line flags, then the config file, then built-in defaults. The default
//! config file (`/etc/vmd/vmd.toml` for root, `~/.config/vmd/vmd.toml` otherwise) is optional;
//! a file named with `--config` must exist.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::host::AccelPolicy;

/// `vmd`: the VM lab daemon.
#[derive(Debug, Parser)]
#[command(version, about = "vmd: the VM lab daemon (JSON-RPC on a Unix socket)")]
pub struct Args {
    /// Socket to serve [default: /run/vmd/vmd.sock as root, else $XDG_RUNTIME_DIR/vmd/vmd.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// State directory [default: /var/lib/vmd as root, else ~/.local/share/vmd]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: auto (journald under systemd, else text), text, json, journald
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `vmd=debug` (RUST_LOG also works)
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when started by systemd (JOURNAL_STREAM set), else text.
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// Native journald fields.
    Journald,
}

/// The config file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Socket permission bits, octal string (default "0660").
    pub socket_mode: String,
    /// Group owning the socket (default: the daemon's group).
    pub socket_group: Option<String>,
    /// Largest accepted upload in bytes (default 100 GiB).
    pub max_upload_bytes: u64,
    /// Seconds an upload may send no data before vmd drops it, releasing its reserved space
    /// (default 60).
    pub upload_idle_secs: u64,
    /// Largest JSON-RPC request in bytes (default 1 MiB).
    pub max_request_bytes: u32,
    /// Accelerator policy (default auto).
    pub accelerator: AccelPolicy,
    /// User QEMU runs as when vmd runs as root (default "nobody"); "" keeps root.
    pub qemu_user: String,
    /// Run QEMU with its seccomp sandbox (default true).
    pub sandbox: bool,
    /// Unprivileged user that runs qemu-img on uploaded images inside the bubblewrap sandbox
    /// when vmd runs as root (default "vmd-sandbox", a system user that nothing else runs as:
    /// a process of the same uid could reach an import in progress). Must exist and not be
    /// root; `scripts/setup.sh` and the sysusers snippet create it.
    pub image_sandbox_user: String,
    /// Default graceful-stop timeout in seconds (default 30).
    pub stop_timeout_secs: u64,
    /// Console log size in bytes that triggers rotation (default 8 MiB).
    pub console_log_max_bytes: u64,
    /// Creates, starts and imports are refused while the state directory's file system has
    /// less than this many bytes free (default 256 MiB; 0 disables the floor).
    pub min_free_bytes: u64,
    /// Size of the space reserve file in the state directory, released when the file system
    /// fills up so that stops, removals and state records still work (default 64 MiB; 0: none).
    pub reserve_bytes: u64,
    /// Most connections served at once, all users together (default 1024). Connections over
    /// the limit are answered with HTTP 503 and closed.
    pub max_connections: usize,
    /// Most connections one non-root uid may hold at once (default 128); root is not limited
    /// by it, only by `max_connections`.
    pub max_connections_per_uid: usize,
    /// Seconds a console client may send nothing before it is detached and the console freed
    /// (default 1800); 0 never detaches. Guest output does not count as activity.
    pub console_idle_secs: u64,
    /// Members of this group are admins (uid 0 always is).
    pub admin_group: String,
    /// Create an account (role user) for a local uid on its first contact.
    pub auto_register_local_users: bool,
    /// Lifetime of a login session (`auth.login`), seconds.
    pub session_ttl_secs: u64,
    /// Most memory all running VMs together may have, a size like "16G"; default: the
    /// host's memory minus a reserve (a quarter, at most 2 GiB).
    pub host_memory_limit: Option<String>,
    /// Life of a one-shot console ticket (`vm.console_ticket`), seconds, 1 to 30.
    pub console_ticket_secs: u64,
    /// Default quotas of accounts without overrides (`vmctl user set`); absent: unlimited.
    pub quota: QuotaConfig,
    /// Lab networks and port forwards (`[network]`).
    pub network: NetworkConfig,
}

/// The `[network]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Where networks without `--subnet` get a /24, and where users' subnets must lie
    /// (default "10.213.0.0/16").
    pub pool: String,
    /// Most networks one user (not admin) may own (default 4).
    pub max_networks_per_user: u64,
    /// Host addresses port forwards may listen on besides 127.0.0.1 (default none: loopback
    /// only). "0.0.0.0" exposes forwards on every interface.
    pub port_forward_addresses: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            pool: "10.213.0.0/16".into(),
            max_networks_per_user: 4,
            port_forward_addresses: Vec::new(),
        }
    }
}

impl NetworkConfig {
    /// The checked pool.
    pub fn pool(&self) -> Result<vm_proto::types::Subnet, ConfigError> {
        vm_proto::types::Subnet::parse(&self.pool)
            .map_err(|why| ConfigError::Invalid(format!("[network] pool: {why}")))
    }
}

/// The `[quota]` table: default per-user limits. Sizes are strings like "8G".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// VMs owned.
    pub max_vms: Option<u64>,
    /// VMs running.
    pub max_running: Option<u64>,
    /// vCPUs of running VMs.
    pub max_vcpus: Option<u64>,
    /// Memory of running VMs.
    pub max_memory: Option<String>,
    /// Virtual disk sizes of the user's VMs and private images.
    pub max_disk: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            socket_mode: "0660".into(),
            socket_group: None,
            max_upload_bytes: 100 << 30,
            max_request_bytes: 1 << 20,
            upload_idle_secs: 60,
            accelerator: AccelPolicy::Auto,
            qemu_user: "nobody".into(),
            sandbox: true,
            image_sandbox_user: "vmd-sandbox".into(),
            stop_timeout_secs: vm_proto::types::STOP_TIMEOUT_SECS,
            console_log_max_bytes: 8 << 20,
            min_free_bytes: 256 << 20,
            reserve_bytes: 64 << 20,
            max_connections: 1024,
            max_connections_per_uid: 128,
            console_idle_secs: 1800,
            admin_group: "vmd-admin".into(),
            auto_register_local_users: true,
            session_ttl_secs: 12 * 3600,
            host_memory_limit: None,
            console_ticket_secs: vm_proto::types::CONSOLE_TICKET_SECS,
            quota: QuotaConfig::default(),
            network: NetworkConfig::default(),
        }
    }
}

/// Failures reading the config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The file is not valid.
    #[error("invalid config file {0}")]
    Parse(PathBuf, #[source] toml::de::Error),
    /// `socket_mode` is not an octal mode.
    #[error("socket_mode {0:?} is not an octal permission mode like \"0660\"")]
    Mode(String),
    /// A connection limit is zero, which would refuse every client.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// A size setting does not parse.
    #[error("{0}: {1}")]
    Size(&'static str, String),
    /// A setting is out of its bounds; the text says which and why.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads `explicit`, or the default file if it exists, or defaults.
    pub fn load(explicit: Option<&Path>, default: &Path) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p,
            None if default.exists() => default,
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))?;
        config.socket_mode()?;
        config.check_limits()?;
        config.quota()?;
        config.host_memory_limit_mib(1)?;
        Ok(config)
    }

    /// `socket_mode` as bits.
    pub fn socket_mode(&self) -> Result<u32, ConfigError> {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| ConfigError::Mode(self.socket_mode.clone()))
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroLimit("max_connections"));
        }
        if self.max_connections_per_uid == 0 {
            return Err(ConfigError::ZeroLimit("max_connections_per_uid"));
        }
        Ok(())
    }

    /// The default quotas.
    pub fn quota(&self) -> Result<vm_proto::types::Quota, ConfigError> {
        let q = &self.quota;
        Ok(vm_proto::types::Quota {
            max_vms: q.max_vms,
            max_running: q.max_running,
            max_vcpus: q.max_vcpus,
            max_memory_mib: size(q.max_memory.as_deref(), "quota.max_memory")?.map(|b| b >> 20),
            max_disk_bytes: size(q.max_disk.as_deref(), "quota.max_disk")?,
        })
    }

    /// `host_memory_limit` in MiB, given the host's memory.
    pub fn host_memory_limit_mib(&self, host_mib: u64) -> Result<u64, ConfigError> {
        match size(self.host_memory_limit.as_deref(), "host_memory_limit")? {
            Some(bytes) => Ok(bytes >> 20),
            None => Ok(host_mib.saturating_sub((host_mib / 4).min(2048)).max(1)),
        }
    }

    /// The console idle timeout; `None` when `console_idle_secs` is 0.
    pub fn console_idle(&self) -> Option<std::time::Duration> {
        (self.console_idle_secs > 0).then(|| std::time::Duration::from_secs(self.console_idle_secs))
    }
}

fn size(text: Option<&str>, key: &'static str) -> Result<Option<u64>, ConfigError> {
    text.map(|t| vm_proto::names::parse_size(t).map_err(|e| ConfigError::Size(key, e)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_file_gives_defaults() {
        let c = Config::load(None, Path::new("/nonexistent/vmd.toml")).expect("defaults");
        assert_eq!(c.socket_mode().ok(), Some(0o660));
        assert!(Config::load(Some(Path::new("/nonexistent/vmd.toml")), Path::new("/x")).is_err());
    }

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("vmd.toml");
        std::fs::write(&file, "socket_mode = \"0600\"\naccelerator = \"tcg\"\n").expect("write");
        let c = Config::load(Some(&file), Path::new("/x")).expect("parse");
        assert_eq!(
            (c.socket_mode().ok(), c.accelerator),
            (Some(0o600), AccelPolicy::Tcg)
        );
        assert_eq!(c.image_sandbox_user, "vmd-sandbox", "default");
        std::fs::write(&file, "image_sandbox_user = \"vmd-img\"\n").expect("write");
        let c = Config::load(Some(&file), Path::new("/x")).expect("parse");
        assert_eq!(c.image_sandbox_user, "vmd-img");
        std::fs::write(&file, "sockt_mode = \"0600\"\n").expect("write");
        assert!(matches!(
            Config::load(Some(&file), Path::new("/x")),
            Err(ConfigError::Parse(..))
        ));
        std::fs::write(&file, "max_connections = 0\n").expect("write");
        assert!(matches!(
            Config::load(Some(&file), Path::new("/x")),
            Err(ConfigError::ZeroLimit("max_connections"))
        ));
        std::fs::write(&file, "socket_mode = \"rw\"\n").expect("write");
        assert!(matches!(
            Config::load(Some(&file), Path::new("/x")),
            Err(ConfigError::Mode(_))
        ));
    }
}
