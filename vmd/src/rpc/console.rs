//! `GET /v1/vms/<name>/console` with `Upgrade: vmd-console`: after `101 Switching Protocols`
//! the connection carries the VM's raw serial bytes both ways. One client per VM at a time;
//! the daemon connects to QEMU's console socket on the client's behalf.
//!
//! A client that sends nothing for `console_idle_secs` (config, default 30 min) is detached
//! and the console freed for the next client. Only the client's keystrokes count as activity:
//! a chatty guest must not keep an abandoned session alive, and a client that stopped reading
//! is detached all the same (the timer runs while guest output waits for it). The end of the
//! client's input ends the session at once (QEMU would drop its side on that EOF anyway).
//!
//! `?force=1` takes the console over from its current client, which reads
//! `[vmd] console taken over by WHO` and is disconnected ([`crate::manager::console`]).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use jsonrpsee::server::{HttpRequest, HttpResponse};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use vm_proto::CONSOLE_UPGRADE;

use super::upgrade::{self, Endpoint};
use super::Identity;
use crate::manager::Manager;
use vm_proto::types::ConsoleKind;

/// The VM name if `path` is a console path.
pub fn vm_of(path: &str) -> Option<&str> {
    upgrade::vm_of(path, "console")
}

/// The console endpoint.
const CONSOLE: Endpoint = Endpoint {
    protocol: CONSOLE_UPGRADE,
    what: "console",
    hint: "use `vmctl console NAME`",
    kind: ConsoleKind::Serial,
};

/// Answers a console attach request.
pub async fn handle(
    manager: Arc<Manager>,
    who: Identity,
    req: HttpRequest<Incoming>,
    name: String,
    idle: Option<Duration>,
) -> HttpResponse {
    let caller = match upgrade::caller(&manager, &req, &who, (&CONSOLE, &name)).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    let force = forced(req.uri().query());
    let mut attach = match manager.console_attach(&caller, &name, force).await {
        Ok(a) => a,
        Err(err) => return upgrade::refused(err),
    };
    let qemu = match upgrade::connect(attach.socket()).await {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    tracing::debug!(vm = %name, user = %caller.name, force, "console attached");
    let kick = attach.take_kick();
    let (user, vm) = (caller.name.clone(), name.clone());
    let done = move |end| {
        log_detach(&vm, &user, end, idle);
        drop(attach);
    };
    upgrade::relay(
        manager,
        req,
        qemu,
        (caller, name),
        (CONSOLE_UPGRADE, idle),
        (kick, done),
    )
}

/// Whether the query asks to take the console over (`force=1` or `force=true`).
fn forced(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| matches!(pair, "force=1" | "force=true"))
}

/// Why a console session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The client closed or failed.
    Client,
    /// QEMU closed the console (the VM stopped) or failed.
    Guest,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// The client's access ended (token revoked, account removed or demoted, VM gone).
    Revoked,
    /// Another client took the console over (`?force=1`).
    TakenOver,
}

/// How often an open console or VNC session checks that its client may still use the VM.
const ACCESS_RECHECK: Duration = Duration::from_secs(5);

/// Returns once `subject` may no longer operate VM `name` (checked every few seconds).
pub(super) async fn until_revoked(manager: &Manager, subject: &crate::auth::Subject, name: &str) {
    loop {
        tokio::time::sleep(ACCESS_RECHECK).await;
        let still = match manager.refresh(subject).await {
            Ok(now) => manager.get_vm(&now, name).await.is_ok(),
            Err(_) => false,
        };
        if !still {
            return;
        }
    }
}

fn log_detach(name: &str, user: &str, end: End, idle: Option<Duration>) {
    match (end, idle) {
        (End::Idle, Some(idle)) => tracing::info!(
            vm = %name,
            user,
            idle_secs = idle.as_secs(),
            "console client idle; detached"
        ),
        _ => tracing::debug!(vm = %name, user, ?end, "console detached"),
    }
}

/// Copies bytes both ways until either side ends or the client is idle for `idle`.
pub(super) async fn pump<C, Q>(client: C, qemu: Q, idle: Option<Duration>) -> End
where
    C: AsyncRead + AsyncWrite,
    Q: AsyncRead + AsyncWrite,
{
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_qemu, mut to_qemu) = tokio::io::split(qemu);
    let typed = Notify::new();
    let input = keystrokes(&mut from_client, &mut to_qemu, &typed);
    let output = guest_output(&mut from_qemu, &mut to_client);
    tokio::select! {
        end = input => end,
        end = output => end,
        end = idle_watch(idle, &typed) => end,
    }
}

/// Client → QEMU until the client's input ends; signals `typed` on every chunk.
async fn keystrokes<R, W>(from: &mut R, to: &mut W, typed: &Notify) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Client,
            Ok(n) => n,
        };
        typed.notify_one();
        if to.write_all(&buf[..n]).await.is_err() {
            return End::Guest;
        }
    }
}

/// QEMU → client, until QEMU closes ([`End::Guest`]) or the client cannot take more.
async fn guest_output<R, W>(from: &mut R, to: &mut W) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Guest,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            return End::Client;
        }
    }
}

/// Ends with [`End::Idle`] once `typed` has been quiet for `idle`; never when `idle` is `None`.
async fn idle_watch(idle: Option<Duration>, typed: &Notify) -> End {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    // `notify_one` stores a wake-up when nobody waits, so a keystroke is never missed.
    while tokio::time::timeout(idle, typed.notified()).await.is_ok() {}
    End::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths() {
        assert_eq!(vm_of("/v1/vms/web1/console"), Some("web1"));
        assert_eq!(vm_of("/v1/vms/a/b/console"), None);
        assert_eq!(vm_of("/v1/vms/web1"), None);
        assert!(forced(Some("force=1")) && forced(Some("a=b&force=true")));
        assert!(!forced(None) && !forced(Some("force=0")) && !forced(Some("xforce=1")));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_client_is_detached_but_typing_keeps_it() {
        let (client, mut user) = tokio::io::duplex(1024);
        let (qemu, mut guest) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(60);
        let session = tokio::spawn(pump(client, qemu, Some(idle)));
        for _ in 0..3 {
            tokio::time::sleep(idle / 2).await;
            user.write_all(b"x").await.expect("type");
            let mut got = [0u8; 1];
            guest.read_exact(&mut got).await.expect("guest reads");
            guest
                .write_all(b"chatty guest")
                .await
                .expect("guest writes");
        }
        assert!(!session.is_finished(), "typing keeps the session");
        assert_eq!(session.await.expect("join"), End::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn guest_or_client_closing_ends_the_session() {
        let (client, user) = tokio::io::duplex(64);
        let (qemu, guest) = tokio::io::duplex(64);
        drop(guest);
        assert_eq!(pump(client, qemu, None).await, End::Guest);
        drop(user);
        let (client, user) = tokio::io::duplex(64);
        let (qemu, _guest) = tokio::io::duplex(64);
        drop(user);
        let end = pump(client, qemu, Some(Duration::from_secs(5))).await;
        assert_eq!(end, End::Client, "the client's EOF ends the session");
    }
}
