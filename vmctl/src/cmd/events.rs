//! `vmctl events [--since N] [--follow]`: lab events as JSON lines (`events.list`,
//! `events.subscribe`).
//!
//! Always one compact [`Event`] object per line, whatever `--output` says: this verb is for
//! pipelines (`vmctl events -f | jq …`). Without `--follow` it pages through the stored events
//! after `--since` (default 0, everything) and exits; with it, it streams until Ctrl-C, starting
//! after `--since` when given and with new events otherwise.

use jsonrpsee::ws_client::WsClient;
use vm_proto::api::VmdApiClient;
use vm_proto::types::Event;

use super::Ctx;
use crate::cli::EventsArgs;
use crate::client::subscription_ended;
use crate::error::CliError;
use crate::output::stream::{json_line, Flow};

/// Events asked for per `events.list` call; a shorter page is the last.
const PAGE: u64 = 1000;

/// Prints the events as JSON lines.
pub async fn run(ctx: &Ctx, args: EventsArgs) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    if args.follow {
        follow(&client, args.since).await
    } else {
        list(&client, args.since.unwrap_or(0)).await
    }
}

/// Prints the stored events after `since`, page by page.
async fn list(client: &WsClient, mut since: u64) -> Result<(), CliError> {
    loop {
        let page = client.events_list(Some(since), Some(PAGE)).await?;
        for event in &page {
            if json_line(event)? == Flow::Closed {
                return Ok(());
            }
            since = event.seq;
        }
        if (page.len() as u64) < PAGE {
            return Ok(());
        }
    }
}

/// Streams events until Ctrl-C, stdout closes or the subscription ends. A lost connection
/// says how to resume.
async fn follow(client: &WsClient, since: Option<u64>) -> Result<(), CliError> {
    let mut events = client.events_subscribe(since).await?;
    let mut last = since;
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event: Event = match next {
            Some(Ok(event)) => event,
            Some(Err(err)) => {
                return Err(CliError::Protocol(format!(
                    "unexpected event from vmd: {err}"
                )))
            }
            None => {
                return subscription_ended(client, &events)
                    .await
                    .map_err(|err| resumable(err, last))
            }
        };
        if json_line(&event)? == Flow::Closed {
            return Ok(());
        }
        last = Some(event.seq);
    }
}

/// Adds how to resume after `last` to a stream failure.
fn resumable(err: CliError, last: Option<u64>) -> CliError {
    let resume = match last {
        Some(seq) => format!("vmctl events --follow --since {seq}"),
        None => "vmctl events --follow".to_string(),
    };
    CliError::Protocol(format!("{err}; resume with `{resume}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_failures_say_how_to_resume() {
        let lost = || CliError::Protocol("connection to vmd lost".into());
        assert_eq!(
            resumable(lost(), Some(42)).to_string(),
            "connection to vmd lost; resume with `vmctl events --follow --since 42`"
        );
        assert!(resumable(lost(), None)
            .to_string()
            .ends_with("`vmctl events --follow`"));
        assert_eq!(resumable(lost(), None).exit_code(), 1);
    }
}
