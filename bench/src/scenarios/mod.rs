//! The measured scenarios, one module per `--only` group, and the helpers they share.
//!
//! Every group starts its own vmd in a fresh directory (so one group's VMs never slow down
//! another's), interleaves vmd and its floor within each repetition where both are measured
//! (so background load hits both alike), and leaves no VM running when it returns.

pub mod chaos;
pub mod concurrent;
pub mod create;
pub mod fuzz;
pub mod graceful;
pub mod listing;
pub mod rss;
pub mod start;
pub mod template;
pub mod upload;
pub mod web;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures::Fixtures;
use crate::rpc::Client;

/// Guest memory of every bench VM (the tests use the same).
pub const MEMORY_MIB: u64 = 128;

/// What the scenarios need from the command line.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The daemon binary.
    pub vmd: PathBuf,
    /// The CLI binary.
    pub vmctl: PathBuf,
    /// The HTTP/REST shim (only when the `web` group runs).
    pub vmd_web: Option<PathBuf>,
    /// Repetitions of each cheap operation.
    pub reps: usize,
    /// Repetitions of the graceful stop (each boots the test guest, ~10 s under TCG).
    pub graceful_reps: usize,
    /// Defined VMs for `ls` (ascending).
    pub list_counts: Vec<usize>,
    /// VMs created and started at once.
    pub concurrent: usize,
    /// Running VMs at which the daemon's RSS is sampled (ascending).
    pub rss_counts: Vec<usize>,
    /// vmd's `--log-level`.
    pub log_level: String,
    /// Directory that receives each daemon's log.
    pub keep_logs: Option<PathBuf>,
    /// Start libvirtd (and virtlogd) when it is not reachable.
    pub start_libvirtd: bool,
    /// `kill -9`s of vmd in the chaos group.
    pub chaos_kills: usize,
    /// Guests running during the chaos group.
    pub chaos_guests: usize,
    /// Whether an invariant violation fails the chaos group.
    pub chaos_strict: bool,
    /// Inputs the fuzz group sends.
    pub fuzz_inputs: u64,
    /// Only these fuzz input kinds (empty: all).
    pub fuzz_kinds: Vec<String>,
    /// Cold boots timed by the `template` group (each ~10 s under TCG).
    pub template_cold: usize,
    /// Clone starts timed by the `template` group.
    pub template_clones: usize,
    /// Guests running at once in the `template` group's memory comparison (each set).
    pub template_guests: usize,
    /// REST and JSON-RPC round trips of the `web` group, each way.
    pub web_calls: usize,
    /// Full-screen VNC updates read each way in the `web` group.
    pub vnc_rounds: usize,
    /// Seed of the chaos and fuzz groups' random choices.
    pub seed: u64,
}

/// Everything a scenario gets.
pub struct Ctx<'a> {
    /// Options.
    pub opts: &'a Opts,
    /// Base image files.
    pub fixtures: &'a Fixtures,
}

/// Runs `f` and returns its wall-clock time in ms with its value.
pub fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((ms(start.elapsed()), value))
}

/// A duration in (fractional) milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `vm.create` of `name` on base `image` with [`MEMORY_MIB`].
pub fn create_vm(rpc: &Client, name: &str, image: &str) -> anyhow::Result<Value> {
    rpc.call(
        "vm.create",
        json!([{"name": name, "image": image, "memory_mib": MEMORY_MIB}]),
    )
}

/// `vm.start`.
pub fn start_vm(rpc: &Client, name: &str) -> anyhow::Result<Value> {
    rpc.call("vm.start", json!([name]))
}

/// `vm.stop`, forced or graceful (30 s before vmd forces it).
pub fn stop_vm(rpc: &Client, name: &str, force: bool) -> anyhow::Result<Value> {
    rpc.call(
        "vm.stop",
        json!([{"name": name, "force": force, "timeout_secs": 30}]),
    )
}

/// `vm.remove`.
pub fn remove_vm(rpc: &Client, name: &str) -> anyhow::Result<Value> {
    rpc.call("vm.remove", json!([name]))
}

/// The `pid` field of a VM.
pub fn pid_of(vm: &Value) -> anyhow::Result<u32> {
    vm["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| anyhow::anyhow!("VM has no pid: {vm}"))
}

/// Creates `names` on `image` with `threads` parallel clients (set-up, not measured).
pub fn create_many(
    rpc: &Client,
    names: &[String],
    image: &str,
    threads: usize,
) -> anyhow::Result<()> {
    let chunk = names.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .try_for_each(|n| create_vm(rpc, n, image).map(drop))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("creating thread panicked"))?
        })
    })
}
