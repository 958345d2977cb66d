//! The verbs: one module per command, each a thin `run` that calls the API and prints.

mod console;
mod create;
mod events;
mod image_import;
mod image_ls;
mod image_rm;
mod image_show;
mod logs;
mod ls;
mod pause;
mod reboot;
mod resume;
mod rm;
mod show;
mod start;
mod status;
mod stop;
mod vnc;
mod wait;
mod wipe;

use std::future::Future;
use std::path::PathBuf;

use jsonrpsee::core::ClientError;
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
        Command::Image(ImageCommand::Rm(args)) => image_rm::run(&ctx, args.names).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Ls => ls::run(&ctx).await,
        Command::Show(arg) => show::run(&ctx, arg.name).await,
        Command::Rm(args) => rm::run(&ctx, args.names).await,
        Command::Wipe(arg) => wipe::run(&ctx, arg.name).await,
        Command::Start(arg) => start::run(&ctx, arg.name).await,
        Command::Stop(args) => stop::run(&ctx, args).await,
        Command::Reboot(arg) => reboot::run(&ctx, arg.name).await,
        Command::Pause(arg) => pause::run(&ctx, arg.name).await,
        Command::Resume(arg) => resume::run(&ctx, arg.name).await,
        Command::Vnc(arg) => vnc::run(&ctx, arg.name).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Events(args) => events::run(&ctx, args).await,
        Command::Wait(args) => wait::run(&ctx, args).await,
        Command::Console(args) => console::run(&ctx, args).await,
    }
}

/// Removes `names` in order with `remove`, stopping at the first failure. One name is
/// confirmed like any removal; several are confirmed one line each as they go, or in JSON mode
/// as one array of what was removed (printed also when a later removal fails).
async fn remove_each<F, Fut>(
    ctx: &Ctx,
    kind: &str,
    names: Vec<String>,
    mut remove: F,
) -> Result<(), CliError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    if let [name] = names.as_slice() {
        remove(name.clone()).await?;
        return ctx.out.removed(kind, name);
    }
    let mut removed = Vec::new();
    let mut outcome = Ok(());
    for name in names {
        if let Err(err) = remove(name.clone()).await {
            outcome = Err(err.into());
            break;
        }
        if !ctx.out.is_json() {
            ctx.out.removed(kind, &name)?;
        }
        removed.push(name);
    }
    ctx.out.removed_all(kind, &removed)?;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Format;
    use jsonrpsee::types::ErrorObjectOwned;
    use std::cell::RefCell;
    use vm_proto::ErrorCode;

    #[tokio::test]
    async fn removal_stops_at_the_first_failure() {
        let ctx = Ctx {
            socket: PathBuf::from("/unused.sock"),
            out: Output {
                format: Format::Table,
                quiet: true,
            },
        };
        let asked = RefCell::new(Vec::new());
        let names = ["a", "b", "c"].map(String::from).to_vec();
        let err = remove_each(&ctx, "vm", names, |name| {
            asked.borrow_mut().push(name.clone());
            async move {
                if name != "b" {
                    return Ok(());
                }
                let code = ErrorCode::WrongState.code();
                Err(ClientError::Call(ErrorObjectOwned::owned(
                    code,
                    "vm b is running",
                    None::<()>,
                )))
            }
        })
        .await
        .expect_err("b fails");
        assert_eq!(err.exit_code(), 4);
        assert_eq!(asked.into_inner(), ["a", "b"]);
    }
}
