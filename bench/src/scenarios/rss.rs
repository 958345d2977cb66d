//! `rss`: the daemon's resident set (`VmRSS`) idle right after READY=1, with VMs defined,
//! and with 20 and 50 of them running (started one by one), as totals and as growth per
//! running VM over the defined-but-stopped state; then after every VM is stopped again.
//! The idle figure is split into anonymous and file-backed pages (`RssAnon`, `RssFile`).

use std::time::Duration;

use super::{create_many, start_vm, stop_vm, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::procfs;
use crate::report::{Report, Unit};

/// Idle samples, and the pause between them.
const IDLE_SAMPLES: usize = 5;
const IDLE_GAP: Duration = Duration::from_millis(100);

/// The idle figure's parts: `/proc/PID/status` field and what it is.
const IDLE_PARTS: [(&str, &str); 2] = [
    (
        "RssAnon",
        "of which anonymous (heap, stacks): vmd's own memory",
    ),
    (
        "RssFile",
        "of which file-backed (mapped pages of the vmd binary and libc)",
    ),
];

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "rss")?;
    idle(&d, report)?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    let most = ctx.opts.rss_counts.iter().copied().max().unwrap_or(0);
    let names: Vec<String> = (0..most).map(|i| format!("r{i:02}")).collect();
    create_many(&d.rpc, &names, SMALL, 1)?;
    let defined = d.rss_kib()?;
    let what = format!("VmRSS with {most} stopped VMs");
    report.sample(
        &format!("rss.defined.{most}"),
        Unit::Mib,
        &what,
        mib(defined),
    );
    let mut running = 0;
    for &count in &ctx.opts.rss_counts {
        for name in &names[running..count] {
            start_vm(&d.rpc, name)?;
        }
        running = count;
        record_running(&d, count, defined, report)?;
    }
    for name in &names[..running] {
        stop_vm(&d.rpc, name, true)?;
    }
    let what = "VmRSS once every VM is stopped again";
    report.sample("rss.after_stop", Unit::Mib, what, mib(d.rss_kib()?));
    Ok(())
}

fn idle(d: &Daemon, report: &mut Report) -> anyhow::Result<()> {
    for _ in 0..IDLE_SAMPLES {
        std::thread::sleep(IDLE_GAP);
        let what = "vmd VmRSS right after READY=1, no images, no VMs";
        report.sample("rss.idle", Unit::Mib, what, mib(d.rss_kib()?));
    }
    for (field, what) in IDLE_PARTS {
        let kib = procfs::status_kib(d.pid(), field)?;
        let name = format!("rss.idle.{}", field["Rss".len()..].to_lowercase());
        report.sample(&name, Unit::Mib, what, mib(kib));
    }
    Ok(())
}

/// Records the RSS with `count` running VMs and the growth per VM over `defined`.
fn record_running(
    d: &Daemon,
    count: usize,
    defined: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let now = d.rss_kib()?;
    let what = format!("VmRSS with {count} running VMs");
    report.sample(&format!("rss.running.{count}"), Unit::Mib, &what, mib(now));
    let per_vm = now.saturating_sub(defined) as f64 / count as f64;
    let what = format!("VmRSS growth per running VM ({count} running vs stopped)");
    report.sample(&format!("rss.per_vm.{count}"), Unit::Kib, &what, per_vm);
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
