//! `web`: what vmd-web adds in front of vmd's socket (issue 10).
//!
//! - REST overhead: `GET /api/v1/vms/NAME` with a bearer token through vmd-web, interleaved
//!   call by call with the floor, `vm.get` as JSON-RPC over HTTP POST on vmd's socket. Both
//!   clients keep their connection alive; vmd-web itself opens one socket connection per call
//!   to vmd, so the one-connection-per-call `vm.get` is reported too. The goal: at most 1 ms
//!   added at p50.
//! - VNC throughput: whole-screen Raw updates of a running VM (a blank disk: QEMU's VNC server
//!   serves the firmware's screen from the start, no guest boot needed) through vmd-web's
//!   WebSocket, opened with a `vm.console_ticket`, against the floor, vmd's socket relay.
//!   QEMU's own VNC socket sits in vmd's private run directory and is not measured.

mod http;
mod server;
mod vnc;

use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use self::http::KeepAlive;
use self::server::Web;
use super::{create_vm, start_vm, stop_vm, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::report::{Report, Unit};

/// The VM every call reads.
const VM: &str = "w0";
/// Untimed calls each way first (connections, caches).
const WARM_UP: usize = 5;

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let bin = ctx.opts.vmd_web.as_ref().context("no vmd-web binary")?;
    let d = Daemon::start(ctx.opts, "web")?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    create_vm(&d.rpc, VM, SMALL)?;
    let web = Web::start(bin, &d)?;
    let token = d.rpc.call("token.create", json!([{"name": "bench"}]))?;
    let token = token["token"].as_str().context("token.create: no token")?;
    rest(ctx, &d, &web, token, report)?;
    start_vm(&d.rpc, VM)?;
    let screen = vnc(ctx, &d, &web, report);
    stop_vm(&d.rpc, VM, true)?;
    screen
}

fn rest(ctx: &Ctx, d: &Daemon, web: &Web, token: &str, report: &mut Report) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(&web.addr).context("connecting to vmd-web")?;
    tcp.set_nodelay(true)?;
    let mut rest = KeepAlive::new(tcp);
    let rest_head = format!(
        "GET /api/v1/vms/{VM} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n",
        web.addr
    );
    let mut rpc = KeepAlive::new(UnixStream::connect(&d.socket)?);
    let rpc_head = "POST / HTTP/1.1\r\nhost: vmd\r\ncontent-type: application/json\r\n";
    let rpc_body = json!({"jsonrpc": "2.0", "id": 1, "method": "vm.get", "params": [VM]});
    let rpc_body = rpc_body.to_string();
    for i in 0..WARM_UP + ctx.opts.web_calls {
        let (t_rest, answer) = timed(|| rest.request(&rest_head, b""))?;
        check_vm("REST", answer)?;
        let (t_rpc, answer) = timed(|| rpc.request(rpc_head, rpc_body.as_bytes()))?;
        check_vm("JSON-RPC", answer)?;
        let (t_conn, _) = timed(|| d.rpc.call("vm.get", json!([VM])))?;
        if i >= WARM_UP {
            record_rest(report, t_rest, t_rpc, t_conn);
        }
    }
    note_percentiles(report);
    Ok(())
}

fn record_rest(report: &mut Report, rest: f64, rpc: f64, conn: f64) {
    let what = "GET /api/v1/vms/NAME via vmd-web, bearer, keep-alive";
    report.sample("web.rest.vm_get", Unit::Ms, what, rest);
    let what = "vm.get JSON-RPC POST on vmd's socket, keep-alive (floor)";
    report.sample("web.rpc.vm_get", Unit::Ms, what, rpc);
    let what = "vm.get, one socket connection per call (what vmd-web does)";
    report.sample("web.rpc.vm_get.connect", Unit::Ms, what, conn);
}

/// Prints p50/p90 both ways and the added p50 (the table shows median and p99 only).
fn note_percentiles(report: &mut Report) {
    let (Some(rest), Some(rpc)) = (
        report.summary("web.rest.vm_get"),
        report.summary("web.rpc.vm_get"),
    ) else {
        return;
    };
    report.note(format!(
        "web: REST p50 {:.3} ms p90 {:.3} ms; JSON-RPC p50 {:.3} ms p90 {:.3} ms; added p50 {:.3} ms, p90 {:.3} ms",
        rest.median,
        rest.p90,
        rpc.median,
        rpc.p90,
        rest.median - rpc.median,
        rest.p90 - rpc.p90
    ));
}

/// Checks that a call answered 200 with the VM.
fn check_vm(how: &str, (status, body): (u16, Vec<u8>)) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&body);
    ensure!(status == 200, "{how}: HTTP {status}: {text:.300}");
    let v: Value = serde_json::from_slice(&body).with_context(|| format!("{how}: {text:.300}"))?;
    let vm = v.get("result").unwrap_or(&v);
    ensure!(vm["name"] == VM, "{how}: not VM {VM}: {text:.300}");
    Ok(())
}

/// Both viewers connected at once, their rounds interleaved; one MiB/s sample per round.
fn vnc(ctx: &Ctx, d: &Daemon, web: &Web, report: &mut Report) -> anyhow::Result<()> {
    let ticket = d
        .rpc
        .call("vm.console_ticket", json!([{"vm": VM, "kind": "vnc"}]))?;
    let ticket = ticket["ticket"].as_str().context("no ticket")?;
    let mut ws = vnc::via_web(&web.addr, VM, ticket).context("VNC through vmd-web")?;
    let mut sock = vnc::via_socket(&d.socket, VM).context("VNC on vmd's socket")?;
    let size = format!("{}x{}", ws.width, ws.height);
    let (mut ws_bytes, mut sock_bytes) = (0, 0);
    for i in 0..WARM_UP.min(2) + ctx.opts.vnc_rounds {
        let (t_ws, n_ws) = timed(|| ws.round())?;
        let (t_sock, n_sock) = timed(|| sock.round())?;
        if i < WARM_UP.min(2) {
            continue;
        }
        (ws_bytes, sock_bytes) = (ws_bytes + n_ws, sock_bytes + n_sock);
        let what = format!("full {size} Raw screen update over vmd-web's WebSocket");
        report.sample("web.vnc.ws", Unit::MibPerS, &what, mib_per_s(n_ws, t_ws));
        let what = "the same over vmd's socket relay (floor)";
        let rate = mib_per_s(n_sock, t_sock);
        report.sample("web.vnc.socket", Unit::MibPerS, what, rate);
    }
    let rounds = ctx.opts.vnc_rounds;
    report.detail(
        "web",
        json!({"vnc": {"rounds": rounds, "screen": size, "ws_bytes": ws_bytes, "socket_bytes": sock_bytes}}),
    );
    Ok(())
}

/// `bytes` received in `ms` milliseconds, in MiB/s.
fn mib_per_s(bytes: u64, ms: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / (ms / 1000.0)
}
