//! `template`: warm templates (issue 14) side by side with cold boots, on one vmd.
//!
//! First the test guest is booted once and a template taken from it at its ready marker
//! (`template.create` is timed). Then, interleaved so background load hits both alike:
//! cold starts (a new VM from the image: `vm.start` until its serial shell answers a command,
//! which needs the whole boot) and clone starts (a new clone of the template: `vm.start`
//! until the restored shell answers). The shell's answer is read on the console through vmd;
//! a cold guest is asked once it printed `GUEST-READY` (its shell reads from then on), a clone
//! at once (it is at its prompt). Last, [`memory`]: the PSS of N cold-booted guests and of N
//! clones, each set running at once.

mod console;
mod memory;

use std::time::{Duration, Instant};

use serde_json::json;

use super::{create_vm, ms, remove_vm, start_vm, stop_vm, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::GUEST;
use crate::report::{Report, Unit};
use console::Console;

/// The template's name.
const TEMPLATE: &str = "warm";
/// The VM it is taken from.
const SOURCE: &str = "src";
/// Longest boot accepted for one guest (loaded cores under TCG are slow).
const BOOT_DEADLINE: Duration = Duration::from_secs(300);
/// Longest a guest at its prompt may take to answer.
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "template")?;
    ctx.fixtures.import(&d.rpc, &[GUEST])?;
    take_template(&d, report)?;
    let (cold, clones) = (ctx.opts.template_cold, ctx.opts.template_clones);
    for i in 0..cold.max(clones) {
        if i < cold {
            cold_sample(&d, i, report)?;
        }
        if i < clones {
            clone_sample(&d, i, report)?;
        }
    }
    memory::run(ctx, &d, report)
}

/// Boots the source, waits for its ready marker and takes the template.
fn take_template(d: &Daemon, report: &mut Report) -> anyhow::Result<()> {
    create_vm(&d.rpc, SOURCE, GUEST)?;
    start_vm(&d.rpc, SOURCE)?;
    let mut console = Console::attach(&d.socket, SOURCE)?;
    console.wait_for("GUEST-READY", Instant::now() + BOOT_DEADLINE)?;
    console.ask(Instant::now() + ANSWER_DEADLINE)?;
    drop(console);
    let params = json!([{"name": TEMPLATE, "from": SOURCE}]);
    let (t, _) = timed(|| d.rpc.call("template.create", params))?;
    let what = "template.create of a booted 128 MiB guest (pause, save, stop)";
    report.sample("template.create", Unit::Ms, what, t);
    Ok(())
}

/// A new VM from the image: `vm.start` until its shell answers (a whole boot).
fn cold_sample(d: &Daemon, i: usize, report: &mut Report) -> anyhow::Result<()> {
    let name = format!("cold{i}");
    create_vm(&d.rpc, &name, GUEST)?;
    let started = Instant::now();
    start_vm(&d.rpc, &name)?;
    let mut console = Console::attach(&d.socket, &name)?;
    console.wait_for("GUEST-READY", Instant::now() + BOOT_DEADLINE)?;
    console.ask(Instant::now() + ANSWER_DEADLINE)?;
    let what = "cold: vm.start of a new VM until its shell answers (boot, TCG)";
    report.sample(
        "template.cold.answer",
        Unit::Ms,
        what,
        ms(started.elapsed()),
    );
    drop(console);
    stop_vm(&d.rpc, &name, true)?;
    remove_vm(&d.rpc, &name).map(drop)
}

/// A new clone of the template: `vm.start` until its restored shell answers.
fn clone_sample(d: &Daemon, i: usize, report: &mut Report) -> anyhow::Result<()> {
    let name = format!("clone{i}");
    create_clone(d, &name)?;
    let started = Instant::now();
    let (t, _) = timed(|| start_vm(&d.rpc, &name))?;
    let mut console = Console::attach(&d.socket, &name)?;
    console.ask(Instant::now() + ANSWER_DEADLINE)?;
    let what = "clone: vm.start of a new clone until its shell answers";
    report.sample(
        "template.clone.answer",
        Unit::Ms,
        what,
        ms(started.elapsed()),
    );
    let what = "clone: vm.start alone (QEMU up, state restored, running)";
    report.sample("template.clone.start", Unit::Ms, what, t);
    drop(console);
    stop_vm(&d.rpc, &name, true)?;
    remove_vm(&d.rpc, &name).map(drop)
}

/// `vm.create` of a clone of the template.
fn create_clone(d: &Daemon, name: &str) -> anyhow::Result<()> {
    let params = json!([{"name": name, "template": TEMPLATE}]);
    d.rpc.call("vm.create", params).map(drop)
}
