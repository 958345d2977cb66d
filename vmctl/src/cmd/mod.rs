//! The verbs: one module per command, each a thin `run` that calls the API and prints.

mod create;
mod image_import;
mod image_ls;
mod image_rm;
mod image_show;
mod ls;
mod rm;
mod show;
mod status;
mod wipe;

use std::path::PathBuf;

use jsonrpsee::ws_client::WsClient;

use crate::cli::{Cli, Command, ImageCommand};
use crate::error::CliError;
use crate::output::Output;

/// What every verb needs: where the daemon is and how to print.
#[derive(Debug)]
pub struct Ctx {
    /// The resolved daemon socket.
    pub socket: PathBuf,
    /// Output settings.
    pub out: Output,
}

impl Ctx {
    /// Connects to the daemon.
    pub async fn connect(&self) -> Result<WsClient, CliError> {
        crate::client::connect(&self.socket).await
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx {
        socket: crate::client::socket_path(cli.socket),
        out: Output {
            format: cli.output,
            quiet: cli.quiet,
        },
    };
    match cli.command {
        Command::Status => status::run(&ctx).await,
        Command::Image(ImageCommand::Import(args)) => image_import::run(&ctx, args).await,
        Command::Image(ImageCommand::Ls) => image_ls::run(&ctx).await,
        Command::Image(ImageCommand::Show(arg)) => image_show::run(&ctx, arg.name).await,
        Command::Image(ImageCommand::Rm(arg)) => image_rm::run(&ctx, arg.name).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Ls => ls::run(&ctx).await,
        Command::Show(arg) => show::run(&ctx, arg.name).await,
        Command::Rm(arg) => rm::run(&ctx, arg.name).await,
        Command::Wipe(arg) => wipe::run(&ctx, arg.name).await,
    }
}
