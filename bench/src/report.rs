//! The results: named metrics with their raw samples, the ratios to the floor and to libvirt,
//! the targets of issues 5, 10 and 14, printed as a table and written as JSON.
//!
//! Metric names are stable (scripts and docs/performance.md refer to them): `create.small`,
//! `start`, `stop.force`, `floor.start`, `list.vmctl.1000`, `rss.idle`, `libvirt.start`, …

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::stats::{summarize, Summary};

/// Unit of a metric's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds of wall-clock time.
    Ms,
    /// Mebibytes.
    Mib,
    /// Kibibytes.
    Kib,
    /// A number of things (errors, collisions).
    Count,
    /// Throughput, mebibytes per second.
    MibPerS,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Mib => "MiB",
            Unit::Kib => "KiB",
            Unit::Count => "count",
            Unit::MibPerS => "MiB/s",
        }
    }
}

/// One measured quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Stable name.
    pub name: String,
    /// Unit of `samples`.
    pub unit: Unit,
    /// What exactly was measured.
    pub what: String,
    /// Every sample, in measurement order.
    pub samples: Vec<f64>,
}

/// Facts about the run that explain its numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Env {
    /// Unix time the run started.
    pub started_unix: u64,
    /// Online CPUs.
    pub cpus: usize,
    /// 1-minute load average at the start and at the end (other work on the machine).
    pub loadavg_start: String,
    /// See `loadavg_start`.
    pub loadavg_end: String,
    /// `qemu-system-x86_64 --version`, first line.
    pub qemu_version: String,
    /// The daemon binary measured.
    pub vmd: String,
    /// The CLI binary measured.
    pub vmctl: String,
    /// Repetitions of the cheap operations.
    pub reps: usize,
    /// Smoke mode (CI).
    pub smoke: bool,
}

/// A target of issue 5 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The target.
    pub target: String,
    /// The measured value it was judged on.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run.
    pub met: Option<bool>,
}

/// A quotient of two medians.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// What is compared.
    pub label: String,
    /// Numerator metric.
    pub numerator: String,
    /// Denominator metric.
    pub denominator: String,
    /// Median of the numerator over median of the denominator.
    pub ratio: f64,
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Report {
    /// Run facts.
    pub env: Env,
    metrics: Vec<Metric>,
    notes: Vec<String>,
    failures: Vec<String>,
    details: serde_json::Map<String, serde_json::Value>,
}

/// The JSON document.
#[derive(Serialize)]
struct JsonReport<'a> {
    env: &'a Env,
    metrics: Vec<JsonMetric<'a>>,
    ratios: Vec<Ratio>,
    targets: Vec<Check>,
    notes: &'a [String],
    failures: &'a [String],
    /// Per-group structured results that are not samples (chaos rounds, fuzz histograms).
    details: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct JsonMetric<'a> {
    #[serde(flatten)]
    metric: &'a Metric,
    summary: Option<Summary>,
}

impl Report {
    /// Appends one sample to metric `name`, creating it on first use.
    pub fn sample(&mut self, name: &str, unit: Unit, what: &str, value: f64) {
        match self.metrics.iter_mut().find(|m| m.name == name) {
            Some(m) => m.samples.push(value),
            None => self.metrics.push(Metric {
                name: name.into(),
                unit,
                what: what.into(),
                samples: vec![value],
            }),
        }
    }

    /// Records a remark printed under the table (e.g. why a part was skipped).
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("note: {text}");
        self.notes.push(text);
    }

    /// Records a failed part of the run; the process then exits non-zero.
    pub fn fail(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("FAILED: {text}");
        self.failures.push(text);
    }

    /// Stores a group's structured result under `details.<group>` in the JSON.
    pub fn detail(&mut self, group: &str, value: serde_json::Value) {
        self.details.insert(group.into(), value);
    }

    /// Whether any part failed.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The median of metric `name`, if it has samples.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.summary(name).map(|s| s.median)
    }

    /// The summary of metric `name`.
    pub fn summary(&self, name: &str) -> Option<Summary> {
        let metric = self.metrics.iter().find(|m| m.name == name)?;
        summarize(&metric.samples)
    }

    /// Every ratio whose two metrics were measured.
    pub fn ratios(&self) -> Vec<Ratio> {
        let mut pairs: Vec<(String, String, String)> = FIXED_RATIOS
            .iter()
            .map(|(l, n, d)| (l.to_string(), n.to_string(), d.to_string()))
            .collect();
        for count in self.list_counts() {
            pairs.push((
                format!("ls of {count} VMs: vmctl / virsh list --all"),
                format!("list.vmctl.{count}"),
                format!("libvirt.list.{count}"),
            ));
        }
        pairs
            .into_iter()
            .filter_map(|(label, numerator, denominator)| {
                let ratio = self.median(&numerator)? / self.median(&denominator)?;
                Some(Ratio {
                    label,
                    numerator,
                    denominator,
                    ratio,
                })
            })
            .collect()
    }

    /// The VM counts that `ls` was measured with.
    pub fn list_counts(&self) -> Vec<u64> {
        let set: BTreeSet<u64> = self
            .metrics
            .iter()
            .filter_map(|m| m.name.strip_prefix("list.vmctl.")?.parse().ok())
            .collect();
        set.into_iter().collect()
    }

    /// Every metric, in measurement order.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// The notes.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The failures.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Writes the JSON document to `path`.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let doc = JsonReport {
            env: &self.env,
            metrics: self
                .metrics
                .iter()
                .map(|metric| JsonMetric {
                    metric,
                    summary: summarize(&metric.samples),
                })
                .collect(),
            ratios: self.ratios(),
            targets: crate::targets::check(self),
            notes: &self.notes,
            failures: &self.failures,
            details: &self.details,
        };
        let text = serde_json::to_string_pretty(&doc).context("serialising the report")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// Ratios printed whenever both medians exist: (label, numerator, denominator).
const FIXED_RATIOS: &[(&str, &str, &str)] = &[
    ("start: vmd / direct QEMU (floor)", "start", "floor.start"),
    (
        "force stop: vmd / QMP quit (floor)",
        "stop.force",
        "floor.quit",
    ),
    (
        "create, small base: vmd / qemu-img create",
        "create.small",
        "floor.qemu_img.small",
    ),
    (
        "create, large base: vmd / qemu-img create",
        "create.large",
        "floor.qemu_img.large",
    ),
    (
        "create: large base / small base",
        "create.large",
        "create.small",
    ),
    (
        "N concurrent create+start: vmd / N direct QEMU starts",
        "concurrent.total",
        "floor.concurrent.total",
    ),
    ("start: vmd / virsh start", "start", "libvirt.start"),
    (
        "force stop: vmd / virsh destroy",
        "stop.force",
        "libvirt.destroy",
    ),
    (
        "create: vmd / virsh define",
        "create.small",
        "libvirt.define",
    ),
    (
        "REST GET /vms/NAME: vmd-web / vm.get on the socket",
        "web.rest.vm_get",
        "web.rpc.vm_get",
    ),
    (
        "VNC throughput: vmd-web WebSocket / vmd socket relay",
        "web.vnc.ws",
        "web.vnc.socket",
    ),
    (
        "start until the shell answers: cold boot / clone",
        "template.cold.answer",
        "template.clone.answer",
    ),
    (
        "N started at once until all ready: cold / clone",
        "template.cold.all_ready",
        "template.clone.all_answered",
    ),
    (
        "PSS of N running guests: clones / cold-booted",
        "template.pss.clones.total",
        "template.pss.cold.total",
    ),
    (
        "rpc round trip: vmd / virsh version",
        "rpc.system_info",
        "libvirt.version",
    ),
];

/// Prints the table, the ratios, the targets, notes and failures on stdout.
pub fn print(report: &Report) {
    let env = &report.env;
    println!(
        "vmd-bench: {} reps{}, {} CPUs, load {} -> {}, {}",
        env.reps,
        if env.smoke { " (smoke)" } else { "" },
        env.cpus,
        env.loadavg_start,
        env.loadavg_end,
        env.qemu_version
    );
    println!(
        "\n{:<31} {:>4} {:>10} {:>10} {:>10} {:>10}  {:<5}  what",
        "metric", "n", "median", "p99", "min", "max", "unit"
    );
    for m in report.metrics() {
        print_metric(m);
    }
    print_ratios(report);
    print_targets(report);
    for note in report.notes() {
        println!("note: {note}");
    }
    for failure in report.failures() {
        println!("FAILED: {failure}");
    }
}

fn print_metric(m: &Metric) {
    let Some(s) = summarize(&m.samples) else {
        return;
    };
    println!(
        "{:<31} {:>4} {:>10} {:>10} {:>10} {:>10}  {:<5}  {}",
        m.name,
        s.n,
        num(s.median),
        num(s.p99),
        num(s.min),
        num(s.max),
        m.unit.as_str(),
        m.what
    );
}

fn print_ratios(report: &Report) {
    let ratios = report.ratios();
    if ratios.is_empty() {
        return;
    }
    println!("\nratios of medians");
    for r in ratios {
        println!("  {:<56} {:>8}x", r.label, ratio(r.ratio));
    }
}

fn print_targets(report: &Report) {
    println!("\ntargets (issues 5, 10 and 14)");
    for c in crate::targets::check(report) {
        let verdict = match c.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        println!("  {:<44} {:>22}  {verdict}", c.target, c.measured);
    }
}

/// A ratio with at least two significant digits.
fn ratio(v: f64) -> String {
    if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A number with precision that suits its size.
fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_accumulate_per_name() {
        let mut r = Report::default();
        r.sample("start", Unit::Ms, "x", 3.0);
        r.sample("start", Unit::Ms, "x", 1.0);
        r.sample("floor.start", Unit::Ms, "y", 2.0);
        assert_eq!(r.metrics().len(), 2);
        assert_eq!(r.median("start"), Some(2.0));
    }

    #[test]
    fn ratios_need_both_sides() {
        let mut r = Report::default();
        r.sample("start", Unit::Ms, "x", 3.0);
        assert!(r.ratios().is_empty());
        r.sample("floor.start", Unit::Ms, "y", 2.0);
        let ratios = r.ratios();
        assert_eq!(ratios.len(), 1);
        assert!((ratios[0].ratio - 1.5).abs() < 1e-9);
    }

    #[test]
    fn list_ratios_follow_measured_counts() {
        let mut r = Report::default();
        r.sample("list.vmctl.10", Unit::Ms, "x", 4.0);
        r.sample("libvirt.list.10", Unit::Ms, "y", 8.0);
        assert_eq!(r.list_counts(), vec![10]);
        assert!(r.ratios().iter().any(|x| x.numerator == "list.vmctl.10"));
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(ratio(1.234), "1.23");
        assert_eq!(ratio(0.0033), "0.0033");
    }
}
