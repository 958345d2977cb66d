//! Guests outlive the daemon: `kill -9` vmd with three guests running; they keep running, the
//! next vmd re-adopts them before it reports ready, and stops them. A guest that died while vmd
//! was down is marked crashed.

mod common;

use std::time::Duration;

use common::guest::BOOT;
use common::Daemon;
use serde_json::json;
use testkit::procs::alive;

#[test]
fn guests_survive_kill_9_and_are_readopted_then_stopped() {
    let d = Daemon::start();
    d.import_guest();
    let names = ["g1", "g2", "g3"];
    let pids: Vec<u64> = names
        .iter()
        .map(|n| d.boot(n)["pid"].as_u64().expect("pid"))
        .collect();
    for n in names {
        d.wait_log(n, &format!("GUEST-READY {n}"), 1, BOOT);
    }
    let dir = d.kill9();
    assert!(pids.iter().all(|p| alive(*p)), "guests must outlive vmd");
    let d = Daemon::start_in(dir);
    for (n, pid) in names.iter().zip(&pids) {
        let vm = d.ok("vm.get", json!([n]));
        assert_eq!(
            (vm["state"].as_str(), vm["pid"].as_u64()),
            (Some("running"), Some(*pid)),
            "{vm}"
        );
    }
    assert!(d.log().contains("vm re-adopted"), "{}", d.log());
    let adopted = d
        .ok("events.list", json!([0, 1000]))
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "adopted")
        .count();
    assert_eq!(adopted, 3);
    for n in names {
        let vm = d.ok("vm.stop", json!([{"name": n, "timeout_secs": 60}]));
        assert_eq!(vm["state"], "stopped", "{vm}");
    }
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "stopped through the new vmd"
    );
    let log = d.wait_log("g1", "GUEST-POWEROFF", 1, BOOT);
    assert!(log.contains("re-adopted QEMU pid"), "{log}");
}

#[test]
fn guest_that_died_while_vmd_was_down_is_crashed() {
    let d = Daemon::start();
    d.import_guest();
    let pid = d.boot("gone")["pid"].as_u64().expect("pid");
    let dir = d.kill9();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(std::time::Instant::now() < end, "qemu did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = Daemon::start_in(dir);
    let vm = d.ok("vm.get", json!(["gone"]));
    assert_eq!(vm["state"], "crashed", "{vm}");
    assert_eq!(vm["reason"], "QEMU exited while vmd was not running");
    assert_eq!(d.ok("vm.start", json!(["gone"]))["state"], "running");
    d.ok("vm.stop", json!([{"name": "gone", "force": true}]));
}
