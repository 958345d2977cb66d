//! `ls`: `vm.list` over the socket and `vmctl ls --output json` as a whole process (spawn,
//! connect, call, print, exit) with 10, 100 and 1000 defined VMs; one RPC round trip
//! (`system.info`, `vm.get`); and `vmctl --version`, the process cost without any daemon.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{create_many, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::report::{Report, Unit};

/// Parallel clients that define the VMs (set-up only).
const SETUP_THREADS: usize = 4;

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "ls")?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    let mut defined = 0;
    for &count in &ctx.opts.list_counts {
        let names: Vec<String> = (defined..count).map(|i| format!("v{i:04}")).collect();
        create_many(&d.rpc, &names, SMALL, SETUP_THREADS)?;
        defined = count;
        if count == ctx.opts.list_counts[0] {
            round_trips(ctx, &d, report)?;
        }
        for _ in 0..ctx.opts.reps {
            let (t, vms) = timed(|| d.rpc.call("vm.list", json!([])))?;
            check_len(&vms, count)?;
            report.sample(
                &format!("list.rpc.{count}"),
                Unit::Ms,
                &format!("vm.list, {count} VMs"),
                t,
            );
            let (t, vms) = timed(|| vmctl_ls(&ctx.opts.vmctl, &d.socket))?;
            check_len(&vms, count)?;
            let what = format!("vmctl ls --output json process, {count} VMs");
            report.sample(&format!("list.vmctl.{count}"), Unit::Ms, &what, t);
        }
    }
    Ok(())
}

fn round_trips(ctx: &Ctx, d: &Daemon, report: &mut Report) -> anyhow::Result<()> {
    for _ in 0..ctx.opts.reps {
        let (t, _) = timed(|| d.rpc.call("system.info", json!([])))?;
        report.sample(
            "rpc.system_info",
            Unit::Ms,
            "system.info round trip (connect, POST, answer)",
            t,
        );
        let (t, _) = timed(|| d.rpc.call("vm.get", json!(["v0000"])))?;
        report.sample("rpc.vm_get", Unit::Ms, "vm.get round trip", t);
        let (t, _) = timed(|| run_vmctl(&ctx.opts.vmctl, &["--version"]))?;
        report.sample(
            "vmctl.version",
            Unit::Ms,
            "vmctl --version process (no daemon)",
            t,
        );
    }
    Ok(())
}

fn vmctl_ls(vmctl: &Path, socket: &Path) -> anyhow::Result<Value> {
    let socket = socket.to_str().context("socket path is not UTF-8")?;
    let out = run_vmctl(vmctl, &["--socket", socket, "ls", "--output", "json"])?;
    serde_json::from_slice(&out).context("vmctl ls printed no JSON")
}

fn run_vmctl(vmctl: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(vmctl)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", vmctl.display()))?;
    if !out.status.success() {
        bail!(
            "vmctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn check_len(vms: &Value, count: usize) -> anyhow::Result<()> {
    let len = vms.as_array().map_or(0, Vec::len);
    if len != count {
        bail!("listed {len} VMs, expected {count}");
    }
    Ok(())
}
