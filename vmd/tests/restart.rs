//! Crash safety: `kill -9` and restart keeps everything; start-up reconcile reports
//! disagreements between rows and files; one daemon per state directory and per socket.

mod common;

use std::process::{Command, Stdio};

use common::{path_str, raw_disk, vmd_bin, Daemon};
use serde_json::json;

#[test]
fn kill_9_and_restart_lists_everything_as_before() {
    let d = Daemon::start();
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
    for name in ["a", "b", "c"] {
        d.ok(
            "vm.create",
            json!([{"name": name, "image": "base", "cpus": 2}]),
        );
    }
    let before = d.snapshot();
    let socket = d.socket.clone();
    let dir = d.kill9();
    assert!(socket.exists(), "kill -9 leaves a stale socket behind");
    let d = Daemon::start_in(dir);
    assert_eq!(d.snapshot(), before);
    assert_eq!(d.ok("system.info", json!([]))["issues"], json!([]));
}

#[test]
fn reconcile_reports_orphans_and_missing_files() {
    let d = Daemon::start();
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
    d.ok("vm.create", json!([{"name": "keep", "image": "base"}]));
    d.ok("vm.create", json!([{"name": "lost", "image": "base"}]));
    let overlays = d.state.join("overlays");
    let dir = d.kill9();
    std::fs::remove_file(overlays.join("lost.qcow2")).expect("lose an overlay");
    std::fs::copy(overlays.join("keep.qcow2"), overlays.join("stray.qcow2")).expect("orphan");
    std::fs::write(overlays.join(".tmp-x-1-0.qcow2"), b"half-done").expect("leftover");
    let d = Daemon::start_in(dir);
    let issues = d.ok("system.info", json!([]))["issues"].clone();
    let kinds: Vec<(String, String)> = issues
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or("").into(),
                i["name"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("missing_overlay".into(), "lost".into())),
        "{issues}"
    );
    assert!(
        kinds.contains(&("orphan_overlay".into(), "stray".into())),
        "{issues}"
    );
    assert_eq!(kinds.len(), 2, "{issues}");
    assert!(
        overlays.join("stray.qcow2").exists(),
        "orphans are reported, never deleted"
    );
    assert!(
        !overlays.join(".tmp-x-1-0.qcow2").exists(),
        "hidden leftovers are cleaned"
    );
    assert!(d.log().contains("store and disk disagree"), "{}", d.log());
    let names: Vec<String> = d
        .ok("vm.list", json!([]))
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v["name"].to_string())
        .collect();
    assert_eq!(names, vec!["\"keep\"", "\"lost\""], "rows are kept");
    d.ok("vm.remove", json!(["lost"]));
}

#[test]
fn second_daemon_on_same_state_or_live_socket_refuses() {
    let d = Daemon::start();
    let same_state = Command::new(vmd_bin())
        .args([
            "--socket",
            path_str(&d.dir.path().join("other.sock")),
            "--state-dir",
            path_str(&d.state),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!same_state.status.success());
    assert!(
        String::from_utf8_lossy(&same_state.stderr)
            .contains("another vmd is using state directory"),
        "{same_state:?}"
    );
    let other_state = d.dir.path().join("state2");
    let same_socket = Command::new(vmd_bin())
        .args([
            "--socket",
            path_str(&d.socket),
            "--state-dir",
            path_str(&other_state),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!same_socket.status.success());
    assert!(
        String::from_utf8_lossy(&same_socket.stderr).contains("another vmd is already serving"),
        "{same_socket:?}"
    );
    assert_eq!(
        d.ok("vm.list", json!([])),
        json!([]),
        "the first daemon still serves"
    );
}
