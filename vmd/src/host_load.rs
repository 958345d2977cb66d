//! The host's load for `system.info`: CPUs, load averages, memory, and how busy the CPUs were,
//! read from `/proc` (each read is a few small files; callers run it off the async workers).
//!
//! CPU use is a difference of two `/proc/stat` readings. vmd keeps the previous reading and
//! answers the use over the interval since it, taking a new one only when at least
//! [`MIN_WINDOW`] has passed, so frequent callers (the admin dashboard re-reads on events)
//! neither get noise from tiny windows nor cost more than one read. The first reading after
//! start-up is the average since boot.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vm_proto::types::HostLoad;

/// Shortest interval CPU use is measured over.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// Jiffies from the aggregate `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// The previous CPU reading and the use computed from it.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<Option<(Instant, CpuTimes, f64)>>,
}

impl CpuSampler {
    /// Busy percentage of all CPUs over the window ending now (see the module docs).
    fn busy_percent(&self, now: CpuTimes) -> f64 {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some((at, _, percent)) if at.elapsed() < MIN_WINDOW => percent,
            Some((_, before, _)) => {
                let percent = percent_between(before, now);
                *last = Some((Instant::now(), now, percent));
                percent
            }
            None => {
                let percent = percent_between(CpuTimes::default(), now);
                *last = Some((Instant::now(), now, percent));
                percent
            }
        }
    }

    /// The host's load now. Blocking: reads `/proc`.
    pub fn read(&self) -> HostLoad {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let [load_1, load_5, load_15] = parse_loadavg(&loadavg);
        HostLoad {
            cpus: count_cpus(&stat),
            cpu_busy_percent: self.busy_percent(parse_cpu(&stat)),
            load_1,
            load_5,
            load_15,
            memory_total_bytes: meminfo_bytes(&meminfo, "MemTotal:"),
            memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable:"),
        }
    }
}

/// Busy share of `after - before`, in percent (0 when no time passed).
fn percent_between(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    let busy = after.busy.saturating_sub(before.busy);
    match total {
        0 => 0.0,
        t => (busy as f64 * 100.0 / t as f64).clamp(0.0, 100.0),
    }
}

/// The aggregate `cpu` line: busy = everything but idle and iowait.
fn parse_cpu(stat: &str) -> CpuTimes {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return CpuTimes::default();
    };
    // user nice system idle iowait irq softirq steal (guest time is inside user/nice).
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// Online CPUs: the `cpuN` lines of `/proc/stat`.
fn count_cpus(stat: &str) -> u32 {
    let n = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The 1, 5 and 15 minute load averages.
fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// A `/proc/meminfo` field (kB) in bytes; 0 when absent.
fn meminfo_bytes(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n\
                        cpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\n";

    #[test]
    fn proc_files_parse() {
        assert_eq!(count_cpus(STAT), 2);
        assert_eq!(
            parse_cpu(STAT),
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        assert_eq!(
            parse_loadavg("0.50 1.25 2.00 3/400 12345\n"),
            [0.5, 1.25, 2.0]
        );
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemAvailable:"), 12_000_000 * 1024);
        assert_eq!(meminfo_bytes(meminfo, "Nope:"), 0);
    }

    #[test]
    fn cpu_use_is_the_difference_of_two_readings() {
        let before = CpuTimes {
            busy: 150,
            total: 1000,
        };
        let after = CpuTimes {
            busy: 450,
            total: 1400,
        };
        assert_eq!(percent_between(before, after), 75.0);
        assert_eq!(percent_between(after, after), 0.0);
        let sampler = CpuSampler::default();
        assert_eq!(sampler.busy_percent(before), 15.0, "first: since boot");
        // Within the minimum window the previous answer stands.
        assert_eq!(sampler.busy_percent(after), 15.0);
    }

    #[test]
    fn this_host_reads() {
        let load = CpuSampler::default().read();
        assert!(load.cpus >= 1 && load.memory_total_bytes > 0, "{load:?}");
        assert!(load.memory_available_bytes <= load.memory_total_bytes);
        assert!((0.0..=100.0).contains(&load.cpu_busy_percent));
    }
}
