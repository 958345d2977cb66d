//! A full state file system: the state directory is a small tmpfs, filled to the last byte
//! while guests run. Every verb either works or fails cleanly, the stored state always
//! matches what QEMU is doing (checked against the process table and, after a `kill -9` of
//! vmd, against what re-adoption reads from QEMU itself), and space can be freed through the
//! API. Below the configured floor, creates and starts are refused with `no_space`.

mod common;

use std::io::Write;
use std::path::Path;

use common::guest::BOOT;
use common::{code, qemus_naming, Daemon, Tmpfs};
use serde_json::{json, Value};

/// Writes zeros to `path` until the file system says it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    loop {
        match f.write_all(&chunk).and_then(|()| f.sync_data()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    // The last partial chunk may still fit byte by byte.
    while f.write_all(&[0u8; 4096]).is_ok() {}
}

/// The stored state of `name` agrees with the process table; returns the state.
fn agrees(d: &Daemon, name: &str) -> String {
    let vm = d.ok("vm.get", json!([name]));
    let state = vm["state"].as_str().expect("state").to_string();
    let qemus = qemus_naming(vm["overlay_path"].as_str().expect("overlay"));
    match state.as_str() {
        "running" | "paused" => assert_eq!(qemus, vec![vm["pid"].as_u64().expect("pid")], "{vm}"),
        "stopped" | "crashed" => assert!(qemus.is_empty(), "{vm} but QEMU {qemus:?} runs"),
        other => panic!("{name} left in {other}: {vm}"),
    }
    state
}

fn kind(resp: &Value) -> &str {
    resp["error"]["data"]["kind"].as_str().unwrap_or("")
}

const CONFIG: &str = "min_free_bytes = 0\nreserve_bytes = 16777216\n";

#[test]
fn a_full_state_file_system_keeps_state_and_qemu_in_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state");
    let _fs = Tmpfs::mount(&state, "128m");
    let d = Daemon::start_configured(dir, CONFIG);
    assert!(
        state.join("space-reserve").exists(),
        "reserve made at start-up"
    );
    d.import_guest();
    for n in ["a", "b", "c"] {
        d.ok(
            "vm.create",
            json!([{"name": n, "image": "guest", "memory_mib": 128}]),
        );
    }
    d.ok("vm.start", json!(["a"]));
    d.wait_log("a", "GUEST-READY a", 1, BOOT);
    fill(&state.join("filler"));

    // Every verb under ENOSPC: it works, or it fails with a clean error and changes nothing.
    let start = d.call("vm.start", json!(["b"]));
    let b = agrees(&d, "b");
    assert!(start.get("result").is_some() || b == "stopped", "{start}");
    let pause = d.call("vm.pause", json!(["a"]));
    let a = agrees(&d, "a");
    assert_eq!(
        a == "paused",
        pause.get("result").is_some(),
        "{pause} / {a}"
    );
    if pause.get("error").is_some() {
        assert!(["no_space", "internal"].contains(&kind(&pause)), "{pause}");
    }

    // kill -9 and re-adoption: what vmd had stored is what QEMU says.
    let before: Vec<String> = ["a", "b", "c"].iter().map(|n| agrees(&d, n)).collect();
    let dir = d.kill9();
    let d = Daemon::start_configured(dir, CONFIG);
    let after: Vec<String> = ["a", "b", "c"].iter().map(|n| agrees(&d, n)).collect();
    assert_eq!(before, after, "stored state survived as QEMU reports it");

    // Space is freed through the API, on a full file system.
    for n in ["a", "b"] {
        let r = d.call("vm.stop", json!([{"name": n, "force": true}]));
        assert!(
            r.get("result").is_some() || kind(&r) == "wrong_state",
            "{r}"
        );
        assert_eq!(agrees(&d, n), "stopped");
    }
    let c_overlay = d.ok("vm.get", json!(["c"]))["overlay_path"]
        .as_str()
        .map(String::from);
    d.ok("vm.remove", json!(["c"]));
    assert!(
        !Path::new(&c_overlay.expect("overlay")).exists(),
        "overlay deleted"
    );
    d.ok("vm.wipe", json!(["b"]));
    let status = d.ok("system.info", json!([]));
    assert_eq!(status["disk"]["reserve_bytes"], 0, "reserve used: {status}");

    // With space again, everything works as before.
    std::fs::remove_file(state.join("filler")).expect("free");
    assert_eq!(d.ok("vm.start", json!(["a"]))["state"], "running");
    assert_eq!(agrees(&d, "a"), "running");
    d.ok("vm.stop", json!([{"name": "a", "force": true}]));
}

#[test]
fn below_the_floor_creates_and_starts_are_refused_and_reported() {
    let d = Daemon::start_configured(tempfile::tempdir().expect("tmp"), CONFIG);
    d.import_guest();
    d.ok("vm.create", json!([{"name": "f1", "image": "guest"}]));
    let dir = d.kill9();
    // A floor no disk meets: 1 PiB.
    let d = Daemon::start_configured(dir, "min_free_bytes = 1125899906842624\n");
    let info = d.ok("system.info", json!([]));
    assert_eq!(info["disk"]["low"], true, "{info}");
    let events = d.ok("events.list", json!([0, 1000]));
    let low = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "space_low")
        .count();
    assert_eq!(low, 1, "{events}");
    for (method, params) in [
        ("vm.create", json!([{"name": "f2", "image": "guest"}])),
        ("vm.start", json!(["f1"])),
    ] {
        let err = d.err(method, params);
        assert_eq!(
            (code(&err), err["data"]["kind"].as_str()),
            (507, Some("no_space")),
            "{err}"
        );
        assert!(
            err["data"]["hint"]
                .as_str()
                .unwrap_or("")
                .contains("min_free_bytes"),
            "{err}"
        );
    }
    let listed = d.ok("vm.list", json!([]));
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "nothing created: {listed}"
    );
    assert_eq!(listed[0]["state"], "stopped");
    let out = d.vmctl(&["create", "f3", "--image", "guest"]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = d.vmctl(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("LOW"),
        "{status:?}"
    );
    d.ok("vm.remove", json!(["f1"]));
}
