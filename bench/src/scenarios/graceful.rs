//! `graceful`: a graceful `vm.stop` of a booted test guest. Each repetition creates a VM from
//! the test guest, starts it, polls `vm.logs` until `GUEST-READY` (the guest's ACPI daemon is
//! listening by then; the boot itself, ~10 s under TCG, is reported too), then times the stop
//! (ACPI power button, guest powers off, QEMU exits) and removes the VM.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::{create_vm, ms, remove_vm, start_vm, stop_vm, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::GUEST;
use crate::report::{Report, Unit};
use crate::rpc::Client;

/// Longest boot accepted (many loaded cores under TCG are slow).
const BOOT_DEADLINE: Duration = Duration::from_secs(180);
/// How often the console log is polled.
const POLL: Duration = Duration::from_millis(50);

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "graceful")?;
    ctx.fixtures.import(&d.rpc, &[GUEST])?;
    let mut forced = 0;
    for i in 0..ctx.opts.graceful_reps {
        let name = format!("g{i}");
        create_vm(&d.rpc, &name, GUEST)?;
        let started = Instant::now();
        start_vm(&d.rpc, &name)?;
        wait_ready(&d.rpc, &name)?;
        let boot = ms(started.elapsed());
        report.sample(
            "boot.guest_ready",
            Unit::Ms,
            "vm.start until GUEST-READY on the console (TCG)",
            boot,
        );
        let (t, _) = timed(|| stop_vm(&d.rpc, &name, false))?;
        report.sample(
            "stop.graceful",
            Unit::Ms,
            "vm.stop of a booted guest until QEMU is gone",
            t,
        );
        forced += usize::from(log_text(&d.rpc, &name)?.contains("forcing"));
        remove_vm(&d.rpc, &name)?;
    }
    report.sample(
        "stop.graceful.forced",
        Unit::Count,
        "graceful stops that vmd had to force",
        forced as f64,
    );
    Ok(())
}

fn wait_ready(rpc: &Client, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + BOOT_DEADLINE;
    loop {
        let text = log_text(rpc, name)?;
        if text.contains("GUEST-READY") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no GUEST-READY from {name} within {BOOT_DEADLINE:?}; console:\n{text}");
        }
        std::thread::sleep(POLL);
    }
}

fn log_text(rpc: &Client, name: &str) -> anyhow::Result<String> {
    let logs = rpc.call("vm.logs", json!([name, 1 << 20]))?;
    Ok(logs["text"].as_str().unwrap_or_default().to_string())
}
