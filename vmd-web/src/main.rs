//! `vmd-web`: the HTTP/REST shim in front of vmd's Unix socket.
//!
//! # Layout
//! - [`cli`]: flags, and the refusal of plain HTTP on a non-loopback address without
//!   `--insecure-http`.
//! - [`tls`]: HTTPS with rustls: the certificate and key, and a listener axum serves as is.
//! - [`app`]: the router and the tower layers declared once (trace, body limit, timeout, CSRF,
//!   security headers).
//! - [`server`]: the accept loop: header and idle timeouts, the connection cap, graceful
//!   shutdown, the descriptor limit.
//! - [`auth`]: credentials (bearer or session cookie), login cookies, CSRF and Origin checks.
//! - [`vmd`]: the JSON-RPC client to vmd, one connection per request, carrying the credential.
//! - [`limits`]: caps on logins in flight and on streams and consoles held open, so one
//!   caller cannot take every connection vmd-web has to vmd.
//! - [`error`]: the one mapping from vm-proto's error kinds to HTTP responses.
//! - [`upload`]: streaming an upload body to vmd's `PUT /v1/uploads` (hyper over the socket).
//! - [`routes`]: one-line handlers per resource; `streams` relays vmd's subscriptions as SSE,
//!   `uploads` streams ISO and image files to vmd and imports them.
//! - [`openapi`]: the OpenAPI document, gathered from the route registrations, served at
//!   `GET /api/v1/openapi.json`.
//! - [`console`]: browser consoles: the ticket-authorized stream on vmd, pumped over a WebSocket.
//! - [`ui`]: the browser UI's static files, embedded at build time (`build.rs`), with a strict CSP.
//!
//! vmd-web holds no state and makes no authorization decision: vmd decides everything.

mod app;
mod auth;
mod cli;
mod console;
mod error;
mod limits;
mod openapi;
mod routes;
mod server;
mod tls;
mod trace;
mod ui;
mod upload;
mod vmd;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs go to stderr: stdout carries only the "listening on" line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = cli::Args::parse();
    match app::serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(cause = %err, "vmd-web failed");
            eprintln!("vmd-web: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
