//! `chaos`: `kill -9` of vmd at random points of a create/start/stop/wipe/rm mix while
//! guests run, then a restart on the same directories and the invariants of [`invariants`]
//! after each restart. Kill points come from a seeded RNG (the seed is printed and stored):
//! each round kills vmd a random 0–80 ms after the k-th request of the mix (k random in 1–24),
//! so kills land inside operations, e.g. between a QEMU's spawn and the store of its pid.
//!
//! Found orphan QEMUs are counted, then killed by pid so that rounds stay independent; the
//! daemon's teardown kills every QEMU whose command line names the group's directory, so none
//! outlives the group even on error. Violations fail the group only with `--chaos-strict`.

pub mod invariants;
pub mod mix;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::json;

use super::{ms, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::GUEST;
use crate::procfs;
use crate::report::{Report, Unit};
use crate::rng::Rng;
use invariants::Violations;
use mix::{Outcomes, Pool, Round, CHAOS_MEMORY_MIB, KINDS};

/// Client threads of the mix.
const WORKERS: u64 = 3;
/// How long a round waits for its k-th request before killing anyway.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// Orphan QEMUs described in the output and JSON at most.
const MAX_EXAMPLES: usize = 10;

/// Totals over all rounds.
#[derive(Default)]
struct Totals {
    violations: Violations,
    ops: [Outcomes; 5],
    adopt_ms: Vec<f64>,
    qemus: Vec<f64>,
    startup_issues: std::collections::BTreeMap<String, u64>,
    panics: Vec<String>,
    /// Descriptions of the orphan QEMUs found (the first few).
    orphans: Vec<String>,
    rounds_with_violations: Vec<u64>,
    log_end: u64,
}

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (kills, guests, seed) = (ctx.opts.chaos_kills, ctx.opts.chaos_guests, ctx.opts.seed);
    eprintln!("vmd-bench: chaos: {kills} kills, {guests} guests, seed {seed}");
    let mut d = Daemon::start(ctx.opts, "chaos")?;
    ctx.fixtures.import(&d.rpc, &[GUEST])?;
    let pool = set_up(&d, guests)?;
    let scratch = tempfile::Builder::new()
        .prefix("vmd-bench-chaos-")
        .tempdir()?;
    crate::cleanup::register_dir(scratch.path());
    let mut rng = Rng::new(seed);
    let mut t = Totals {
        violations: invariants::none(),
        ..Totals::default()
    };
    for round in 0..kills {
        one_round(
            &mut d,
            &pool,
            &mut rng,
            round as u64,
            scratch.path(),
            &mut t,
        )
        .with_context(|| format!("chaos round {round}"))?;
        if (round + 1) % 10 == 0 {
            eprintln!("vmd-bench: chaos: {} kills done", round + 1);
        }
    }
    record(report, ctx, &t, seed);
    Ok(())
}

/// Creates and starts the guests; returns the pool of names.
fn set_up(d: &Daemon, guests: usize) -> anyhow::Result<Pool> {
    let pool = Pool {
        guests: (0..guests).map(|i| format!("g{i}")).collect(),
        churn: (0..(guests / 2).max(4)).map(|i| format!("c{i}")).collect(),
    };
    for name in &pool.guests {
        let spec = json!([{"name": name, "image": GUEST, "memory_mib": CHAOS_MEMORY_MIB}]);
        d.rpc.call("vm.create", spec)?;
        d.rpc.call("vm.start", json!([name]))?;
    }
    Ok(pool)
}

/// One kill, restart and check.
fn one_round(
    d: &mut Daemon,
    pool: &Pool,
    rng: &mut Rng,
    round: u64,
    scratch: &std::path::Path,
    t: &mut Totals,
) -> anyhow::Result<()> {
    let (k, delay) = (rng.range(1, 24) as usize, rng.range(0, 80));
    let outcomes = mix_then_kill(d, pool, rng.next_u64(), k, Duration::from_millis(delay));
    mix::add(&mut t.ops, &outcomes);
    let mut v = invariants::none();
    let db = d.dir().join("state/vmd.db");
    if !invariants::db_ok(&db, scratch)? {
        *v.entry("db_integrity").or_default() += 1;
    }
    let adopt = d.restart().context("restarting vmd after the kill")?;
    t.adopt_ms.push(ms(adopt));
    check(d, &mut v, t)?;
    let found: u64 = v.values().sum();
    if found > 0 {
        t.rounds_with_violations.push(round);
        let what: Vec<String> = v
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        eprintln!(
            "vmd-bench: chaos round {round} (kill {delay} ms after request {k}): {}",
            what.join(" ")
        );
    }
    for (name, n) in v {
        *t.violations.entry(name).or_default() += n;
    }
    Ok(())
}

/// Runs the mix until `k` requests were sent, waits `delay`, kills vmd; returns outcomes.
fn mix_then_kill(
    d: &mut Daemon,
    pool: &Pool,
    seed: u64,
    k: usize,
    delay: Duration,
) -> [Outcomes; 5] {
    let rpc = d.rpc.clone();
    let round = Round::new(&rpc, pool);
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let round = &round;
            s.spawn(move || round.work(Rng::stream(seed, w)));
        }
        let deadline = Instant::now() + SEND_DEADLINE;
        while round.sent.load(Ordering::SeqCst) < k && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(delay);
        round.stop.store(true, Ordering::SeqCst);
        d.kill9();
    });
    round.outcomes()
}

/// The checks after a restart; orphan QEMUs are killed once counted.
fn check(d: &Daemon, v: &mut Violations, t: &mut Totals) -> anyhow::Result<()> {
    let info = d.rpc.call("system.info", json!([]))?;
    for issue in info["issues"].as_array().into_iter().flatten() {
        let kind = issue["kind"].as_str().unwrap_or("?").to_string();
        *t.startup_issues.entry(kind).or_default() += 1;
    }
    let (list, transit) = invariants::settle(&d.rpc)?;
    *v.entry("stuck_transitional").or_default() += transit;
    let qemus = invariants::qemus(&d.dir().join("run/vms"));
    t.qemus.push(qemus.len() as f64);
    for (pid, desc) in invariants::check_processes(&list, &qemus, v) {
        procfs::signal(pid, Signal::SIGKILL);
        if t.orphans.len() < MAX_EXAMPLES {
            eprintln!("vmd-bench: chaos: orphan {desc}; killed");
            t.orphans.push(desc);
        }
    }
    invariants::check_overlays(&list, &d.dir().join("state/overlays"), v);
    let (panics, end) = crate::daemon::panics(&d.log_path(), t.log_end);
    *v.entry("panic").or_default() += panics.len() as u64;
    t.panics.extend(panics);
    t.log_end = end;
    Ok(())
}

/// Metrics, details and the verdict.
fn record(report: &mut Report, ctx: &Ctx, t: &Totals, seed: u64) {
    let what = "chaos: vmd spawn until READY=1 after kill -9 (re-adoption included)";
    for a in &t.adopt_ms {
        report.sample("chaos.adopt", Unit::Ms, what, *a);
    }
    for q in &t.qemus {
        let what = "chaos: QEMUs of this vmd alive after each restart";
        report.sample("chaos.qemus", Unit::Count, what, *q);
    }
    for (name, meaning) in invariants::INVARIANTS {
        let n = t.violations.get(name).copied().unwrap_or(0) as f64;
        report.sample(&format!("chaos.inv.{name}"), Unit::Count, meaning, n);
    }
    for (kind, o) in KINDS.iter().zip(&t.ops) {
        let what = format!(
            "chaos: vm.{kind} attempted {} / ok {} / refused {} / cut by the kill {}",
            o.attempted, o.ok, o.refused, o.cut
        );
        report.sample(
            &format!("chaos.ops.{kind}"),
            Unit::Count,
            &what,
            o.attempted as f64,
        );
    }
    report.detail("chaos", details(ctx, t, seed));
    let total: u64 = t.violations.values().sum();
    let summary = format!(
        "chaos: {total} invariant violations in {} of {} restarts (seed {seed})",
        t.rounds_with_violations.len(),
        t.adopt_ms.len()
    );
    match (total, ctx.opts.chaos_strict) {
        (0, _) => report.note(summary),
        (_, true) => report.fail(summary),
        (_, false) => report.note(format!("{summary}; not failing without --chaos-strict")),
    }
}

fn details(ctx: &Ctx, t: &Totals, seed: u64) -> serde_json::Value {
    let ops: serde_json::Map<String, serde_json::Value> = KINDS
        .iter()
        .zip(&t.ops)
        .map(|(k, o)| (k.to_string(), json!(o)))
        .collect();
    json!({
        "seed": seed,
        "kills": ctx.opts.chaos_kills,
        "guests": ctx.opts.chaos_guests,
        "restarts": t.adopt_ms.len(),
        "violations": t.violations,
        "rounds_with_violations": t.rounds_with_violations,
        "operations": ops,
        "startup_issues": t.startup_issues,
        "panics": t.panics,
        "orphan_examples": t.orphans,
        "adopt_ms": crate::stats::summarize(&t.adopt_ms),
    })
}
