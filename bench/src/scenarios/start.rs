//! `start`: `vm.start` until QMP `running` and `vm.stop --force` until the process is gone,
//! interleaved with the floor (the same QEMU argv started directly until `running`, then
//! `quit` until it has exited). One untimed warm-up of each first (page cache, first exec);
//! during it the floor's argv is checked against the one vmd really ran (`/proc/PID/cmdline`).
//! vmd's RSS before and after the cycles shows whether a start/stop cycle leaks.

use anyhow::{bail, Context};

use super::{create_vm, pid_of, start_vm, stop_vm, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::floor::{argv_difference, Floor, Spec};
use crate::procfs;
use crate::report::{Report, Unit};

const VM: &str = "s0";

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "start")?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    create_vm(&d.rpc, VM, SMALL)?;
    let floor = warm_up(&d, ctx, report)?;
    let reps = ctx.opts.reps as f64;
    let (rss_before, cpu_before) = (d.rss_kib()?, procfs::cpu_ms(d.pid())?);
    let mut alive_after_stop = 0;
    for _ in 0..ctx.opts.reps {
        alive_after_stop += usize::from(cycle(&d, &floor, report)?);
    }
    let cpu = (procfs::cpu_ms(d.pid())? - cpu_before) / reps;
    let what = "vmd's own CPU time (user+sys) per start+stop cycle";
    report.sample("start.vmd_cpu", Unit::Ms, what, cpu);
    let growth = d.rss_kib()?.saturating_sub(rss_before) as f64 / reps;
    let what = "vmd VmRSS growth per start+stop cycle (a leak shows here)";
    report.sample("rss.per_start_stop", Unit::Kib, what, growth);
    let what = "QEMUs still alive when vm.stop force returned";
    report.sample(
        "stop.force.alive_after",
        Unit::Count,
        what,
        alive_after_stop as f64,
    );
    if alive_after_stop > 0 {
        bail!("{alive_after_stop} QEMUs were still alive when vm.stop force returned");
    }
    Ok(())
}

/// One repetition: vmd start and forced stop, then the floor's; true if vmd's QEMU was still
/// alive when the stop returned.
fn cycle(d: &Daemon, floor: &Floor, report: &mut Report) -> anyhow::Result<bool> {
    let (t, vm) = timed(|| start_vm(&d.rpc, VM))?;
    report.sample("start", Unit::Ms, "vm.start until QMP running", t);
    let pid = pid_of(&vm)?;
    let (t, _) = timed(|| stop_vm(&d.rpc, VM, true))?;
    report.sample(
        "stop.force",
        Unit::Ms,
        "vm.stop force until the process is gone",
        t,
    );
    let alive = procfs::is_alive(pid);
    let (t, running) = timed(|| floor.start())?;
    report.sample(
        "floor.start",
        Unit::Ms,
        "same argv spawned directly until QMP running",
        t,
    );
    let (t, _) = timed(|| running.quit())?;
    report.sample("floor.quit", Unit::Ms, "QMP quit until waitpid", t);
    Ok(alive)
}

/// Starts and stops both once, compares the argv, and returns the floor.
fn warm_up(d: &Daemon, ctx: &Ctx, report: &mut Report) -> anyhow::Result<Floor> {
    let vm = start_vm(&d.rpc, VM)?;
    let vmd_argv = procfs::cmdline(pid_of(&vm)?);
    stop_vm(&d.rpc, VM, true)?;
    let spec = Spec {
        name: VM.into(),
        cpus: vm["cpus"].as_u64().context("cpus")? as u32,
        memory_mib: vm["memory_mib"].as_u64().context("memory_mib")?,
        accel: vm["accelerator"].as_str().unwrap_or("tcg").into(),
    };
    let floor = Floor::new(&spec, &ctx.fixtures.small)?;
    floor.start()?.quit()?;
    match argv_difference(&vmd_argv, d.dir(), &floor.args(), floor.dir()) {
        None => {
            report.note("floor argv checked: identical to vmd's QEMU argv (directories masked)")
        }
        Some(diff) => report.note(format!("floor argv differs from vmd's QEMU argv: {diff}")),
    }
    Ok(floor)
}
