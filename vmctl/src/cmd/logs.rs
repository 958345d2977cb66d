//! `vmctl logs NAME [--follow] [--tail BYTES]`: the VM's console log (`vm.logs`,
//! `vm.follow_logs`).
//!
//! The text goes to stdout as it is, without an added newline. JSON mode prints the
//! [`VmLogs`] object, or with `--follow` one `{"text": …}` line per chunk (the tail first).
//!
//! `--follow` subscribes before it reads the tail, so that nothing written in between is lost:
//! output written during that moment may be printed twice. (vmd starts a follow at the log's
//! end when it accepts the subscription; were it to look at the end only after answering the
//! `vm.logs` call that follows, output of that instant would be missing. It does not today.)

use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::WsClient;
use vm_proto::api::VmdApiClient;
use vm_proto::names::parse_size;
use vm_proto::types::{LogChunk, VmLogs};

use super::Ctx;
use crate::cli::LogsArgs;
use crate::client::subscription_ended;
use crate::error::CliError;
use crate::output::stream::{self, Flow};
use crate::output::{emit, to_json};

/// Prints the end of the log, then (with `--follow`) new output until Ctrl-C.
pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<(), CliError> {
    let tail = args
        .tail
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(CliError::invalid)?;
    let client = ctx.connect().await?;
    if !args.follow {
        let logs = client.vm_logs(args.name, tail).await?;
        return print_logs(ctx, &logs);
    }
    let subscription = client.vm_follow_logs(args.name.clone()).await?;
    let logs = client.vm_logs(args.name, tail).await?;
    if print_chunk(ctx, logs.text)? == Flow::Closed {
        return Ok(());
    }
    follow(ctx, &client, subscription).await
}

/// The whole answer of `vm.logs`: raw text, or the JSON object.
fn print_logs(ctx: &Ctx, logs: &VmLogs) -> Result<(), CliError> {
    if ctx.out.is_json() {
        return emit(&to_json(logs)?);
    }
    stream::bytes(logs.text.as_bytes()).map(drop)
}

/// Prints chunks as they arrive until Ctrl-C, stdout closes or the subscription ends.
async fn follow(
    ctx: &Ctx,
    client: &WsClient,
    mut subscription: Subscription<LogChunk>,
) -> Result<(), CliError> {
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let chunk = match next {
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => {
                return Err(CliError::Protocol(format!(
                    "unexpected log chunk from vmd: {err}"
                )))
            }
            None => return subscription_ended(client, &subscription).await,
        };
        if print_chunk(ctx, chunk.text)? == Flow::Closed {
            return Ok(());
        }
    }
}

/// One piece of followed output: raw, or a `{"text": …}` line in JSON mode.
fn print_chunk(ctx: &Ctx, text: String) -> Result<Flow, CliError> {
    if ctx.out.is_json() {
        return stream::json_line(&LogChunk { text });
    }
    stream::bytes(text.as_bytes())
}
