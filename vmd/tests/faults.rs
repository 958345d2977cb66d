//! Faults around QEMU processes: vmd killed while it starts a guest, a QEMU that no VM
//! accounts for, a disk held open by a process vmd does not know, and stops, pauses and
//! reboots racing each other.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::guest::BOOT;
use common::{alive, path_str, qemus_naming, Daemon, DEADLINE};
use serde_json::{json, Value};

fn wait_dead(pid: u64) {
    let end = Instant::now() + DEADLINE;
    while alive(pid) {
        assert!(Instant::now() < end, "QEMU {pid} is still alive");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a JSON-RPC request and does not wait for the answer.
fn send_only(socket: &Path, method: &str, params: Value) -> UnixStream {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = UnixStream::connect(socket).expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body.as_bytes()).expect("body");
    s
}

/// The daemon's per-VM run directory prefix (every QEMU of this daemon names it).
fn run_prefix(d: &Daemon) -> String {
    format!("{}/vms/", d.socket.parent().expect("run dir").display())
}

/// Whether the store has a runtime row with a pid for VM `name` (read with SQLite directly).
fn stored_pid(state: &Path, name: &str) -> Option<i64> {
    let db = rusqlite::Connection::open(state.join("vmd.db")).expect("open db");
    db.query_row(
        "SELECT r.pid FROM vm_runtime r JOIN vms v ON v.id = r.vm_id WHERE v.name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .filter(|pid| *pid != 0)
}

#[test]
fn vmd_killed_while_starting_a_guest_leaves_no_orphan() {
    let d = Daemon::start();
    d.import_guest();
    d.ok(
        "vm.create",
        json!([{"name": "o1", "image": "guest", "memory_mib": 128}]),
    );
    let prefix = run_prefix(&d);
    let _pending = send_only(&d.socket, "vm.start", json!(["o1"]));
    // Kill vmd the moment its QEMU exists: QEMU needs far longer than this loop to open QMP,
    // so vmd is still in the middle of the start.
    let end = Instant::now() + DEADLINE;
    let qemu = loop {
        if let Some(pid) = qemus_naming(&prefix).first() {
            break *pid;
        }
        assert!(Instant::now() < end, "no QEMU appeared:\n{}", d.log());
    };
    let state = d.state.clone();
    let dir = d.kill9();
    println!("window hit: pid stored = {:?}", stored_pid(&state, "o1"));
    assert!(alive(qemu), "QEMU outlives vmd");
    let d = Daemon::start_in(dir);
    let vm = d.ok("vm.get", json!(["o1"]));
    assert_eq!(
        (vm["state"].as_str(), vm["pid"].as_u64()),
        (Some("running"), Some(qemu)),
        "the half-started QEMU is adopted: {vm}\n{}",
        d.log()
    );
    assert_eq!(qemus_naming(&prefix), vec![qemu], "one QEMU for the vm");
    d.wait_log("o1", "GUEST-READY o1", 1, BOOT);
    let stopped = d.ok("vm.stop", json!([{"name": "o1", "force": true}]));
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    wait_dead(qemu);
    d.ok("vm.wipe", json!(["o1"]));
    d.ok("vm.remove", json!(["o1"]));
}

#[test]
fn a_qemu_no_vm_accounts_for_is_stopped_at_start_up() {
    let d = Daemon::start();
    d.import_guest();
    let pid = d.boot("o2")["pid"].as_u64().expect("pid");
    let state = d.state.clone();
    let dir = d.kill9();
    // What the old race left behind: a live QEMU, and a store that says the VM is stopped.
    let db = rusqlite::Connection::open(state.join("vmd.db")).expect("db");
    db.execute_batch("DELETE FROM vm_runtime; UPDATE vms SET state = 'stopped' WHERE name = 'o2';")
        .expect("rewrite store");
    drop(db);
    let d = Daemon::start_in(dir);
    wait_dead(pid);
    let events = d.ok("events.list", json!([0, 1000]));
    let orphan: Vec<&Value> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "orphan_stopped")
        .collect();
    assert_eq!(orphan.len(), 1, "{events}");
    assert_eq!(orphan[0]["vm"], "o2");
    assert!(d.log().contains("stopped an orphaned QEMU"), "{}", d.log());
    assert_eq!(d.ok("vm.get", json!(["o2"]))["state"], "stopped");
    d.ok("vm.wipe", json!(["o2"]));
    assert_eq!(d.ok("vm.start", json!(["o2"]))["state"], "running");
    d.ok("vm.stop", json!([{"name": "o2", "force": true}]));
}

/// Whether another process holds `image`'s write lock (`qemu-img info` cannot share it).
fn overlay_locked(image: &str) -> bool {
    let out = std::process::Command::new("qemu-img")
        .args(["info", image])
        .output()
        .expect("qemu-img");
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("lock")
}

#[test]
fn wipe_and_remove_refuse_while_another_process_holds_the_disk() {
    let d = Daemon::start();
    d.import_guest();
    let vm = d.ok("vm.create", json!([{"name": "held", "image": "guest"}]));
    let overlay = vm["overlay_path"].as_str().expect("overlay").to_string();
    let sock = d.dir.path().join("nbd.sock");
    // qemu-nbd opens the image like a QEMU vmd does not know about, and locks it the same way.
    let mut nbd = std::process::Command::new("qemu-nbd")
        .args([
            "-f",
            "qcow2",
            "--persistent",
            "--socket",
            path_str(&sock),
            &overlay,
        ])
        .spawn()
        .expect("qemu-nbd");
    // qemu-nbd may create its socket before it opens (and locks) the image: wait for the lock
    // itself, as `qemu-img info` sees it.
    let end = Instant::now() + DEADLINE;
    while !overlay_locked(&overlay) {
        assert!(Instant::now() < end, "qemu-nbd did not lock {overlay}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for method in ["vm.wipe", "vm.remove"] {
        let err = d.err(method, json!(["held"]));
        assert_eq!(err["data"]["kind"], "in_use", "{method}: {err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap_or("")
                .contains("in use by a running QEMU"),
            "{err}"
        );
    }
    assert!(Path::new(&overlay).exists(), "nothing removed");
    let _ = nbd.kill();
    let _ = nbd.wait();
    d.ok("vm.wipe", json!(["held"]));
    d.ok("vm.remove", json!(["held"]));
}

#[test]
fn racing_stops_pauses_and_reboots_report_the_truth() {
    let d = Daemon::start();
    d.import_guest();
    d.ok(
        "vm.create",
        json!([{"name": "r1", "image": "guest", "memory_mib": 128}]),
    );
    for round in 0..6 {
        d.ok("vm.start", json!(["r1"]));
        let verb = ["vm.reboot", "vm.pause", "vm.stop"][round % 3];
        let params = match verb {
            "vm.stop" => json!([{"name": "r1", "timeout_secs": 60}]),
            _ => json!(["r1"]),
        };
        let (a, b) = std::thread::scope(|s| {
            let racer = s.spawn(|| d.call(verb, params.clone()));
            let force = d.call("vm.stop", json!([{"name": "r1", "force": true}]));
            (racer.join().expect("racer"), force)
        });
        assert!(b.get("error").is_none(), "forced stop must succeed: {b}");
        let after = d.ok("vm.get", json!(["r1"]));
        assert_eq!(after["state"], "stopped", "{after}");
        if let Some(result) = a.get("result") {
            // A racer that succeeded reports a state that was true when it returned.
            let state = result["state"].as_str().unwrap_or("");
            let ok = match verb {
                "vm.stop" => state == "stopped",
                "vm.pause" => state == "paused" || state == "stopped",
                _ => state == "running" || state == "paused",
            };
            assert!(ok, "{verb} returned {state} ({a})");
        } else {
            let kind = a["error"]["data"]["kind"].as_str().unwrap_or("");
            assert!(
                ["wrong_state", "in_use"].contains(&kind),
                "{verb} lost with {a}"
            );
        }
    }
}

/// Field 6 of `/proc/PID/stat`: the session id.
fn session_of(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    rest.split_whitespace()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .expect("session")
}

#[test]
fn qemu_leads_its_own_session_so_a_stopped_guest_survives_vmd_dying() {
    let d = Daemon::start();
    d.import_guest();
    let pid = d.boot("sess")["pid"].as_u64().expect("pid");
    // In vmd's session, a SIGSTOPped QEMU would get SIGHUP when vmd dies (orphaned group).
    assert_eq!(session_of(pid), pid, "QEMU is a session leader");
    let stop = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    stop(nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let dir = d.kill9();
    stop(nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let d = Daemon::start_in(dir);
    let vm = d.ok("vm.get", json!(["sess"]));
    assert_eq!(
        (vm["state"].as_str(), vm["pid"].as_u64()),
        (Some("running"), Some(pid)),
        "{vm}"
    );
    d.ok("vm.stop", json!([{"name": "sess", "force": true}]));
}

#[test]
fn a_qemu_vmd_cannot_reach_is_still_stopped_by_force() {
    let d = Daemon::start();
    d.import_guest();
    let pid = d.boot("lost")["pid"].as_u64().expect("pid");
    let prefix = run_prefix(&d);
    let dir = d.kill9();
    // Its QMP socket is gone: the next vmd cannot reconnect.
    for entry in std::fs::read_dir(&prefix).expect("run dirs").flatten() {
        std::fs::remove_dir_all(entry.path()).expect("remove run dir");
    }
    let d = Daemon::start_in(dir);
    assert!(
        d.log().contains("cannot reconnect to a live QEMU"),
        "{}",
        d.log()
    );
    assert_eq!(d.ok("vm.get", json!(["lost"]))["state"], "running");
    let stopped = d.ok("vm.stop", json!([{"name": "lost", "force": true}]));
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    wait_dead(pid);
    d.ok("vm.wipe", json!(["lost"]));
    assert_eq!(d.ok("vm.start", json!(["lost"]))["state"], "running");
    d.ok("vm.stop", json!([{"name": "lost", "force": true}]));
}
