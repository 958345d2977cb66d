//! `vmctl wait NAME --for STATE [--timeout SECS]`: blocks until the VM is in STATE. The
//! readiness targets (`ssh`, `agent`, `log:REGEX`) are in `wait_ready`.
//!
//! Subscribes to events first, then reads the VM (`vm.get`), so that a change between the two
//! is never missed. Success prints nothing (JSON mode: the VM). Failures: `--timeout` passed
//! (exit 8, saying the state reached), the VM became `crashed` while another state was awaited
//! (exit 1 with its reason), the VM was removed (exit 3). A VM that is already `crashed` when
//! the wait begins is not a failure: it may be started again. Events a newer daemon sends that
//! this vmctl cannot decode are skipped.

use std::future::Future;
use std::time::Duration;

use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::WsClient;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, EventKind, VmState};
use vm_proto::{ApiError, ErrorCode};

use super::Ctx;
use crate::cli::{WaitArgs, WaitFor};
use crate::client::subscription_ended;
use crate::error::CliError;
use crate::output;

/// Waits; prints the VM at the end in JSON mode.
pub async fn run(ctx: &Ctx, args: WaitArgs) -> Result<(), CliError> {
    let target = match args.target {
        WaitFor::State(state) => state,
        other => return super::wait_ready::run(ctx, &args.name, other, args.timeout).await,
    };
    let client = ctx.connect().await?;
    let mut events = client.events_subscribe(None).await?;
    let mut current = client.vm_get(args.name.clone()).await?.state;
    let watch = until(&client, &mut events, &args.name, target, &mut current);
    match within(args.timeout, watch).await {
        Some(result) => result?,
        None => {
            let secs = args.timeout.unwrap_or_default();
            return Err(timed_out(secs, &args.name, target, current));
        }
    }
    print_vm(ctx, &client, args.name).await
}

/// In JSON mode, prints the VM as it is at the end of a wait.
pub(super) async fn print_vm(ctx: &Ctx, client: &WsClient, name: String) -> Result<(), CliError> {
    if ctx.out.is_json() {
        let vm = client.vm_get(name).await?;
        return ctx.out.object(&vm, output::vm::details);
    }
    Ok(())
}

/// The output of `future`, or `None` when `secs` pass first (never without a limit).
pub(super) async fn within<T>(secs: Option<u64>, future: impl Future<Output = T>) -> Option<T> {
    match secs {
        None => Some(future.await),
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), future)
            .await
            .ok(),
    }
}

/// Follows `events` until the VM `name` is in `target`, keeping `current` up to date.
async fn until(
    client: &WsClient,
    events: &mut Subscription<Event>,
    name: &str,
    target: VmState,
    current: &mut VmState,
) -> Result<(), CliError> {
    while *current != target {
        let event = next_event(client, events).await?;
        if let Some(state) = state_of(&event, name)? {
            *current = state;
            if state == VmState::Crashed && target != VmState::Crashed {
                return Err(crashed(client, name).await);
            }
        }
    }
    Ok(())
}

/// The new state of VM `name` if `event` changed it; `not_found` if it removed the VM.
pub(super) fn state_of(event: &Event, name: &str) -> Result<Option<VmState>, CliError> {
    if event.vm.as_deref() != Some(name) {
        return Ok(None);
    }
    match event.kind {
        EventKind::StateChanged => Ok(event.state),
        EventKind::VmRemoved => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("vm {name} was removed while waiting for it"),
        )
        .into()),
        _ => Ok(None),
    }
}

/// The next event that decodes; the end of the stream is an error.
pub(super) async fn next_event(
    client: &WsClient,
    events: &mut Subscription<Event>,
) -> Result<Event, CliError> {
    loop {
        match events.next().await {
            Some(Ok(event)) => return Ok(event),
            Some(Err(_newer_daemon)) => continue,
            None => {
                subscription_ended(client, events).await?;
                return Err(CliError::Protocol("vmd ended the event stream".into()));
            }
        }
    }
}

/// The crash error, with the reason the daemon recorded.
pub(super) async fn crashed(client: &WsClient, name: &str) -> CliError {
    let reason = match client.vm_get(name.to_string()).await {
        Ok(vm) => vm.reason,
        Err(_) => None,
    };
    CliError::Crashed {
        name: name.to_string(),
        reason: reason.unwrap_or_else(|| "no reason recorded".to_string()),
    }
}

/// The timeout error: how long, what for, and the state reached.
fn timed_out(secs: u64, name: &str, target: VmState, current: VmState) -> CliError {
    CliError::TimedOut(format!(
        "timed out after {secs} s waiting for vm {name} to be {target} (it is {current})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, vm: &str, state: Option<VmState>) -> Event {
        Event {
            seq: 1,
            at: "2024-05-01T12:00:00.000Z".into(),
            kind,
            vm: Some(vm.into()),
            image: None,
            iso: None,
            state,
            message: String::new(),
            actor: None,
            owner: None,
        }
    }

    #[test]
    fn only_state_changes_of_this_vm_count() {
        let running = Some(VmState::Running);
        let changed = event(EventKind::StateChanged, "web1", running);
        assert_eq!(state_of(&changed, "web1").expect("ok"), running);
        assert_eq!(state_of(&changed, "web2").expect("ok"), None);
        let reset = event(EventKind::Reset, "web1", None);
        assert_eq!(state_of(&reset, "web1").expect("ok"), None);
        let removed = event(EventKind::VmRemoved, "web1", None);
        assert_eq!(state_of(&removed, "web1").expect_err("gone").exit_code(), 3);
    }

    #[tokio::test]
    async fn within_gives_up_only_with_a_limit() {
        assert_eq!(within(None, async { 3 }).await, Some(3));
        assert_eq!(within(Some(0), async { 3 }).await, Some(3), "ready wins");
        let never = std::future::pending::<()>();
        assert_eq!(within(Some(0), never).await, None);
    }

    #[test]
    fn timeouts_exit_8_and_say_where_the_vm_is() {
        let err = timed_out(5, "web1", VmState::Running, VmState::Starting);
        assert_eq!(err.exit_code(), 8);
        assert_eq!(
            err.to_string(),
            "timed out after 5 s waiting for vm web1 to be running (it is starting)"
        );
    }
}
