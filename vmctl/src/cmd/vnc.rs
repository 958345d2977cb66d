//! `vmctl vnc NAME`: the VNC endpoint of a running VM, a per-VM Unix socket (`vm.get`).
//!
//! Prints the socket path (JSON: `{"name": …, "vnc_socket": …}`); in table mode a one-line
//! hint on stderr says how to connect. A VM without a process has no endpoint (exit 4).

use serde::Serialize;
use vm_proto::api::VmdApiClient;
use vm_proto::types::Vm;
use vm_proto::{ApiError, ErrorCode};

use std::net::SocketAddr;

use tokio::net::TcpListener;
use vm_proto::VNC_UPGRADE;

use super::Ctx;
use crate::cli::VncArgs;
use crate::console::upgrade;
use crate::error::CliError;

/// The JSON answer.
#[derive(Debug, Serialize)]
struct Endpoint {
    name: String,
    vnc_socket: String,
}

/// Relays the VM's screen on `--listen`, or prints its VNC socket.
pub async fn run(ctx: &Ctx, args: VncArgs) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_get(args.name).await?;
    if let Some(addr) = args.listen {
        return relay(ctx, &vm.name, addr).await;
    }
    let endpoint = endpoint(vm)?;
    ctx.out.object(&endpoint, |e| e.vnc_socket.clone())?;
    if !ctx.out.is_json() && !ctx.out.quiet {
        eprintln!("{}", hint(&endpoint.vnc_socket));
    }
    Ok(())
}

/// The VM's endpoint, or `wrong_state` when it has none (no QEMU process).
fn endpoint(vm: Vm) -> Result<Endpoint, CliError> {
    match vm.vnc_socket {
        Some(vnc_socket) => Ok(Endpoint {
            name: vm.name,
            vnc_socket,
        }),
        None => Err(ApiError::new(
            ErrorCode::WrongState,
            format!("vm {} is {}; start it first", vm.name, vm.state),
        )
        .with_hint(format!("vmctl start {}", vm.name))
        .into()),
    }
}

/// Accepts VNC viewers on `addr` (loopback only) and joins each to the VM's screen through
/// vmd, until Ctrl-C.
async fn relay(ctx: &Ctx, vm: &str, addr: SocketAddr) -> Result<(), CliError> {
    if !addr.ip().is_loopback() {
        return Err(CliError::invalid(format!(
            "--listen {addr}: only loopback addresses (127.0.0.1, ::1); the relay has no authentication of its own"
        )));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    if !ctx.out.quiet {
        eprintln!(
            "relaying the screen of {vm} on {local}: connect a VNC viewer there (Ctrl-C ends)"
        );
    }
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|e| CliError::invalid(format!("accept failed: {e}")))?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let stream = upgrade(&ctx.socket, ctx.token.as_ref(), vm, ("vnc", VNC_UPGRADE)).await?;
        tokio::spawn(async move {
            let (mut tcp, mut stream) = (tcp, stream);
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
        });
    }
}

/// How to connect a viewer to `path`.
fn hint(path: &str) -> String {
    format!(
        "connect with: vncviewer {path} (TigerVNC), or expose it on TCP with \
         socat TCP-LISTEN:5901,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:{path}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::vm::tests::sample;
    use vm_proto::types::VmState;

    #[test]
    fn a_running_vm_has_an_endpoint() {
        let vm = Vm {
            state: VmState::Running,
            vnc_socket: Some("/run/vmd/vms/7/vnc".into()),
            ..sample()
        };
        let json = serde_json::to_string(&endpoint(vm).expect("running")).expect("json");
        assert_eq!(json, r#"{"name":"web1","vnc_socket":"/run/vmd/vms/7/vnc"}"#);
        assert!(hint("/s").starts_with("connect with: vncviewer /s "));
    }

    #[test]
    fn a_stopped_vm_is_a_conflict() {
        let err = endpoint(sample()).expect_err("stopped");
        assert_eq!(err.exit_code(), 4);
        assert_eq!(err.to_string(), "vm web1 is stopped; start it first");
        assert_eq!(err.hint(), Some("vmctl start web1"));
    }
}
