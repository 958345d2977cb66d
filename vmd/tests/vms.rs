//! VM definitions as real qcow2 overlays: instant creation on any base size, explicit backing
//! format, growing disks, atomic wipe, removal, and concurrent creates of one name.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{convert, path_str, raw_disk, Daemon};
use serde_json::{json, Value};

fn info(path: &Path) -> Value {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "-f", "qcow2", "--output=json", path_str(path)])
        .output()
        .expect("qemu-img info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn qemu_io(path: &Path, command: &str) -> bool {
    Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command, path_str(path)])
        .output()
        .map(|o| {
            o.status.success()
                && !String::from_utf8_lossy(&o.stdout).contains("Pattern verification failed")
        })
        .expect("qemu-io (qemu-utils)")
}

#[test]
fn overlay_has_explicit_backing_and_grows() {
    let d = Daemon::start();
    let base = d.import(&raw_disk(d.dir.path(), "b.img", "64M"), "base");
    let vm = d.ok("vm.create", json!([{"name": "web1", "image": "base", "cpus": 2, "memory_mib": 256, "disk_bytes": 1u64 << 30}]));
    assert_eq!(
        (
            vm["state"].as_str(),
            vm["cpus"].as_u64(),
            vm["memory_mib"].as_u64()
        ),
        (Some("stopped"), Some(2), Some(256))
    );
    let overlay = PathBuf::from(vm["overlay_path"].as_str().expect("overlay"));
    let i = info(&overlay);
    assert_eq!(i["backing-filename"], base["path"], "absolute backing path");
    assert_eq!(
        i["backing-filename-format"], "qcow2",
        "explicit backing format"
    );
    assert_eq!(i["virtual-size"], 1u64 << 30);
    assert_eq!(vm["disk_bytes"], 1u64 << 30);
    let defaults = d.ok("vm.create", json!([{"name": "web2", "image": "base"}]));
    assert_eq!(
        (defaults["cpus"].as_u64(), defaults["memory_mib"].as_u64()),
        (Some(1), Some(512))
    );
    assert_eq!(defaults["disk_bytes"], base["virtual_size_bytes"]);
}

#[test]
fn overlay_stays_tiny_on_a_large_base() {
    let d = Daemon::start();
    let big = convert(&raw_disk(d.dir.path(), "big.img", "20G"), "qcow2");
    d.import(&big, "big");
    let vm = d.ok("vm.create", json!([{"name": "v", "image": "big"}]));
    assert_eq!(vm["disk_bytes"], 20u64 << 30);
    assert!(
        vm["disk_usage_bytes"].as_u64().unwrap_or(u64::MAX) < 1 << 20,
        "overlay too big: {vm}"
    );
}

#[test]
fn wipe_replaces_the_overlay_with_a_fresh_one() {
    let d = Daemon::start();
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
    let vm = d.ok("vm.create", json!([{"name": "a", "image": "base"}]));
    let overlay = PathBuf::from(vm["overlay_path"].as_str().expect("overlay"));
    assert!(
        qemu_io(&overlay, "write -P 0xab 1M 1M"),
        "write into overlay"
    );
    assert!(
        qemu_io(&overlay, "read -P 0xab 1M 1M"),
        "data is there before wipe"
    );
    let wiped = d.ok("vm.wipe", json!(["a"]));
    assert_eq!(wiped["name"], "a");
    assert!(
        qemu_io(&overlay, "read -P 0 1M 1M"),
        "wipe must reset to the base's content"
    );
    assert_eq!(info(&overlay)["backing-filename-format"], "qcow2");
    let hidden: Vec<_> = std::fs::read_dir(overlay.parent().expect("dir"))
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary files left behind: {hidden:?}");
}

#[test]
fn remove_deletes_row_and_overlay() {
    let d = Daemon::start();
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
    let vm = d.ok("vm.create", json!([{"name": "gone", "image": "base"}]));
    let overlay = PathBuf::from(vm["overlay_path"].as_str().expect("overlay"));
    d.ok("vm.remove", json!(["gone"]));
    assert!(!overlay.exists());
    assert_eq!(d.ok("vm.list", json!([])), json!([]));
    assert_eq!(d.ok("image.get", json!(["base"]))["used_by"], json!([]));
}

#[test]
fn concurrent_creates_of_one_name_yield_exactly_one_vm() {
    let d = std::sync::Arc::new(Daemon::start());
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "base");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || {
                d.call("vm.create", json!([{"name": "race", "image": "base"}]))
            })
        })
        .collect();
    let results: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let ok = results.iter().filter(|r| r.get("result").is_some()).count();
    let conflicts = results.iter().filter(|r| r["error"]["code"] == 409).count();
    assert_eq!((ok, conflicts), (1, 7), "{results:?}");
    let files: Vec<_> = std::fs::read_dir(d.state.join("overlays"))
        .expect("read")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}
