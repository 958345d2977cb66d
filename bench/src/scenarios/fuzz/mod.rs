//! `fuzz`: a seeded request fuzzer against a live vmd over its Unix socket (stable Rust, no
//! cargo-fuzz). Input `i` is generated from `(seed, i)` alone ([`inputs::generate`] with the
//! mutation engine of [`mutate`]), so any input can be regenerated from the printed seed.
//! Several client threads send inputs, each bounded by a deadline ([`wire`]); after every
//! [`CHECK_EVERY`] inputs the main thread checks that vmd is alive with the same pid, answers
//! `system.info` within a deadline, has no panic in its log, and samples its RSS.
//!
//! On a failed check the recent inputs of every thread are written to
//! `vmd-bench-fuzz/` beside the bench binary (raw bytes, one file each) and their paths
//! printed; so are inputs that got no answer in time or a 5xx (at most a few of each).

pub mod corpus;
mod framing;
pub mod inputs;
pub mod mutate;
mod tally;
pub mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Ctx;
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::report::Report;
use crate::rng::Rng;
use inputs::{Input, Seeds};
use tally::Tally;
use wire::Outcome;

/// Client threads.
const THREADS: u64 = 4;
/// Inputs between two health checks.
const CHECK_EVERY: u64 = 1000;
/// Deadline of one input, and of `system.info` in a health check.
const DEADLINE: Duration = Duration::from_secs(5);
/// Inputs kept per thread for a reproducer.
const RECENT: usize = 16;
/// Suspicious inputs (timeouts, 5xx) saved at most, per reason.
const SAVE_AT_MOST: u64 = 10;
/// Largest seed image (bytes).
const IMAGE_CAP: usize = 256 << 10;

/// State shared by the client threads and the checker.
struct Shared<'a> {
    socket: PathBuf,
    seed: u64,
    total: u64,
    seeds: &'a Seeds,
    next: AtomicU64,
    done: AtomicU64,
    abort: AtomicBool,
    /// Client threads still running (a panicked one counts down too).
    active: AtomicU64,
    recent: Vec<Mutex<VecDeque<(u64, Input)>>>,
    saved: Mutex<Vec<String>>,
    repro_dir: PathBuf,
}

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (total, seed) = (ctx.opts.fuzz_inputs, ctx.opts.seed);
    eprintln!("vmd-bench: fuzz: {total} inputs, seed {seed}");
    let mut d = Daemon::start(ctx.opts, "fuzz")?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    let spec = json!([{"name": corpus::VM, "image": SMALL, "memory_mib": 64}]);
    d.rpc.call("vm.create", spec)?;
    d.rpc.call("vm.start", json!([corpus::VM]))?;
    let scratch = tempfile::Builder::new()
        .prefix("vmd-bench-fuzz-")
        .tempdir()?;
    crate::cleanup::register_dir(scratch.path());
    let images = corpus::images(scratch.path(), IMAGE_CAP)?;
    let seeds = inputs::seeds(images, ctx.opts.fuzz_kinds.clone());
    let shared = Shared {
        socket: d.socket.clone(),
        seed,
        total,
        seeds: &seeds,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        active: AtomicU64::new(THREADS),
        recent: (0..THREADS).map(|_| Mutex::new(VecDeque::new())).collect(),
        saved: Mutex::new(Vec::new()),
        repro_dir: repro_dir()?,
    };
    let before = tally::objects(&d.rpc)?;
    let mut t = Tally::new(d.rss_kib()?, crate::procfs::fd_count(d.pid()));
    let started = Instant::now();
    let failure = drive(&shared, &mut d, &mut t);
    t.elapsed = started.elapsed();
    let after = tally::objects(&d.rpc).unwrap_or_default();
    let saved = shared
        .saved
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    t.record(report, seed, &before, &after, &saved);
    if let Some(why) = failure {
        let files = dump_recent(&shared);
        report.fail(format!(
            "fuzz: {why} (seed {seed}); the {} most recent inputs are in {} (*-recent.bin)",
            files.len(),
            shared.repro_dir.display(),
        ));
    }
    Ok(())
}

/// Runs the client threads and the checks; returns why it stopped early, if it did.
fn drive(shared: &Shared, d: &mut Daemon, t: &mut Tally) -> Option<String> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|w| s.spawn(move || worker(shared, w as usize)))
            .collect();
        let failure = watch(shared, d, t);
        if failure.is_some() {
            shared.abort.store(true, Ordering::SeqCst);
        }
        let mut panicked = 0;
        for w in workers {
            match w.join() {
                Ok(part) => t.merge(part),
                Err(_) => panicked += 1,
            }
        }
        let failure =
            failure.or((panicked > 0).then(|| format!("{panicked} fuzz threads panicked")));
        failure.or_else(|| check(d, t, shared.done.load(Ordering::SeqCst)).err())
    })
}

/// One client thread: inputs until all are taken; returns its tally.
fn worker(shared: &Shared, w: usize) -> tally::Counts {
    let _active = Active(&shared.active);
    let mut counts = tally::Counts::default();
    while !shared.abort.load(Ordering::SeqCst) {
        let i = shared.next.fetch_add(1, Ordering::SeqCst);
        if i >= shared.total {
            break;
        }
        let input = inputs::generate(shared.seeds, &mut Rng::stream(shared.seed, i));
        let outcome = wire::exchange(&shared.socket, &input, DEADLINE);
        counts.add(input.kind, &outcome);
        if let Some(reason) = suspicious(&outcome) {
            save_suspicious(shared, i, &input, reason, &counts);
        }
        let mut recent = shared.recent[w].lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back((i, input));
        if recent.len() > RECENT {
            recent.pop_front();
        }
        drop(recent);
        shared.done.fetch_add(1, Ordering::SeqCst);
    }
    counts
}

/// Counts a client thread down when it ends, even by a panic.
struct Active<'a>(&'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits for each checkpoint and checks vmd; `Some(why)` on the first failed check.
fn watch(shared: &Shared, d: &mut Daemon, t: &mut Tally) -> Option<String> {
    let mut next_check = CHECK_EVERY;
    loop {
        let done = shared.done.load(Ordering::SeqCst);
        if done >= shared.total || shared.active.load(Ordering::SeqCst) == 0 {
            return None;
        }
        if done >= next_check {
            if let Err(why) = check(d, t, done) {
                return Some(why);
            }
            next_check = done + CHECK_EVERY;
            if next_check % (CHECK_EVERY * 50) < CHECK_EVERY {
                eprintln!("vmd-bench: fuzz: {done} inputs");
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One health check after `done` inputs.
fn check(d: &mut Daemon, t: &mut Tally, done: u64) -> Result<(), String> {
    if !d.is_running() {
        return Err(format!("vmd (pid {}) died after {done} inputs", d.pid()));
    }
    let rpc = d.rpc.clone().with_timeout(DEADLINE);
    let asked = Instant::now();
    let info = rpc.call("system.info", json!([]));
    t.info_ms.push(super::ms(asked.elapsed()));
    match info {
        Ok(info) if info["pid"].as_u64() == Some(u64::from(d.pid())) => {}
        Ok(info) => return Err(format!("system.info names another pid: {}", info["pid"])),
        Err(err) => return Err(format!("system.info failed after {done} inputs: {err:#}")),
    }
    if let Ok(rss) = d.rss_kib() {
        t.rss.push((done, rss));
    }
    t.fds.push((done, crate::procfs::fd_count(d.pid())));
    let (panics, end) = crate::daemon::panics(&d.log_path(), t.log_end);
    t.log_end = end;
    match panics.first() {
        Some(p) => Err(format!("vmd panicked after {done} inputs: {p}")),
        None => Ok(()),
    }
}

/// Why an outcome deserves a saved reproducer, if it does.
fn suspicious(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Timeout => Some("timeout"),
        Outcome::Answered(s, _) if *s >= 500 => Some("5xx"),
        _ => None,
    }
}

fn save_suspicious(shared: &Shared, i: u64, input: &Input, reason: &str, c: &tally::Counts) {
    let seen = if reason == "timeout" {
        c.timeouts()
    } else {
        c.server_errors()
    };
    if seen > SAVE_AT_MOST {
        return;
    }
    if let Some(path) = save(shared, i, input, reason) {
        shared
            .saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path);
    }
}

/// Writes an input's bytes to the reproducer directory; returns the path.
fn save(shared: &Shared, i: u64, input: &Input, reason: &str) -> Option<String> {
    let _ = std::fs::create_dir_all(&shared.repro_dir);
    let name = format!("{}-{i}-{}-{reason}.bin", shared.seed, input.kind.as_str());
    let path = shared.repro_dir.join(name);
    std::fs::write(&path, input.parts.concat()).ok()?;
    Some(path.display().to_string())
}

/// Saves every thread's recent inputs; returns the paths.
fn dump_recent(shared: &Shared) -> Vec<String> {
    let mut paths = Vec::new();
    for ring in &shared.recent {
        let ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        paths.extend(
            ring.iter()
                .filter_map(|(i, input)| save(shared, *i, input, "recent")),
        );
    }
    paths
}

fn repro_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name("vmd-bench-fuzz"))
}
