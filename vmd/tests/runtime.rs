//! Real QEMU guests under TCG, booted from the project's test guest through vmd: boot to the
//! ready marker, persistence and isolation of overlays, graceful and forced stops, pause and
//! resume, crash detection, and start failures carrying QEMU's own words.

mod common;

use std::time::Duration;

use common::guest::{Console, BOOT};
use common::Daemon;
use serde_json::json;

#[test]
fn boots_to_ready_marker_and_stops_gracefully() {
    let d = Daemon::start();
    d.import_guest();
    let vm = d.boot("web1");
    assert_eq!(vm["state"], "running");
    assert_eq!(
        vm["accelerator"], "tcg",
        "this host has no kvm_intel/kvm_amd"
    );
    assert!(
        vm["pid"].as_u64().is_some() && vm["vnc_socket"].as_str().is_some(),
        "{vm}"
    );
    let log = d.wait_log("web1", "GUEST-READY web1", 1, BOOT);
    assert!(
        log.contains("[vmd "),
        "vmd's own lines are in the log: {log}"
    );
    let stopped = d.ok("vm.stop", json!([{"name": "web1", "timeout_secs": 60}]));
    assert_eq!(stopped["state"], "stopped");
    assert!(
        stopped["pid"].is_null() && stopped["reason"].is_null(),
        "{stopped}"
    );
    let log = d.wait_log("web1", "GUEST-POWEROFF", 1, BOOT);
    assert!(
        !log.contains("forcing"),
        "the guest powered off by itself: {log}"
    );
}

#[test]
fn files_persist_per_vm_and_wipe_resets() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("a");
    d.boot("b");
    d.wait_log("a", "GUEST-READY a", 1, BOOT);
    let mut con = Console::attach(&d, "a");
    con.run("echo kept-in-a > /data/note && sync");
    drop(con);
    d.ok("vm.stop", json!([{"name": "a", "timeout_secs": 60}]));
    d.ok("vm.start", json!(["a"]));
    d.wait_log("a", "GUEST-READY a", 2, BOOT);
    let mut con = Console::attach(&d, "a");
    con.run("grep -q kept-in-a /data/note");
    drop(con);
    d.wait_log("b", "GUEST-READY b", 1, BOOT);
    let mut con = Console::attach(&d, "b");
    con.run("test ! -e /data/note");
    drop(con);
    for name in ["a", "b"] {
        d.ok("vm.stop", json!([{"name": name, "force": true}]));
    }
    d.ok("vm.wipe", json!(["a"]));
    d.ok("vm.start", json!(["a"]));
    let log = d.wait_log("a", "GUEST-READY a", 3, BOOT);
    assert!(
        log.trim_end().contains("GUEST-BOOT-COUNT 1"),
        "wipe resets the boot counter"
    );
    let mut con = Console::attach(&d, "a");
    con.run("test ! -e /data/note");
}

#[test]
fn paused_guest_ignores_the_button_and_is_forced_after_the_timeout() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("p1");
    d.wait_log("p1", "GUEST-READY p1", 1, BOOT);
    assert_eq!(d.ok("vm.pause", json!(["p1"]))["state"], "paused");
    let err = d.err("vm.pause", json!(["p1"]));
    assert_eq!(err["code"], 412, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("vm p1 is paused"),
        "{err}"
    );
    let stopped = d.ok("vm.stop", json!([{"name": "p1", "timeout_secs": 2}]));
    assert_eq!(stopped["state"], "stopped");
    let log = d.wait_log("p1", "forcing", 1, BOOT);
    assert!(log.contains("did not power off within 2 s"), "{log}");
    let kinds: Vec<String> = d
        .ok("events.list", json!([0, 1000]))
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["vm"] == "p1")
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert!(pos("powerdown_sent") < pos("stop_forced"), "{kinds:?}");
}

#[test]
fn resume_reboot_and_state_errors() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("r1");
    let err = d.err("vm.start", json!(["r1"]));
    assert_eq!(err["code"], 412, "{err}");
    for method in ["vm.wipe", "vm.remove"] {
        let err = d.err(method, json!(["r1"]));
        assert_eq!(
            err["message"], "vm r1 is running; stop it first (vmctl stop)",
            "{err}"
        );
    }
    d.ok("vm.pause", json!(["r1"]));
    assert_eq!(d.ok("vm.resume", json!(["r1"]))["state"], "running");
    d.wait_log("r1", "GUEST-READY r1", 1, BOOT);
    d.ok("vm.reboot", json!(["r1"]));
    d.wait_log("r1", "GUEST-READY r1", 2, BOOT);
    d.ok("vm.stop", json!([{"name": "r1", "force": true}]));
    let err = d.err("vm.stop", json!([{"name": "r1"}]));
    assert_eq!(err["code"], 412, "{err}");
}

#[test]
fn killed_qemu_is_crashed_with_a_reason_and_starts_again() {
    let d = Daemon::start();
    d.import_guest();
    let vm = d.boot("k1");
    let pid = vm["pid"].as_u64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill qemu");
    let crashed = d.wait_state("k1", "crashed", Duration::from_secs(30));
    let reason = crashed["reason"].as_str().unwrap_or("");
    assert!(reason.contains("SIGKILL"), "{crashed}");
    assert!(crashed["pid"].is_null(), "{crashed}");
    assert_eq!(d.ok("vm.start", json!(["k1"]))["state"], "running");
    d.wait_log("k1", "GUEST-READY k1", 1, BOOT);
    d.ok("vm.stop", json!([{"name": "k1", "force": true}]));
}

#[test]
fn start_failure_reports_qemu_error_and_leaves_vm_stopped() {
    let d = Daemon::start();
    d.import_guest();
    let vm = d.ok(
        "vm.create",
        json!([{"name": "bad", "image": "guest", "memory_mib": 128}]),
    );
    std::fs::remove_file(vm["overlay_path"].as_str().expect("overlay")).expect("break the vm");
    let err = d.err("vm.start", json!(["bad"]));
    assert_eq!(err["code"], 500, "{err}");
    let msg = err["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("cannot start vm bad: QEMU exited with status 1"),
        "{err}"
    );
    assert!(
        msg.contains("No such file or directory"),
        "QEMU's own words: {err}"
    );
    let vm = d.ok("vm.get", json!(["bad"]));
    assert_eq!(vm["state"], "stopped");
    assert!(
        vm["reason"].as_str().unwrap_or("").contains("No such file"),
        "{vm}"
    );
}

#[test]
fn force_stop_cuts_short_a_pending_graceful_stop() {
    let d = std::sync::Arc::new(Daemon::start());
    d.import_guest();
    d.boot("f1");
    d.ok("vm.pause", json!(["f1"]));
    let graceful = {
        let d = d.clone();
        std::thread::spawn(move || d.call("vm.stop", json!([{"name": "f1", "timeout_secs": 600}])))
    };
    d.wait_state("f1", "stopping", Duration::from_secs(30));
    let busy = d.err("vm.start", json!(["f1"]));
    assert_eq!(busy["message"], "vm f1 is busy: stop in progress", "{busy}");
    assert!(
        busy["data"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("--force"),
        "{busy}"
    );
    let forced = d.ok("vm.stop", json!([{"name": "f1", "force": true}]));
    assert_eq!(forced["state"], "stopped");
    let resp = graceful.join().expect("join");
    assert_eq!(
        resp["result"]["state"], "stopped",
        "the graceful stop returns too: {resp}"
    );
}

/// A pause right after a resume is not undone by the resume's late QEMU event: every pause
/// answers `paused`, and the record stays `paused` (the next resume is accepted from it).
#[test]
fn back_to_back_resume_and_pause_keep_the_record_in_step() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("g");
    for round in 0..20 {
        let paused = d.ok("vm.pause", json!(["g"]));
        assert_eq!(paused["state"], "paused", "round {round}: {paused}");
        let running = d.ok("vm.resume", json!(["g"]));
        assert_eq!(running["state"], "running", "round {round}: {running}");
    }
    d.ok("vm.pause", json!(["g"]));
    let events = d.ok("events.list", json!([0, 1000]));
    let resumed = d.ok("vm.resume", json!(["g"]));
    assert_eq!(
        resumed["state"], "running",
        "paused record accepted the resume; {events}"
    );
    d.ok("vm.stop", json!([{"name": "g", "force": true}]));
}
