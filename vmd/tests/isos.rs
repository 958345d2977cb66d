//! The ISO library and bases made from ISOs, with real QEMU: upload and validation, CD-ROM
//! attach/detach while stopped and while running, dependency-checked deletes, the whole
//! install → seal → use flow, publishing a VM as a base, and the UEFI memory rule.

mod common;

use std::time::Duration;

use common::guest::{Console, BOOT};
use common::{code, Daemon};
use serde_json::json;

#[test]
fn non_iso_upload_is_refused_and_leaves_nothing() {
    let d = Daemon::start();
    let before = d.snapshot();
    let text = d.dir.path().join("x.iso");
    std::fs::write(&text, vec![b'x'; 100_000]).expect("write");
    let upload = d.upload(&text);
    let err = d.err(
        "iso.import",
        json!([{"name": "fake", "upload_id": upload["upload_id"]}]),
    );
    assert_eq!(code(&err), 400, "{err}");
    assert!(
        err["data"]["chain"]
            .to_string()
            .contains("this is not an ISO"),
        "{err}"
    );
    assert_eq!(d.snapshot(), before);
    assert_eq!(
        std::fs::read_dir(d.state.join("isos"))
            .expect("isos")
            .count(),
        0
    );
}

#[test]
fn iso_in_use_cannot_be_removed_and_detach_frees_it() {
    let d = Daemon::start();
    d.import_guest();
    let iso = d.import_iso("tools");
    assert_eq!(iso["used_by"], json!([]));
    assert_eq!(
        iso["size_bytes"],
        std::fs::metadata(common::guest::guest_iso())
            .expect("iso")
            .len()
    );
    d.ok(
        "vm.create",
        json!([{"name": "v1", "image": "guest", "memory_mib": 128, "iso": "tools"}]),
    );
    assert_eq!(d.ok("vm.get", json!(["v1"]))["iso"], "tools");
    let err = d.err("iso.remove", json!(["tools"]));
    assert_eq!(
        (code(&err), err["message"].as_str()),
        (423, Some("iso tools is used by 1 vm: v1")),
        "{err}"
    );
    d.ok("vm.detach_iso", json!(["v1"]));
    d.ok("iso.remove", json!(["tools"]));
    let events = d.ok("events.list", json!([]));
    let iso_events: Vec<_> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["iso"] == "tools")
        .map(|e| (e["kind"].clone(), e.get("image").cloned()))
        .collect();
    assert_eq!(
        iso_events,
        [(json!("iso_imported"), None), (json!("iso_removed"), None)],
        "{events}"
    );
    let err = d.err(
        "vm.create",
        json!([{"name": "v2", "image": "guest", "iso": "tools"}]),
    );
    assert_eq!(code(&err), 404, "{err}");
}

#[test]
fn iso_attach_and_detach_while_running_reach_the_guest() {
    let d = Daemon::start();
    d.import_guest();
    d.import_iso("tools");
    d.boot("live");
    d.wait_log("live", "GUEST-READY live", 1, BOOT);
    let mut con = Console::attach(&d, "live");
    // Reading a sector is the guest's view of "a medium is inserted" (an empty drive fails).
    let read = "dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null";
    con.run(&format!("! {read}"));
    assert_eq!(
        d.ok("vm.attach_iso", json!([{"vm": "live", "iso": "tools"}]))["iso"],
        "tools"
    );
    con.run(&format!(
        "i=0; until {read} || [ $i -ge 100 ]; do sleep 0.2; i=$((i+1)); done; {read}"
    ));
    con.run("mkdir -p /mnt/cd && mount -t iso9660 -o ro /dev/sr0 /mnt/cd && ls /mnt/cd/install && umount /mnt/cd");
    assert!(d.ok("vm.detach_iso", json!(["live"]))["iso"].is_null());
    con.run(&format!(
        "i=0; while {read} && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done; ! {read}"
    ));
    drop(con);
    d.ok("vm.stop", json!([{"name": "live", "force": true}]));
}

#[test]
fn install_from_iso_seal_and_boot_two_vms() {
    let d = Daemon::start();
    d.import_iso("installer");
    let base = d.ok(
        "image.create",
        json!([{"name": "lab", "size_bytes": 1u64 << 30, "iso": "installer", "memory_mib": 256}]),
    );
    assert_eq!(
        (base["sealed"].as_bool(), base["used_by"].clone()),
        (Some(false), json!(["lab"])),
        "{base}"
    );
    let err = d.err("vm.create", json!([{"name": "early", "image": "lab"}]));
    assert_eq!(
        (code(&err), err["message"].as_str()),
        (
            412,
            Some("image lab is not sealed yet (still being installed)")
        ),
        "{err}"
    );
    let err = d.err("iso.remove", json!(["installer"]));
    assert_eq!(code(&err), 423, "the unfinished base uses the ISO: {err}");
    assert_eq!(
        d.ok("vm.wipe", json!(["lab"]))["install"],
        true,
        "an install disk wipes to blank"
    );
    let d = Daemon::start_in(d.kill9());
    assert_eq!(
        d.ok("system.info", json!([]))["issues"],
        json!([]),
        "an unsealed base is not an inconsistency"
    );
    let err = d.err("image.seal", json!(["lab"]));
    assert_eq!(
        (code(&err), err["message"].as_str()),
        (
            412,
            Some("image lab's disk is still blank: nothing was installed")
        )
    );
    let vm = d.ok("vm.start", json!(["lab"]));
    assert_eq!(
        (vm["install"].as_bool(), vm["iso"].as_str()),
        (Some(true), Some("installer"))
    );
    let err = d.err("image.seal", json!(["lab"]));
    assert_eq!(
        code(&err),
        412,
        "cannot seal while the install vm runs: {err}"
    );
    d.wait_log("lab", "GUEST-READY lab", 1, BOOT);
    let mut con = Console::attach(&d, "lab");
    con.send("install-to-disk");
    con.expect("INSTALL-DONE", Duration::from_secs(300));
    drop(con);
    d.ok("vm.stop", json!([{"name": "lab", "timeout_secs": 60}]));
    let sealed = d.ok("image.seal", json!(["lab"]));
    assert_eq!(
        (sealed["sealed"].as_bool(), sealed["used_by"].clone()),
        (Some(true), json!([])),
        "{sealed}"
    );
    assert_eq!(sealed["sha256"].as_str().map(str::len), Some(64));
    let err = d.err("vm.get", json!(["lab"]));
    assert_eq!(code(&err), 404, "the install vm is gone: {err}");
    assert_eq!(d.ok("iso.get", json!(["installer"]))["used_by"], json!([]));
    for name in ["u1", "u2"] {
        d.ok(
            "vm.create",
            json!([{"name": name, "image": "lab", "memory_mib": 128}]),
        );
        d.ok("vm.start", json!([name]));
    }
    for name in ["u1", "u2"] {
        let log = d.wait_log(name, &format!("GUEST-READY {name}"), 1, BOOT);
        assert!(
            log.contains("GUEST-BOOT-COUNT 1"),
            "boots the installed disk: {log}"
        );
        d.ok("vm.stop", json!([{"name": name, "force": true}]));
    }
    let err = d.err("image.remove", json!(["lab"]));
    assert_eq!(err["message"], "image lab is used by 2 vms: u1, u2");
}

#[test]
fn published_base_carries_the_vms_files() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("src");
    d.wait_log("src", "GUEST-READY src", 1, BOOT);
    let mut con = Console::attach(&d, "src");
    con.run("echo published-data > /data/pub && sync");
    drop(con);
    d.ok("vm.stop", json!([{"name": "src", "timeout_secs": 60}]));
    let image = d.ok("image.publish", json!([{"vm": "src", "name": "golden"}]));
    assert_eq!(
        (image["sealed"].as_bool(), image["source_format"].as_str()),
        (Some(true), Some("qcow2"))
    );
    let info = std::process::Command::new("qemu-img")
        .args([
            "info",
            "-U",
            "-f",
            "qcow2",
            "--output=json",
            image["path"].as_str().expect("path"),
        ])
        .output()
        .expect("info");
    assert!(
        !String::from_utf8_lossy(&info.stdout).contains("backing-filename"),
        "published base is standalone"
    );
    d.ok("vm.remove", json!(["src"]));
    d.ok("image.remove", json!(["guest"]));
    d.ok(
        "vm.create",
        json!([{"name": "dst", "image": "golden", "memory_mib": 128}]),
    );
    d.ok("vm.start", json!(["dst"]));
    d.wait_log("dst", "GUEST-READY dst", 1, BOOT);
    let mut con = Console::attach(&d, "dst");
    con.run("grep -q published-data /data/pub");
    drop(con);
    d.ok("vm.stop", json!([{"name": "dst", "force": true}]));
}

#[test]
fn uefi_needs_192_mib() {
    let d = Daemon::start();
    d.import_guest();
    let err = d.err(
        "vm.create",
        json!([{"name": "u", "image": "guest", "memory_mib": 128, "firmware": "uefi"}]),
    );
    assert_eq!(code(&err), 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("at least 192 MiB"),
        "{err}"
    );
    let vm = d.ok(
        "vm.create",
        json!([{"name": "u", "image": "guest", "memory_mib": 256, "firmware": "uefi"}]),
    );
    assert_eq!(vm["firmware"], "uefi");
    d.ok("vm.start", json!(["u"]));
    d.wait_log("u", "GUEST-READY u", 1, BOOT);
    d.ok("vm.stop", json!([{"name": "u", "force": true}]));
}
