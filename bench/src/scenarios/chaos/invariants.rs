//! What must hold after every restart of a killed vmd, and the checks.
//!
//! The QEMUs of this vmd are the live processes whose command line contains
//! `<socket dir>/vms/` (vmd puts each VM's QMP socket at `<socket dir>/vms/<vm id>/qmp`); the
//! VM they run is `-name guest=NAME`. The database is checked on a copy taken while vmd is
//! dead (the copy, not vmd's file, replays the WAL), so the check never touches vmd's files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::procfs;
use crate::rpc::Client;

/// The invariants, by the name used in the report, with what a violation means.
pub const INVARIANTS: [(&str, &str); 9] = [
    ("orphan_qemu", "a QEMU of this vmd whose pid no VM lists"),
    ("duplicate_qemu", "a second QEMU for one VM"),
    (
        "running_without_qemu",
        "a VM running/paused without its live QEMU",
    ),
    (
        "stopped_with_qemu",
        "a VM stopped/crashed while a QEMU runs it",
    ),
    (
        "stuck_transitional",
        "a VM still starting/stopping after the deadline",
    ),
    ("db_integrity", "PRAGMA integrity_check not ok"),
    ("missing_overlay", "a VM whose overlay file is missing"),
    ("orphan_overlay", "a visible overlay file no VM owns"),
    ("panic", "a panic in vmd's log"),
];

/// How long VMs may stay `starting`/`stopping` once vmd is ready again.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// Violation counts by invariant name (every invariant present, zero or not).
pub type Violations = BTreeMap<&'static str, u64>;

/// An empty tally.
pub fn none() -> Violations {
    INVARIANTS.iter().map(|(name, _)| (*name, 0)).collect()
}

/// A QEMU process of this vmd.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Its pid.
    pub pid: u32,
    /// The VM id in its socket paths.
    pub vm_id: String,
    /// Its `-name guest=…`.
    pub name: String,
}

/// Live QEMUs whose command line names `run_vms` (`<socket dir>/vms/`).
pub fn qemus(run_vms: &Path) -> Vec<Qemu> {
    let needle = format!("{}/", run_vms.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let argv = procfs::cmdline(pid);
            let id = argv.iter().find_map(|a| {
                let rest = &a[a.find(&needle)? + needle.len()..];
                Some(rest.split('/').next()?.to_string())
            })?;
            let name = argv
                .windows(2)
                .find(|w| w[0] == "-name")
                .and_then(|w| w[1].strip_prefix("guest="))
                .map(|v| v.split(',').next().unwrap_or("").to_string())
                .unwrap_or_default();
            procfs::is_alive(pid).then_some(Qemu {
                pid,
                vm_id: id,
                name,
            })
        })
        .collect()
}

/// `PRAGMA integrity_check` on a copy of `db` (and its WAL); true when it says `ok`.
pub fn db_ok(db: &Path, scratch: &Path) -> anyhow::Result<bool> {
    let copy = scratch.join("check.db");
    for suffix in ["", "-wal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        let src = PathBuf::from(format!("{}{suffix}", db.display()));
        if src.exists() {
            std::fs::copy(&src, format!("{}{suffix}", copy.display()))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    let _ = std::fs::remove_file(format!("{}-shm", copy.display()));
    let conn = rusqlite::Connection::open(&copy).context("opening the copied database")?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows == ["ok"])
}

/// Polls `vm.list` until no VM is `starting`/`stopping` or the deadline passes; returns the
/// last list and how many were still in transit.
pub fn settle(rpc: &Client) -> anyhow::Result<(Vec<Value>, u64)> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let list = vm_list(rpc)?;
        let transit = list
            .iter()
            .filter(|v| matches!(v["state"].as_str(), Some("starting" | "stopping")))
            .count() as u64;
        if transit == 0 || Instant::now() >= deadline {
            return Ok((list, transit));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `vm.list` as a vector.
pub fn vm_list(rpc: &Client) -> anyhow::Result<Vec<Value>> {
    match rpc.call("vm.list", serde_json::json!([]))? {
        Value::Array(list) => Ok(list),
        other => anyhow::bail!("vm.list answered {other}"),
    }
}

/// Checks the process invariants of `list` against `qemus`; returns the pids nobody owns,
/// each with a description (its VM's listed state and reason).
pub fn check_processes(list: &[Value], qemus: &[Qemu], v: &mut Violations) -> Vec<(u32, String)> {
    let known: BTreeSet<u32> = list
        .iter()
        .filter_map(|vm| vm["pid"].as_u64().map(|p| p as u32))
        .collect();
    let state_of: BTreeMap<&str, &str> = list
        .iter()
        .filter_map(|vm| Some((vm["name"].as_str()?, vm["state"].as_str()?)))
        .collect();
    let reason_of = |name: &str| {
        list.iter()
            .find(|vm| vm["name"] == name)
            .and_then(|vm| vm["reason"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut orphans = Vec::new();
    for q in qemus.iter().filter(|q| !known.contains(&q.pid)) {
        *v.entry("orphan_qemu").or_default() += 1;
        if matches!(
            state_of.get(q.name.as_str()),
            Some(&("stopped" | "crashed"))
        ) {
            *v.entry("stopped_with_qemu").or_default() += 1;
        }
        let state = state_of
            .get(q.name.as_str())
            .copied()
            .unwrap_or("not listed");
        let desc = format!(
            "QEMU pid {} of VM {} ({state}; reason: {:?})",
            q.pid,
            q.name,
            reason_of(&q.name)
        );
        orphans.push((q.pid, desc));
    }
    let mut per_vm: BTreeMap<&str, u64> = BTreeMap::new();
    for q in qemus {
        *per_vm.entry(q.vm_id.as_str()).or_default() += 1;
    }
    *v.entry("duplicate_qemu").or_default() += per_vm.values().map(|n| n - 1).sum::<u64>();
    let live: BTreeSet<u32> = qemus.iter().map(|q| q.pid).collect();
    for vm in list {
        let pid = vm["pid"].as_u64().map(|p| p as u32);
        match vm["state"].as_str() {
            Some("running" | "paused") if !pid.is_some_and(|p| live.contains(&p)) => {
                *v.entry("running_without_qemu").or_default() += 1;
            }
            Some("stopped" | "crashed") if pid.is_some_and(|p| live.contains(&p)) => {
                *v.entry("stopped_with_qemu").or_default() += 1;
            }
            _ => {}
        }
    }
    orphans
}

/// Checks that every VM has its overlay and every visible overlay has a VM.
pub fn check_overlays(list: &[Value], overlays_dir: &Path, v: &mut Violations) {
    let owned: BTreeSet<PathBuf> = list
        .iter()
        .filter_map(|vm| vm["overlay_path"].as_str().map(PathBuf::from))
        .collect();
    let missing = owned.iter().filter(|p| !p.exists()).count() as u64;
    *v.entry("missing_overlay").or_default() += missing;
    let orphans = std::fs::read_dir(overlays_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "qcow2"))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .filter(|p| !owned.contains(p))
                .count() as u64
        })
        .unwrap_or(0);
    *v.entry("orphan_overlay").or_default() += orphans;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pid: u32, id: &str, name: &str) -> Qemu {
        Qemu {
            pid,
            vm_id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn process_invariants() {
        let list = vec![
            json!({"name": "a", "state": "running", "pid": 10}),
            json!({"name": "b", "state": "stopped"}),
            json!({"name": "c", "state": "running", "pid": 30}),
        ];
        let qemus = [q(10, "1", "a"), q(11, "1", "a"), q(20, "2", "b")];
        let mut v = none();
        let orphans = check_processes(&list, &qemus, &mut v);
        let pids: Vec<u32> = orphans.iter().map(|o| o.0).collect();
        assert_eq!(pids, vec![11, 20]);
        assert!(orphans[1].1.contains("VM b (stopped"));
        assert_eq!(v["orphan_qemu"], 2);
        assert_eq!(v["duplicate_qemu"], 1);
        assert_eq!(v["stopped_with_qemu"], 1);
        assert_eq!(v["running_without_qemu"], 1);
    }

    #[test]
    fn overlays_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owned = dir.path().join("a.qcow2");
        std::fs::write(&owned, "").expect("a");
        std::fs::write(dir.path().join("orphan.qcow2"), "").expect("orphan");
        std::fs::write(dir.path().join(".tmp-x.qcow2"), "").expect("hidden");
        let list = vec![
            json!({"overlay_path": owned}),
            json!({"overlay_path": dir.path().join("gone.qcow2")}),
        ];
        let mut v = none();
        check_overlays(&list, dir.path(), &mut v);
        assert_eq!((v["missing_overlay"], v["orphan_overlay"]), (1, 1));
    }
}
