//! `vmctl`: the command-line client of vmd.
//!
//! # Layout
//! - [`cli`]: the command-line syntax (clap).
//! - [`cmd`]: one module per verb; each calls the API and prints, nothing more.
//! - [`client`]: finding the socket, the bearer credential, connecting the JSON-RPC (WebSocket)
//!   client.
//! - [`http`]: one HTTP/1.1 request on the same socket (uploads, console), vmd's error bodies.
//! - [`upload`]: streaming an image file to the daemon over HTTP.
//! - [`console`]: attaching to a VM's serial console (HTTP Upgrade) and copying bytes both ways.
//! - [`terminal`]: raw mode for the console and no echo for passwords, restored by guards.
//! - [`password`]: reading passwords from stdin or a prompt.
//! - [`values`]: parsers of durations and quota limits (bad values exit 6).
//! - [`output`]: tables or JSON on stdout; streams of log text and JSON lines.
//! - [`error`]: [`error::CliError`], how errors are printed, and the exit codes.

mod cli;
mod client;
mod cmd;
mod console;
mod error;
mod http;
mod output;
mod password;
mod terminal;
mod upload;
mod values;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Format};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.output == Format::Json;
    match runtime().and_then(|rt| rt.block_on(cmd::run(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            err.report(json);
            ExitCode::from(&err)
        }
    }
}

/// A single-threaded runtime: vmctl does one thing at a time.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            context: "cannot start the async runtime".into(),
            source,
        })
}
