//! Counting what the fuzz inputs got (per kind, HTTP status, JSON-RPC code), vmd's RSS over
//! the run, the objects that exist before and after, and the metrics and JSON details.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::inputs::Kind;
use super::wire::Outcome;
use crate::report::{Report, Unit};
use crate::rpc::Client;

/// Growth of vmd's RSS over the second half of the run that counts as a leak.
const LEAK_BOUND_KIB: u64 = 16 << 10;

/// Counts of one client thread.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Inputs by kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// `kind outcome` → inputs (outcome: HTTP status, closed, timeout, garbage, refused).
    pub outcomes: BTreeMap<String, u64>,
    /// JSON-RPC result (`ok`) or error code → answers.
    pub rpc: BTreeMap<String, u64>,
}

impl Counts {
    /// Counts one input.
    pub fn add(&mut self, kind: Kind, outcome: &Outcome) {
        *self.kinds.entry(kind.as_str()).or_default() += 1;
        let what = match outcome {
            Outcome::Answered(status, codes) => {
                for c in codes {
                    *self.rpc.entry(c.clone()).or_default() += 1;
                }
                status.to_string()
            }
            Outcome::Closed => "closed".into(),
            Outcome::Garbage => "garbage".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Refused => "refused".into(),
        };
        *self
            .outcomes
            .entry(format!("{} {what}", kind.as_str()))
            .or_default() += 1;
    }

    /// Inputs that timed out.
    pub fn timeouts(&self) -> u64 {
        self.by_outcome(|o| o == "timeout")
    }

    /// Inputs answered with a 5xx.
    pub fn server_errors(&self) -> u64 {
        self.by_outcome(|o| o.starts_with('5') && o.len() == 3)
    }

    fn by_outcome(&self, f: impl Fn(&str) -> bool) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.split(' ').nth(1).is_some_and(&f))
            .map(|(_, n)| n)
            .sum()
    }

    /// Inputs by outcome alone (all kinds).
    fn statuses(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, n) in &self.outcomes {
            let status = k.split(' ').nth(1).unwrap_or("?").to_string();
            *out.entry(status).or_default() += n;
        }
        out
    }
}

/// The whole run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Summed thread counts.
    pub counts: Counts,
    /// (inputs done, vmd VmRSS KiB) at each check; the first is before any input.
    pub rss: Vec<(u64, u64)>,
    /// (inputs done, vmd's open file descriptors) at each check.
    pub fds: Vec<(u64, usize)>,
    /// `system.info` round trips of the checks.
    pub info_ms: Vec<f64>,
    /// Wall-clock time of the inputs.
    pub elapsed: Duration,
    /// Bytes of vmd's log already searched for panics.
    pub log_end: u64,
}

impl Tally {
    /// A tally starting at `rss_kib`.
    pub fn new(rss_kib: u64, fds: usize) -> Tally {
        Tally {
            rss: vec![(0, rss_kib)],
            fds: vec![(0, fds)],
            ..Tally::default()
        }
    }

    /// Adds a thread's counts.
    pub fn merge(&mut self, part: Counts) {
        let c = &mut self.counts;
        for (k, n) in part.kinds {
            *c.kinds.entry(k).or_default() += n;
        }
        for (k, n) in part.outcomes {
            *c.outcomes.entry(k).or_default() += n;
        }
        for (k, n) in part.rpc {
            *c.rpc.entry(k).or_default() += n;
        }
    }

    fn inputs(&self) -> u64 {
        self.counts.kinds.values().sum()
    }

    /// RSS at the start, half-way, the peak and the end (KiB).
    fn rss_points(&self) -> (u64, u64, u64, u64) {
        let first = self.rss.first().map_or(0, |r| r.1);
        let last = self.rss.last().map_or(0, |r| r.1);
        let half_inputs = self.rss.last().map_or(0, |r| r.0) / 2;
        let half = self
            .rss
            .iter()
            .find(|r| r.0 >= half_inputs)
            .map_or(first, |r| r.1);
        let peak = self.rss.iter().map(|r| r.1).max().unwrap_or(0);
        (first, half, peak, last)
    }

    /// Metrics, details, and a failure if RSS kept growing.
    pub fn record(
        &self,
        report: &mut Report,
        seed: u64,
        before: &Objects,
        after: &Objects,
        saved: &[String],
    ) {
        let n = self.inputs() as f64;
        report.sample("fuzz.inputs", Unit::Count, "fuzz inputs sent", n);
        let rate = n / self.elapsed.as_secs_f64().max(1e-9);
        report.sample(
            "fuzz.rate",
            Unit::Count,
            "fuzz inputs per second (4 client threads)",
            rate,
        );
        for ms in &self.info_ms {
            report.sample(
                "fuzz.check.system_info",
                Unit::Ms,
                "system.info during the fuzzing (health checks)",
                *ms,
            );
        }
        let (first, half, peak, last) = self.rss_points();
        for (name, v, what) in [
            ("fuzz.rss.start", first, "vmd VmRSS before the first input"),
            ("fuzz.rss.half", half, "vmd VmRSS half-way"),
            ("fuzz.rss.peak", peak, "vmd VmRSS peak over the checks"),
            ("fuzz.rss.end", last, "vmd VmRSS after the last input"),
        ] {
            report.sample(name, Unit::Mib, what, v as f64 / 1024.0);
        }
        let fds = |i: Option<&(u64, usize)>| i.map_or(0.0, |f| f.1 as f64);
        let what = "vmd's open file descriptors before the first input";
        report.sample("fuzz.fds.start", Unit::Count, what, fds(self.fds.first()));
        let what = "vmd's open file descriptors after the last input";
        report.sample("fuzz.fds.end", Unit::Count, what, fds(self.fds.last()));
        for (status, count) in self.counts.statuses() {
            report.sample(
                &format!("fuzz.outcome.{status}"),
                Unit::Count,
                "inputs answered so (HTTP status, or no answer)",
                count as f64,
            );
        }
        for (code, count) in &self.counts.rpc {
            report.sample(
                &format!("fuzz.rpc.{code}"),
                Unit::Count,
                "JSON-RPC answers with this result/error code",
                *count as f64,
            );
        }
        report.detail("fuzz", self.details(seed, before, after, saved));
        if last > half + LEAK_BOUND_KIB {
            report.fail(format!(
                "fuzz: vmd's RSS grew by {} KiB over the second half of the run (bound {LEAK_BOUND_KIB} KiB)",
                last - half
            ));
        }
    }

    fn details(&self, seed: u64, before: &Objects, after: &Objects, saved: &[String]) -> Value {
        let (first, half, peak, last) = self.rss_points();
        json!({
            "seed": seed,
            "inputs": self.inputs(),
            "seconds": self.elapsed.as_secs_f64(),
            "inputs_per_second": self.inputs() as f64 / self.elapsed.as_secs_f64().max(1e-9),
            "kinds": self.counts.kinds,
            "outcomes_by_kind": self.counts.outcomes,
            "outcomes": self.counts.statuses(),
            "rpc_codes": self.counts.rpc,
            "rss_kib": {"start": first, "half": half, "peak": peak, "end": last, "samples": self.rss},
            "open_fds": self.fds,
            "objects_before": before,
            "objects_after": after,
            "saved_inputs": saved,
        })
    }
}

/// Names of the VMs, images and ISOs that exist.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Objects {
    /// VM names.
    pub vms: Vec<String>,
    /// Image names.
    pub images: Vec<String>,
    /// ISO names.
    pub isos: Vec<String>,
}

/// Lists what exists.
pub fn objects(rpc: &Client) -> anyhow::Result<Objects> {
    let names = |method: &str| -> anyhow::Result<Vec<String>> {
        let list = rpc.call(method, json!([]))?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str().map(str::to_string))
            .collect())
    };
    Ok(Objects {
        vms: names("vm.list")?,
        images: names("image.list")?,
        isos: names("iso.list")?,
    })
}
