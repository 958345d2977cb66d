//! vmd: the VM lab daemon.
//!
//! # Layout
//! - [`auth`]: identity (peer uid, tokens, sessions), the authorization policy, secrets.
//! - [`config`]: command line and config file.
//! - [`paths`]: directory layout and defaults.
//! - [`telemetry`]: logging setup (text / JSON / journald).
//! - [`log_limit`]: at most one log line per interval for conditions that can repeat fast.
//! - [`daemon`]: wiring, state-directory lock, signals, sd_notify, shutdown.
//! - [`rpc`]: the Unix-socket front end (JSON-RPC over HTTP and WebSocket, uploads, consoles),
//!   thin handlers, peer credentials, connection caps and accept back-off.
//! - [`manager`]: owns images and VMs: validation, per-object serialisation, atomic changes,
//!   start-up reconcile.
//! - [`storage`]: daemon-owned files, format detection, qemu-img.
//! - [`seed`]: cloud-init NoCloud seeds (documents and the `cidata` ISO).
//! - [`qemu`]: QEMU argv, process spawning and watching, the QMP client.
//! - [`store`]: SQLite schema, migrations and queries.
//! - [`host`]: accelerator choice and host facts.

pub mod auth;
pub mod config;
pub mod daemon;
pub mod host;
pub mod host_load;
pub mod hostnet;
pub mod log_limit;
pub mod manager;
pub mod paths;
pub mod qemu;
pub mod rpc;
pub mod seed;
pub mod storage;
pub mod store;
pub mod telemetry;
