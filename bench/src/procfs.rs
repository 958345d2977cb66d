//! What the bench reads from `/proc`: RSS, PSS, command lines, liveness, load, available
//! memory; and the last-resort
//! cleanup that kills, by pid, processes whose command line names one of the bench's own
//! temporary directories.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A `… kB` field of `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`, …).
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    kib_field(&status, field).ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// The proportional set size of `pid` in KiB (`Pss` of `/proc/PID/smaps_rollup`): each page
/// counted divided by the number of processes that map it.
pub fn pss_kib(pid: u32) -> anyhow::Result<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    kib_field(&rollup, "Pss").ok_or_else(|| anyhow::anyhow!("no Pss in /proc/{pid}/smaps_rollup"))
}

/// A `… kB` field of `/proc/meminfo` (`MemAvailable`, …).
pub fn meminfo_kib(field: &str) -> anyhow::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    kib_field(&meminfo, field).ok_or_else(|| anyhow::anyhow!("no {field} in /proc/meminfo"))
}

/// The value of a `Field:   123 kB` line.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) of `pid` in ms.
pub fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rfind(')').map_or("", |at| &stat[at + 1..]);
    // After the command: field 3 is first; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100);
    Ok(ticks as f64 * 1000.0 / hz as f64)
}

/// Context switches (voluntary + involuntary) of every live thread of `pid`.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The argv of `pid` (empty when it is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next().map(str::to_string));
    !matches!(state.as_deref(), Some("Z" | "X" | "x") | None)
}

/// Open file descriptors of `pid` (0 when it is gone).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// SIGKILLs every live process (other than this one) whose command line mentions `dir`,
/// and returns their pids. Used only on the bench's private temporary directories, so only
/// QEMU processes the bench caused can match.
pub fn kill_strays(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if pid != me && is_alive(pid) && cmdline(pid).iter().any(|a| a.contains(&needle)) {
            signal(pid, Signal::SIGKILL);
            killed.push(pid);
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(rss_kib(me).expect("rss") > 0);
        assert!(status_kib(me, "RssAnon").expect("anon") > 0);
        assert!(pss_kib(me).expect("pss") > 0);
        assert!(meminfo_kib("MemAvailable").expect("available") > 0);
        assert!(!cmdline(me).is_empty());
        assert!(cpu_ms(me).expect("cpu") >= 0.0);
        assert!(context_switches(me) > 0);
    }

    #[test]
    fn strays_are_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("marker");
        std::fs::write(&marker, "").expect("marker");
        let mut child = std::process::Command::new("tail")
            .arg("-f")
            .arg(&marker)
            .spawn()
            .expect("tail");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cmdline(pid).len() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(kill_strays(dir.path()), vec![pid]);
        let _ = child.wait();
        assert!(!is_alive(pid));
    }
}
