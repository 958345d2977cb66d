//! The vmd API contract, shared by the daemon (`vmd`) and its clients (`vmctl`, the web shim).
//!
//! # Layout
//! - [`api`]: the one JSON-RPC trait ([`api::VmdApiServer`] behind the `server` feature,
//!   [`api::VmdApiClient`] behind `client`). Every method documents its preconditions and errors.
//! - [`types`]: serde types of every request and response; units live in field names.
//! - [`error`]: the stable error codes and the error `data` object ([`error::ErrorData`]).
//! - [`paths`]: where clients find the daemon socket.
//! - [`names`]: validation of names and parsing of human sizes, shared so that a client can reject
//!   bad input before it uploads gigabytes.
//! - [`sniff`]: what an upload is (ISO or disk image) from its first bytes, the one rule set
//!   that vmctl checks before sending and vmd checks on an upload's first chunk and at import.
//! - [`upload`]: the upload endpoint's query parameters and its sparse (extent stream) body.
//!
//! # Features
//! `server` and `client` enable the two sides of [`api`]; `openapi` derives `utoipa::ToSchema`
//! on every type in [`types`], for the OpenAPI document vmd-web serves (vmd and vmctl leave it off).
//!
//! # Compatibility
//! [`API_VERSION`] is `MAJOR.MINOR`. A minor bump only adds methods, optional request fields or
//! response fields; clients must ignore response fields they do not know. A major bump may remove
//! or change anything. Requests are strict (`deny_unknown_fields`) so that a typo is an error, not
//! a silently ignored option.

pub mod error;
pub mod names;
pub mod paths;
pub mod sniff;
pub mod types;
pub mod upload;

#[cfg(any(feature = "server", feature = "client"))]
pub mod api;

pub use error::{ApiError, ErrorCode, ErrorData};

/// Version of this contract, reported by `system.info`.
pub const API_VERSION: &str = "2.7";

/// HTTP path (on the daemon's Unix socket) that accepts raw image bytes for a later import.
pub const UPLOAD_PATH: &str = "/v1/uploads";

/// HTTP path prefix of console attachment: `GET /v1/vms/<name>/console` with
/// `Connection: Upgrade`, `Upgrade: vmd-console` switches the connection to the raw serial
/// byte stream of the VM (both directions).
pub const CONSOLE_PATH_PREFIX: &str = "/v1/vms/";

/// The `Upgrade` protocol token of console attachment.
pub const CONSOLE_UPGRADE: &str = "vmd-console";

/// The `Upgrade` protocol token of VNC attachment: `GET /v1/vms/<name>/vnc` with
/// `Connection: Upgrade`, `Upgrade: vmd-vnc` switches the connection to QEMU's RFB stream
/// (the VM's screen, keyboard and mouse). Several clients may view one VM at once.
pub const VNC_UPGRADE: &str = "vmd-vnc";

/// Header of a console or VNC upgrade request that carries a one-shot ticket from
/// `vm.console_ticket` instead of other credentials.
pub const TICKET_HEADER: &str = "x-vmd-ticket";

/// Environment variable that clients read to find the daemon's socket.
pub const SOCKET_ENV: &str = "VMD_SOCKET";
