//! `vmctl wait NAME --for ssh|agent|log:REGEX [--timeout SECS]`: readiness of the guest.
//!
//! - `ssh`: a TCP connection to `127.0.0.1:<ssh port>` gets an `SSH-2.0-` banner (QEMU accepts
//!   on the forwarded port before the guest's sshd listens, so a connection alone proves
//!   nothing). Tried every [`POLL`]. A VM without an SSH port is an invalid argument (6).
//! - `agent`: `vm.get` shows `guest.agent` true (vmd polls the guest agent), every [`POLL`].
//! - `log:REGEX`: a console line of the current boot matches (`vm.logs`, then
//!   `vm.follow_logs`, subscribed first so nothing is missed; see `wait_log`).
//!
//! Like the state wait, events are subscribed first: a VM that stops meanwhile ends the wait
//! with exit 1 (a crash with its reason), `--timeout` exits 8. A VM without a process when
//! the wait begins is `wrong_state` (4): nothing will become ready.

use std::time::Duration;

use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::WsClient;
use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, LogChunk, Vm, VmState};
use vm_proto::{ApiError, ErrorCode};

use super::wait::{crashed, next_event, print_vm, state_of, within};
use super::wait_log::{current_boot, LineMatcher};
use super::Ctx;
use crate::cli::WaitFor;
use crate::client::subscription_ended;
use crate::error::CliError;

/// Pause between two readiness checks.
const POLL: Duration = Duration::from_secs(1);
/// Time limit of one TCP connection attempt, and of reading the banner.
const CONNECT_LIMIT: Duration = Duration::from_secs(3);
const BANNER_LIMIT: Duration = Duration::from_secs(15);
/// Most banner bytes read (servers may send other lines before `SSH-`).
const BANNER_BYTES: u64 = 4096;
/// How much of the console log is read at the start of a `log:` wait.
const LOG_TAIL: u64 = 1 << 20;

/// Waits for `target` (not a state); prints the VM at the end in JSON mode.
pub async fn run(
    ctx: &Ctx,
    name: &str,
    target: WaitFor,
    timeout: Option<u64>,
) -> Result<(), CliError> {
    let regex =
        match &target {
            WaitFor::Log(text) => Some(Regex::new(text).map_err(|e| {
                CliError::invalid(format!("bad regular expression after log: ({e})"))
            })?),
            _ => None,
        };
    let client = ctx.connect().await?;
    let mut events = client.events_subscribe(None).await?;
    let vm = client.vm_get(name.to_string()).await?;
    let what = describe(&target, &vm)?;
    require_process(&vm)?;
    let probe = async {
        match (regex, vm.ssh_port) {
            (Some(regex), _) => log_ready(&client, name, regex).await,
            (None, Some(port)) if target == WaitFor::Ssh => ssh_ready(port).await,
            _ => agent_ready(&client, name).await,
        }
    };
    let watch = async {
        tokio::select! {
            ready = probe => ready,
            ended = ended(&client, &mut events, name) => Err(ended),
        }
    };
    match within(timeout, watch).await {
        Some(result) => result?,
        None => {
            let secs = timeout.unwrap_or_default();
            let msg = format!("timed out after {secs} s waiting for {what} of vm {name}");
            return Err(CliError::TimedOut(msg));
        }
    }
    print_vm(ctx, &client, name.to_string()).await
}

/// What is awaited, for the timeout message; no SSH port for `ssh` is an invalid argument.
fn describe(target: &WaitFor, vm: &Vm) -> Result<String, CliError> {
    Ok(match target {
        WaitFor::Ssh => match vm.ssh_port {
            Some(port) => format!("an SSH server on port {port}"),
            None => return Err(no_ssh_port(vm)),
        },
        WaitFor::Agent => "the guest agent".into(),
        WaitFor::Log(regex) => format!("a console line matching {regex:?}"),
        WaitFor::State(state) => format!("state {state}"),
    })
}

/// The error of a VM without an SSH port forward; the hint says how to add one, or that a
/// VM without the user-mode NIC cannot have one.
pub(super) fn no_ssh_port(vm: &Vm) -> CliError {
    let name = &vm.name;
    let err = ApiError::new(
        ErrorCode::InvalidArgument,
        format!("vm {name} has no SSH port forward"),
    );
    let hint = match vm.user_net {
        true => format!("add one: vmctl port add {name} PORT 22"),
        false => format!(
            "vm {name} has no user-mode NIC (--no-user-net): reach it over its lab networks"
        ),
    };
    CliError::Api(err.with_hint(hint))
}

fn require_process(vm: &Vm) -> Result<(), CliError> {
    if vm.state.has_process() {
        return Ok(());
    }
    let err = ApiError::new(
        ErrorCode::WrongState,
        format!("vm {} is {}: nothing will become ready", vm.name, vm.state),
    );
    Err(CliError::Api(err.with_hint("start it first (vmctl start)")))
}

/// Follows `events` until the VM leaves the states with a process: the error saying so.
async fn ended(client: &WsClient, events: &mut Subscription<Event>, name: &str) -> CliError {
    loop {
        let event = match next_event(client, events).await {
            Ok(event) => event,
            Err(err) => return err,
        };
        match state_of(&event, name) {
            Err(err) => return err,
            Ok(Some(VmState::Crashed)) => return crashed(client, name).await,
            Ok(Some(state)) if !state.has_process() => {
                return CliError::Stopped {
                    name: name.to_string(),
                    state,
                }
            }
            Ok(_) => {}
        }
    }
}

/// Polls until an SSH server greets on `127.0.0.1:port`.
async fn ssh_ready(port: u16) -> Result<(), CliError> {
    loop {
        if ssh_banner(port).await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The server's `SSH-` banner line, if one arrives in time.
async fn ssh_banner(port: u16) -> Option<String> {
    let connect = TcpStream::connect(("127.0.0.1", port));
    let stream = tokio::time::timeout(CONNECT_LIMIT, connect)
        .await
        .ok()?
        .ok()?;
    let mut reader = BufReader::new(stream.take(BANNER_BYTES));
    let read = async {
        let mut line = String::new();
        while reader.read_line(&mut line).await.ok()? > 0 {
            if line.starts_with("SSH-2.0-") || line.starts_with("SSH-1.99-") {
                return Some(line.trim_end().to_string());
            }
            line.clear();
        }
        None
    };
    tokio::time::timeout(BANNER_LIMIT, read).await.ok()?
}

/// Polls `vm.get` until the guest agent has answered.
async fn agent_ready(client: &WsClient, name: &str) -> Result<(), CliError> {
    loop {
        let vm = client.vm_get(name.to_string()).await?;
        if vm.guest.is_some_and(|g| g.agent) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads the current boot's log, then follows it, until a line matches `regex`.
async fn log_ready(client: &WsClient, name: &str, regex: Regex) -> Result<(), CliError> {
    let mut follow: Subscription<LogChunk> = client.vm_follow_logs(name.to_string()).await?;
    let logs = client.vm_logs(name.to_string(), Some(LOG_TAIL)).await?;
    let mut matcher = LineMatcher::new(regex);
    if matcher.feed(current_boot(&logs.text)).is_some() {
        return Ok(());
    }
    loop {
        match follow.next().await {
            Some(Ok(chunk)) => {
                if matcher.feed(&chunk.text).is_some() {
                    return Ok(());
                }
            }
            Some(Err(err)) => {
                let msg = format!("unexpected log chunk from vmd: {err}");
                return Err(CliError::Protocol(msg));
            }
            None => {
                subscription_ended(client, &follow).await?;
                return Err(CliError::Protocol("vmd ended the log stream".into()));
            }
        }
    }
}
