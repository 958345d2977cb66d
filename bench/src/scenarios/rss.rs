//! `rss`: the daemon's resident set (`VmRSS`) idle right after READY=1, with VMs defined,
//! and with 20 and 50 of them running (started one by one), as totals and as growth per
//! running VM over the defined-but-stopped state; then after every VM is stopped again.

use std::time::Duration;

use super::{create_many, start_vm, stop_vm, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::report::{Report, Unit};

/// Idle samples, and the pause between them.
const IDLE_SAMPLES: usize = 5;
const IDLE_GAP: Duration = Duration::from_millis(100);

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "rss")?;
    for _ in 0..IDLE_SAMPLES {
        std::thread::sleep(IDLE_GAP);
        report.sample(
            "rss.idle",
            Unit::Mib,
            "vmd VmRSS right after READY=1, no images, no VMs",
            mib(d.rss_kib()?),
        );
    }
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    let most = ctx.opts.rss_counts.iter().copied().max().unwrap_or(0);
    let names: Vec<String> = (0..most).map(|i| format!("r{i:02}")).collect();
    create_many(&d.rpc, &names, SMALL, 1)?;
    let defined = d.rss_kib()?;
    report.sample(
        &format!("rss.defined.{most}"),
        Unit::Mib,
        &format!("VmRSS with {most} stopped VMs"),
        mib(defined),
    );
    let mut running = 0;
    for &count in &ctx.opts.rss_counts {
        for name in &names[running..count] {
            start_vm(&d.rpc, name)?;
        }
        running = count;
        let now = d.rss_kib()?;
        report.sample(
            &format!("rss.running.{count}"),
            Unit::Mib,
            &format!("VmRSS with {count} running VMs"),
            mib(now),
        );
        let per_vm = now.saturating_sub(defined) as f64 / count as f64;
        let what = format!("VmRSS growth per running VM ({count} running vs stopped)");
        report.sample(&format!("rss.per_vm.{count}"), Unit::Kib, &what, per_vm);
    }
    for name in &names[..running] {
        stop_vm(&d.rpc, name, true)?;
    }
    report.sample(
        "rss.after_stop",
        Unit::Mib,
        "VmRSS once every VM is stopped again",
        mib(d.rss_kib()?),
    );
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
