//! `vmd-bench`: how fast vmd is, compared with its floor (QEMU and qemu-img run directly) and,
//! where installed, with libvirt. See `docs/performance.md` for what it measures and how to
//! read the numbers.
//!
//! # Layout
//! - [`scenarios`]: the measured groups (`--only` names), each on its own fresh vmd.
//! - [`daemon`]: starting and stopping vmd like the integration tests do.
//! - [`rpc`]: raw HTTP JSON-RPC over the daemon's Unix socket.
//! - [`floor`]: QEMU with vmd's exact argv and `qemu-img create`, without vmd.
//! - [`libvirt`]: the same work through `virsh`.
//! - [`fixtures`]: base images and the test guest.
//! - [`stats`], [`report`], [`targets`]: median/p99, the table and JSON, the goals.
//! - [`procfs`], [`cleanup`]: `/proc` reads; nothing started may outlive the bench.
//! - [`rng`]: the seeded generator of the chaos and fuzz groups.

mod cleanup;
mod daemon;
mod fixtures;
mod floor;
mod libvirt;
mod procfs;
mod report;
mod rng;
mod rpc;
mod scenarios;
mod stats;
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use crate::report::Report;
use crate::scenarios::{Ctx, Opts};

/// Benchmark vmd against direct QEMU/qemu-img and libvirt; prints a table, writes JSON.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// vmd binary [default: `vmd` next to this program, e.g. target/release/vmd]
    #[arg(long, value_name = "PATH")]
    vmd: Option<PathBuf>,
    /// vmctl binary [default: `vmctl` next to this program]
    #[arg(long, value_name = "PATH")]
    vmctl: Option<PathBuf>,
    /// vmd-web binary for the `web` group [default: `vmd-web` next to this program]
    #[arg(long, value_name = "PATH")]
    vmd_web: Option<PathBuf>,
    /// Repetitions of each operation (the graceful stop, which boots a guest, runs a tenth)
    #[arg(long, value_name = "N", default_value_t = 30)]
    reps: usize,
    /// Where to write the JSON report [default: vmd-bench.json next to this program]
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only these groups (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME,...")]
    only: Vec<Group>,
    /// CI mode: 1 repetition, 3 VMs instead of 50/1000, one short guest boot
    #[arg(long)]
    smoke: bool,
    /// vmd's --log-level (`debug` adds timestamps for profiling, and costs time)
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log_level: String,
    /// Copy each daemon's log to DIR/GROUP-vmd.log (use with --log-level debug to profile)
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
    /// Start libvirtd and virtlogd when libvirtd is unreachable (killed at the end)
    #[arg(long)]
    start_libvirtd: bool,
    /// template: guests running at once for the memory comparison [default: 20, smoke 3]
    #[arg(long, value_name = "N")]
    template_guests: Option<usize>,
    /// chaos: how many times vmd is killed with SIGKILL [default: 100, smoke 5]
    #[arg(long, value_name = "N")]
    chaos_kills: Option<usize>,
    /// chaos: guests running meanwhile [default: 20, smoke 3]
    #[arg(long, value_name = "M")]
    chaos_guests: Option<usize>,
    /// chaos: fail (exit non-zero) on any invariant violation
    #[arg(long)]
    chaos_strict: bool,
    /// fuzz: inputs sent to vmd [default: 1000000, smoke 3000]
    #[arg(long, value_name = "N")]
    fuzz_inputs: Option<u64>,
    /// fuzz: only these input kinds (rpc, http, ws, console, upload, import) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    fuzz_kinds: Vec<String>,
    /// Seed of the chaos kill points and the fuzz inputs [default: from the clock; printed]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// The measured groups, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// create on small/large bases, wipe, rm; qemu-img create (floor)
    Create,
    /// start until running, forced stop; direct QEMU start/quit (floor)
    Start,
    /// graceful stop of a booted test guest
    Graceful,
    /// warm templates: cold boot vs clone start until the guest answers; PSS of N of each
    Template,
    /// vm.list and vmctl ls with 10/100/1000 VMs, RPC round trips
    Ls,
    /// 50 concurrent create+start, collisions, stop all
    Concurrent,
    /// daemon RSS idle and per running VM
    Rss,
    /// kill -9 of vmd during a create/start/stop/wipe/rm mix; invariants after each restart
    Chaos,
    /// mutated JSON-RPC, HTTP, upload, image and console requests against a live vmd
    Fuzz,
    /// 10 GiB sparse disk (100 MiB of data) sent as extents vs whole vs 100 MiB dense
    Upload,
    /// REST through vmd-web vs JSON-RPC on the socket; VNC over WebSocket vs the socket relay
    Web,
    /// the same work through virsh
    Libvirt,
}

fn main() -> ExitCode {
    if let Err(err) = cleanup::install() {
        eprintln!("vmd-bench: {err:#}");
        return ExitCode::FAILURE;
    }
    match run(Args::parse()) {
        Ok(report) if !report.failed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("vmd-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<Report> {
    let opts = opts(&args)?;
    let mut report = Report::default();
    report.env = env(&opts, args.smoke);
    warn_if_stale(&opts, &mut report);
    let fixtures = fixtures::Fixtures::create()?;
    let ctx = Ctx {
        opts: &opts,
        fixtures: &fixtures,
    };
    for group in Group::value_variants() {
        if args.only.is_empty() || args.only.contains(group) {
            run_group(*group, &ctx, &mut report);
        }
    }
    report.env.loadavg_end = procfs::loadavg();
    report::print(&report);
    let json = args.json.unwrap_or(beside_exe("vmd-bench.json")?);
    report.write_json(&json)?;
    println!("\nJSON: {}", json.display());
    Ok(report)
}

fn run_group(group: Group, ctx: &Ctx, report: &mut Report) {
    let name = group
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    eprintln!("vmd-bench: {name} ...");
    let started = std::time::Instant::now();
    let result = match group {
        Group::Create => scenarios::create::run(ctx, report),
        Group::Start => scenarios::start::run(ctx, report),
        Group::Graceful => scenarios::graceful::run(ctx, report),
        Group::Template => scenarios::template::run(ctx, report),
        Group::Ls => scenarios::listing::run(ctx, report),
        Group::Concurrent => scenarios::concurrent::run(ctx, report),
        Group::Rss => scenarios::rss::run(ctx, report),
        Group::Chaos => scenarios::chaos::run(ctx, report),
        Group::Fuzz => scenarios::fuzz::run(ctx, report),
        Group::Upload => scenarios::upload::run(ctx, report),
        Group::Web => scenarios::web::run(ctx, report),
        Group::Libvirt => libvirt::run(ctx, report),
    };
    eprintln!(
        "vmd-bench: {name} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(err) = result {
        report.fail(format!("{name}: {err:#}"));
    }
}

fn opts(args: &Args) -> anyhow::Result<Opts> {
    if let Some(dir) = &args.keep_logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let reps = if args.smoke { 1 } else { args.reps.max(1) };
    let (list_counts, concurrent, rss_counts) = if args.smoke {
        (vec![3], 3, vec![1, 3])
    } else {
        (vec![10, 100, 1000], 50, vec![20, 50])
    };
    let seed = args.seed.unwrap_or_else(rng::clock_seed);
    let smoke = args.smoke;
    Ok(Opts {
        vmd: binary(args.vmd.clone(), "vmd")?,
        vmctl: binary(args.vmctl.clone(), "vmctl")?,
        vmd_web: vmd_web(args)?,
        reps,
        graceful_reps: (reps / 10).max(1),
        list_counts,
        concurrent,
        rss_counts,
        log_level: args.log_level.clone(),
        keep_logs: args.keep_logs.clone(),
        start_libvirtd: args.start_libvirtd,
        chaos_kills: args.chaos_kills.unwrap_or(if smoke { 5 } else { 100 }),
        chaos_guests: args.chaos_guests.unwrap_or(if smoke { 3 } else { 20 }),
        chaos_strict: args.chaos_strict,
        fuzz_inputs: args
            .fuzz_inputs
            .unwrap_or(if smoke { 3000 } else { 1_000_000 }),
        fuzz_kinds: args.fuzz_kinds.clone(),
        template_cold: if smoke { 1 } else { 3 },
        template_clones: if smoke { 2 } else { 5 },
        template_guests: args
            .template_guests
            .unwrap_or(if smoke { 3 } else { 20 })
            .max(1),
        web_calls: if smoke { 10 } else { reps * 10 },
        vnc_rounds: if smoke { 3 } else { 100 },
        seed,
    })
}

/// vmd-web: only required when the `web` group runs (a missing default is then an error).
fn vmd_web(args: &Args) -> anyhow::Result<Option<PathBuf>> {
    let wanted = args.only.is_empty() || args.only.contains(&Group::Web);
    if !wanted {
        return Ok(None);
    }
    binary(args.vmd_web.clone(), "vmd-web").map(Some)
}

/// `flag`, or `name` next to this program; must exist.
fn binary(flag: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    let path = match flag {
        Some(p) => p,
        None => beside_exe(name)?,
    };
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --workspace --bins) or pass --{name}",
            path.display()
        );
    }
    std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))
}

fn beside_exe(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this program")?;
    Ok(exe.with_file_name(name))
}

fn env(opts: &Opts, smoke: bool) -> report::Env {
    let qemu = std::process::Command::new(vmd::qemu::qemu_binary())
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|e| format!("QEMU not runnable: {e}"));
    report::Env {
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        loadavg_start: procfs::loadavg(),
        loadavg_end: String::new(),
        qemu_version: qemu,
        vmd: opts.vmd.display().to_string(),
        vmctl: opts.vmctl.display().to_string(),
        reps: opts.reps,
        smoke,
    }
}

/// Notes a binary older than its crate's sources: the numbers would be of old code.
fn warn_if_stale(opts: &Opts, report: &mut Report) {
    let root = fixtures::workspace_root();
    for (bin, crates) in [
        (&opts.vmd, ["vmd", "vm-proto"]),
        (&opts.vmctl, ["vmctl", "vm-proto"]),
    ] {
        let built = modified(bin);
        let newest = crates
            .iter()
            .filter_map(|c| newest_in(&root.join(c).join("src")))
            .max();
        if let (Some(built), Some(newest)) = (built, newest) {
            if newest > built {
                report.note(format!(
                    "{} is older than its sources: rebuild (cargo build [--release] --workspace --bins)",
                    bin.display()
                ));
            }
        }
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_in(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            if path.is_dir() {
                newest_in(&path)
            } else {
                modified(&path)
            }
        })
        .max()
}
