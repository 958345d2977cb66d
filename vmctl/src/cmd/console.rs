//! `vmctl console NAME [--linger SECS] [--force]`: the VM's serial console through vmd.
//! `--force` takes it over from the client attached now, which is told and disconnected.
//!
//! On a terminal: raw mode (restored however vmctl ends), `Connected to NAME (escape: Ctrl-])`
//! on stderr, Ctrl-] detaches (`Detached from NAME`). Otherwise stdin is sent as it is and
//! console output is printed until `--linger` seconds after stdin ends. Either way the daemon
//! closing the console (the VM stopped) prints `console closed` and exits 0. `-q` drops these
//! stderr lines.

use std::io::IsTerminal;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use vm_proto::names::validate_name;

use super::Ctx;
use crate::cli::ConsoleArgs;
use crate::console::{self, End, Input};
use crate::error::CliError;
use crate::output::stream;
use crate::terminal::RawMode;

/// Attaches and copies bytes until the session ends.
pub async fn run(ctx: &Ctx, args: ConsoleArgs) -> Result<(), CliError> {
    validate_name("vm", &args.name).map_err(CliError::invalid)?;
    let console = console::attach(&ctx.socket, ctx.token.as_ref(), &args.name, args.force).await?;
    let say = |message: &str| {
        if !ctx.out.quiet {
            eprintln!("{message}");
        }
    };
    let end = if std::io::stdin().is_terminal() {
        say(&format!("Connected to {} (escape: Ctrl-])", args.name));
        let raw = RawMode::enable()?;
        let end = session(console, Input::Terminal).await;
        drop(raw);
        end?
    } else {
        let linger = Duration::from_secs(args.linger);
        session(console, Input::Script { linger }).await?
    };
    match end {
        End::Detached => say(&format!("\nDetached from {}", args.name)),
        End::Closed => say("console closed"),
        End::Done => {}
    }
    Ok(())
}

/// Pumps bytes until the session ends or vmctl is told to stop (SIGTERM, SIGHUP), which
/// detaches so that the terminal is restored.
async fn session(console: console::Console, mode: Input) -> Result<End, CliError> {
    let pump = console::pump(console, console::stdin_chunks(), mode, stream::bytes);
    tokio::select! {
        end = pump => end,
        () = terminated() => Ok(End::Detached),
    }
}

/// Resolves on SIGTERM or SIGHUP; never if the handlers cannot be installed.
async fn terminated() {
    let (Ok(mut term), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hangup.recv() => {}
    }
}
