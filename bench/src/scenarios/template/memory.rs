//! The host memory of running guests: N cold-booted test guests at their ready marker, then
//! N clones of the template once each answered on its console. Each set runs at once; its
//! figure is the sum of the proportional set sizes (`Pss` in `/proc/PID/smaps_rollup`) of
//! its QEMUs, so pages that clones share (the template's RAM file in the page cache, mapped
//! privately by each) count once in total, and pages a process owns count fully.
//!
//! The cold set goes first: if the machine cannot boot N guests at once within the deadline
//! (or lacks the memory for them), N is halved, the output says so, and the clones use the
//! same N.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;

use super::console::Console;
use super::{create_clone, ANSWER_DEADLINE};
use crate::daemon::Daemon;
use crate::fixtures::GUEST;
use crate::procfs;
use crate::report::{Report, Unit};
use crate::rpc::Client;
use crate::scenarios::{create_vm, ms, pid_of, remove_vm, start_vm, stop_vm, Ctx};

/// How long N cold guests booting at once may take to all be ready.
const ALL_READY_DEADLINE: Duration = Duration::from_secs(900);
/// Host memory one running 128 MiB guest needs at most, MiB (guest RAM plus QEMU).
const GUEST_HOST_MIB: u64 = 400;
/// How often the console logs are polled while guests boot.
const POLL: Duration = Duration::from_millis(500);

/// Runs the memory part.
pub fn run(ctx: &Ctx, d: &Daemon, report: &mut Report) -> anyhow::Result<()> {
    let mut n = fitting(ctx.opts.template_guests, report)?;
    loop {
        match cold_set(d, n, report) {
            Ok(()) => break,
            Err(err) if n > 1 => {
                report.note(format!(
                    "template: {n} cold guests at once failed ({err:#}); measuring {} instead",
                    n / 2
                ));
                n /= 2;
            }
            Err(err) => return Err(err),
        }
    }
    clone_set(d, n, report)
}

/// `wanted`, or fewer when the host's available memory cannot hold that many guests.
fn fitting(wanted: usize, report: &mut Report) -> anyhow::Result<usize> {
    let available = procfs::meminfo_kib("MemAvailable")? / 1024;
    let fit = usize::try_from(available / GUEST_HOST_MIB).unwrap_or(usize::MAX);
    if fit >= wanted {
        return Ok(wanted);
    }
    let n = fit.max(1);
    report.note(format!(
        "template: {available} MiB available fits {n} guests, not {wanted}: measuring {n}"
    ));
    Ok(n)
}

/// N new VMs from the image started at once; PSS once all printed their ready marker.
fn cold_set(d: &Daemon, n: usize, report: &mut Report) -> anyhow::Result<()> {
    let names: Vec<String> = (0..n).map(|i| format!("mcold{i:02}")).collect();
    let started = Instant::now();
    let result = boot_all(&d.rpc, &names).and_then(|pids| {
        let what = format!("cold: {n} started at once until all printed GUEST-READY");
        report.sample(
            "template.cold.all_ready",
            Unit::Ms,
            &what,
            ms(started.elapsed()),
        );
        let what = format!("PSS of each of {n} cold-booted guests' QEMUs at GUEST-READY");
        record(report, "template.pss.cold", &what, &pids)
    });
    discard(&d.rpc, &names);
    result
}

/// N clones started at once; PSS once each answered on its console.
fn clone_set(d: &Daemon, n: usize, report: &mut Report) -> anyhow::Result<()> {
    let names: Vec<String> = (0..n).map(|i| format!("mclone{i:02}")).collect();
    let started = Instant::now();
    let result = restore_all(d, &names).and_then(|pids| {
        let what = format!("clone: {n} started at once until all answered");
        report.sample(
            "template.clone.all_answered",
            Unit::Ms,
            &what,
            ms(started.elapsed()),
        );
        let what = format!("PSS of each of {n} running clones' QEMUs after they answered");
        record(report, "template.pss.clones", &what, &pids)
    });
    discard(&d.rpc, &names);
    result
}

/// Creates and starts every VM, then waits until each printed `GUEST-READY`; their pids.
fn boot_all(rpc: &Client, names: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut pids = Vec::with_capacity(names.len());
    for name in names {
        create_vm(rpc, name, GUEST)?;
        pids.push(pid_of(&start_vm(rpc, name)?)?);
    }
    let deadline = Instant::now() + ALL_READY_DEADLINE;
    let mut waiting: Vec<&String> = names.iter().collect();
    while !waiting.is_empty() {
        if Instant::now() > deadline {
            bail!("{} not ready within {ALL_READY_DEADLINE:?}", waiting.len());
        }
        std::thread::sleep(POLL);
        waiting.retain(|name| !ready(rpc, name));
    }
    Ok(pids)
}

fn ready(rpc: &Client, name: &str) -> bool {
    rpc.call("vm.logs", json!([name, 1 << 20]))
        .is_ok_and(|logs| logs["text"].as_str().unwrap_or("").contains("GUEST-READY"))
}

/// Creates and starts every clone, then asks each on its console; their pids.
fn restore_all(d: &Daemon, names: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut pids = Vec::with_capacity(names.len());
    for name in names {
        create_clone(d, name)?;
        pids.push(pid_of(&start_vm(&d.rpc, name)?)?);
    }
    for name in names {
        let mut console = Console::attach(&d.socket, name)?;
        console.ask(Instant::now() + ANSWER_DEADLINE)?;
    }
    Ok(pids)
}

/// One sample per QEMU under `name`, and their sum under `name.total`.
fn record(report: &mut Report, name: &str, what: &str, pids: &[u32]) -> anyhow::Result<()> {
    let mut total = 0.0;
    for pid in pids {
        let mib = procfs::pss_kib(*pid)? as f64 / 1024.0;
        report.sample(name, Unit::Mib, what, mib);
        total += mib;
    }
    let what = format!("sum of the above ({} QEMUs)", pids.len());
    report.sample(&format!("{name}.total"), Unit::Mib, &what, total);
    Ok(())
}

/// Forced stop and removal of every VM in `names` that exists (errors are ignored: this is
/// clean-up, also after a failure).
fn discard(rpc: &Client, names: &[String]) {
    for name in names {
        let _ = stop_vm(rpc, name, true);
        let _ = remove_vm(rpc, name);
    }
}
