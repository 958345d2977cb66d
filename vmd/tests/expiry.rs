//! Ephemeral VMs end to end on a real daemon: `ttl_secs` with each `on_expiry` action,
//! `vm.extend`, expiry after a `kill -9` and restart, VMs tied to login sessions, and the
//! EXPIRES column of `vmctl ls`. Every wait polls with a deadline.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{alive, qemus_naming, raw_disk, Daemon};
use serde_json::{json, Value};

/// How long an expiry may take once due. Generous for a loaded 2-core host, yet below the
/// worker's longest nap (30 s), so an expiry that waits for a nap instead of being woken up
/// (a missed wake-up) fails.
const EXPIRY_WAIT: Duration = Duration::from_secs(20);

/// The error kind of a failed call, or "" when it succeeded.
fn kind(resp: &Value) -> &str {
    resp["error"]["data"]["kind"].as_str().unwrap_or("")
}

/// Polls `vm.get` until the VM is gone.
fn wait_gone(d: &Daemon, name: &str) {
    let end = Instant::now() + EXPIRY_WAIT;
    loop {
        let resp = d.call("vm.get", json!([name]));
        if kind(&resp) == "not_found" {
            return;
        }
        assert!(Instant::now() < end, "{name} still there: {resp}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `vm.get` until the VM has no deadline left (its expiry ran and it stayed).
fn wait_deadline_cleared(d: &Daemon, name: &str) -> Value {
    let end = Instant::now() + EXPIRY_WAIT;
    loop {
        let vm = d.ok("vm.get", json!([name]));
        if vm["expires_at"].is_null() {
            return vm;
        }
        assert!(Instant::now() < end, "{name} never expired: {vm}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stored events of `kind` about VM `name`.
fn events(d: &Daemon, kind: &str, name: &str) -> Vec<Value> {
    let all = d.ok("events.list", json!([0, 1000]));
    all.as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == kind && e["vm"] == name)
        .cloned()
        .collect()
}

/// Asserts one `vm_expired` event for `name`, caused by no account. The event is recorded
/// once the expiry action is done, so it may follow the VM's removal by a moment.
fn assert_expired_event(d: &Daemon, name: &str) {
    let end = std::time::Instant::now() + common::DEADLINE;
    let mut expired = events(d, "vm_expired", name);
    while expired.is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
        expired = events(d, "vm_expired", name);
    }
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(expired[0].get("actor").is_none(), "{}", expired[0]);
}

fn create(d: &Daemon, name: &str, image: &str, lifetime: Value) -> Value {
    let mut req = json!({"name": name, "image": image, "memory_mib": 128});
    if let (Some(req), Some(extra)) = (req.as_object_mut(), lifetime.as_object()) {
        req.extend(extra.clone());
    }
    d.ok("vm.create", json!([req]))
}

fn small_image(d: &Daemon) {
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
}

#[test]
fn ttl_remove_stops_and_removes_a_running_vm() {
    let d = Daemon::start();
    d.import_guest();
    let vm = create(
        &d,
        "eph",
        "guest",
        json!({"ttl_secs": 5, "on_expiry": "remove"}),
    );
    let overlay = vm["overlay_path"].as_str().expect("overlay").to_string();
    let started = d.ok("vm.start", json!(["eph"]));
    let pid = started["pid"].as_u64().expect("pid of a started vm");
    wait_gone(&d, "eph");
    assert!(
        !Path::new(&overlay).exists(),
        "overlay {overlay} left behind"
    );
    assert!(!alive(pid), "qemu {pid} survived the expiry");
    assert_eq!(qemus_naming(&overlay), Vec::<u64>::new());
    assert_expired_event(&d, "eph");
    assert_eq!(events(&d, "vm_removed", "eph").len(), 1);
}

#[test]
fn wipe_and_stop_keep_the_vm_without_deadline() {
    let d = Daemon::start();
    d.import_guest();
    let wiped = create(
        &d,
        "wiped",
        "guest",
        json!({"ttl_secs": 5, "on_expiry": "wipe"}),
    );
    let fresh = wiped["disk_usage_bytes"].as_u64().expect("usage");
    let overlay = wiped["overlay_path"].as_str().expect("overlay").to_string();
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0x5a 0 8M", &overlay])
        .output()
        .expect("qemu-io");
    assert!(out.status.success(), "{out:?}");
    create(
        &d,
        "stopped",
        "guest",
        json!({"ttl_secs": 5, "on_expiry": "stop"}),
    );
    let pid = d.ok("vm.start", json!(["stopped"]))["pid"]
        .as_u64()
        .expect("pid");
    let vm = wait_deadline_cleared(&d, "wiped");
    assert_eq!(vm["state"], "stopped", "{vm}");
    let usage = vm["disk_usage_bytes"].as_u64().expect("usage");
    assert!(usage < fresh + (4 << 20), "not wiped: {fresh} -> {usage}");
    assert_expired_event(&d, "wiped");
    assert_eq!(events(&d, "vm_wiped", "wiped").len(), 1);
    let vm = wait_deadline_cleared(&d, "stopped");
    assert_eq!(vm["state"], "stopped", "{vm}");
    assert!(!alive(pid), "qemu {pid} survived a stop expiry");
    assert_expired_event(&d, "stopped");
    assert!(vm["on_expiry"].is_null() && vm["session"] == false, "{vm}");
}

#[test]
fn extend_moves_the_deadline_past_a_worker_run() {
    let d = Daemon::start();
    small_image(&d);
    let vm = create(&d, "long", "base", json!({"ttl_secs": 3}));
    let old = vm["expires_at"].as_str().expect("deadline").to_string();
    let moved = d.ok("vm.extend", json!([{"name": "long", "by_secs": 3600}]));
    let new = moved["expires_at"].as_str().expect("deadline").to_string();
    assert!(new > old, "{old} -> {new}");
    // The worker has certainly run after the old deadline once a later one expired.
    create(&d, "short", "base", json!({"ttl_secs": 5}));
    wait_gone(&d, "short");
    assert_eq!(d.ok("vm.get", json!(["long"]))["expires_at"], new);
    assert_eq!(events(&d, "vm_extended", "long").len(), 1);
    assert!(events(&d, "vm_expired", "long").is_empty());
    create(&d, "forever", "base", json!({}));
    let resp = d.call("vm.extend", json!([{"name": "forever", "by_secs": 60}]));
    assert_eq!(kind(&resp), "invalid_argument", "{resp}");
    assert!(d.ok("vm.get", json!(["forever"]))["expires_at"].is_null());
}

#[test]
fn deadline_passed_while_down_expires_at_start_up() {
    let d = Daemon::start();
    small_image(&d);
    let before = SystemTime::now();
    create(&d, "eph", "base", json!({"ttl_secs": 4}));
    create(&d, "kept", "base", json!({}));
    let dir = d.kill9();
    // Wait on the clock, not the daemon (it is dead): the deadline is at most 4 s from `before`
    // in whole seconds, so 6 s from it is safely past.
    while before.elapsed().unwrap_or_default() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = Daemon::start_in(dir);
    wait_gone(&d, "eph");
    assert_expired_event(&d, "eph");
    assert_eq!(events(&d, "vm_removed", "eph").len(), 1);
    d.ok("vm.get", json!(["kept"]));
}

#[test]
fn session_vms_end_with_their_session() {
    let d = Daemon::start();
    small_image(&d);
    let password = "correct-horse-staple";
    d.ok("user.add", json!([{"name": "sally", "password": password}]));
    let login = d.ok(
        "auth.login",
        json!([{"user": "sally", "password": password}]),
    );
    let token = login["token"].as_str().expect("session token");
    let req = json!([{"name": "tied", "image": "base", "session": true}]);
    let (status, resp) = d.call_with(token, "vm.create", req);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["result"]["session"], true, "{resp}");
    assert_eq!(d.ok("vm.get", json!(["tied"]))["session"], true);
    let resp = d.call(
        "vm.create",
        json!([{"name": "x", "image": "base", "session": true}]),
    );
    assert_eq!(kind(&resp), "invalid_argument", "{resp}");
    let (status, resp) = d.call_with(token, "auth.logout", json!([]));
    assert_eq!(status, 200, "{resp}");
    assert!(resp.get("error").is_none(), "{resp}");
    wait_gone(&d, "tied");
    assert_expired_event(&d, "tied");
    // A password change ends the sessions, and with them their VMs.
    let login = d.ok(
        "auth.login",
        json!([{"user": "sally", "password": password}]),
    );
    let token = login["token"].as_str().expect("session token");
    let req = json!([{"name": "tied2", "image": "base", "session": true}]);
    assert_eq!(d.call_with(token, "vm.create", req).0, 200);
    d.ok(
        "user.passwd",
        json!([{"name": "sally", "password": "another-horse-staple"}]),
    );
    wait_gone(&d, "tied2");
    assert_expired_event(&d, "tied2");
}

#[test]
fn vmctl_ls_shows_when_an_ephemeral_vm_expires() {
    let d = Daemon::start();
    small_image(&d);
    create(&d, "eph", "base", json!({"ttl_secs": 7200}));
    create(&d, "forever", "base", json!({}));
    let out = d.vmctl(&["ls"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap_or("");
    assert!(header.contains("EXPIRES"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_string()
    };
    assert!(
        line("eph").contains("in 1h 59m") || line("eph").contains("in 2h"),
        "{text}"
    );
    assert!(!line("forever").contains("in "), "{text}");
}
