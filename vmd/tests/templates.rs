//! Warm templates with the test guest (issue 14): a template taken at the guest's ready
//! marker; three clones (the source VM is the first) each answer on their serial console
//! without booting again and see the template's files; a file written in one clone is absent
//! in the others; removal of the template is refused while clones exist; a wipe returns a
//! clone to the template's moment; a clone's second start boots from its own disk; `kill -9`
//! of vmd while clones run re-adopts them; refusals (state, names, fixed hardware, other
//! users' private templates); and a restore that fails leaves a stopped VM, no QEMU, and
//! QEMU's words with a hint to recreate the template.
//!
//! At most three guests run at once per test; the tests run one at a time (nextest group
//! `templates`).

mod common;

use serde_json::json;

use common::guest::{Console, BOOT};
use common::templates::{
    account, answer, assert_pending, clone_fields, clone_of, clones, exists, force_stop, ok_as,
    refused_as, remove_all, take, template_dir, ALREADY_EXISTS, ANSWER, INVALID_ARGUMENT, IN_USE,
    NOT_FOUND, PERMISSION_DENIED, WRONG_STATE,
};
use common::{code, qemus_naming, raw_disk, Daemon};
use testkit::procs::alive;

/// The marker file written in the template's source before the template is taken.
const ORIGIN: &str = "/data/origin";
/// The file only the first clone writes.
const ONLY_C1: &str = "/data/only-c1";

/// Boots `name` from the test guest, waits for its ready marker and writes [`ORIGIN`].
fn boot_source(d: &Daemon, name: &str) {
    d.boot(name);
    d.wait_log(name, &format!("GUEST-READY {name}"), 1, BOOT);
    let mut console = Console::attach(d, name);
    console.run(&format!("echo tmpl > {ORIGIN}; sync"));
}

#[test]
fn clones_restore_the_template_moment_stay_apart_and_wipe_back_to_it() {
    let d = Daemon::start();
    d.import_guest();
    boot_source(&d, "src");
    let t = take(&d, "t", "src");
    assert_eq!(
        t["shared"], false,
        "private unless asked, also an admin's: {t}"
    );
    assert_eq!(
        (t["source_vm"].as_str(), t["image"].as_str()),
        (Some("src"), Some("guest"))
    );
    assert_eq!(
        (t["cpus"].as_u64(), t["memory_mib"].as_u64()),
        (Some(1), Some(128)),
        "{t}"
    );
    assert!(!t["qemu_version"].as_str().unwrap_or("").is_empty(), "{t}");
    assert_pending(&d, "src", "t");
    for c in ["c1", "c2"] {
        let vm = clone_of(&d, c, "t");
        assert_eq!(
            clone_fields(&vm),
            ("stopped".into(), "t".into(), true),
            "{vm}"
        );
        assert_eq!(
            (vm["cpus"].as_u64(), vm["memory_mib"].as_u64()),
            (Some(1), Some(128))
        );
    }
    let shown = d.ok("template.get", json!(["t"]));
    assert_eq!(clones(&shown), ["c1", "c2", "src"], "{shown}");
    three_clones_answer_apart(&d);
    removal_refused_while_clones_exist(&d);
    wipe_returns_to_the_template_moment(&d);
    second_start_boots_from_the_clone_disk(&d);
    force_stop(&d, &["c1", "src"]);
    remove_all(&d, &["c1", "c2", "src"], "t");
}

/// Starts the three clones; each answers at once (no second boot) and sees [`ORIGIN`]; a
/// file written in c1 is absent in c2 and src.
fn three_clones_answer_apart(d: &Daemon) {
    for c in ["c1", "c2", "src"] {
        let vm = d.ok("vm.start", json!([c]));
        assert_eq!(
            clone_fields(&vm),
            ("running".into(), "t".into(), false),
            "{vm}"
        );
    }
    let mut consoles: Vec<Console> = ["c1", "c2", "src"].iter().map(|c| answer(d, c)).collect();
    for console in &mut consoles {
        assert!(exists(console, ORIGIN), "the template's file is there");
    }
    consoles[0].run(&format!("echo c1 > {ONLY_C1}; sync"));
    assert!(exists(&mut consoles[0], ONLY_C1));
    assert!(
        !exists(&mut consoles[1], ONLY_C1),
        "c1's file leaked into c2"
    );
    assert!(
        !exists(&mut consoles[2], ONLY_C1),
        "c1's file leaked into src"
    );
    let (_, seen) = consoles[1].capture("cat /data/boot-count", ANSWER);
    assert!(
        seen.lines().any(|l| l.trim() == "1"),
        "restored, not booted again: {seen}"
    );
    for c in ["c1", "c2"] {
        let log = d.ok("vm.logs", json!([c, 1 << 20]))["text"].to_string();
        assert!(
            !log.contains("GUEST-READY"),
            "{c} booted instead of restoring: {log}"
        );
    }
}

fn removal_refused_while_clones_exist(d: &Daemon) {
    let err = d.err("template.remove", json!(["t"]));
    assert_eq!(code(&err), IN_USE, "{err}");
    let message = err["message"].as_str().unwrap_or("");
    for c in ["c1", "c2", "src"] {
        assert!(message.contains(c), "the refusal names {c}: {err}");
    }
    assert!(template_dir(d).join("state").exists(), "nothing removed");
    let out = d.vmctl(&["template", "rm", "t"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "vmctl: in_use is exit 4: {stderr}"
    );
    assert!(stderr.contains("c1"), "vmctl names the clones: {stderr}");
}

/// c1 stopped and wiped: its next start restores the template's moment again.
fn wipe_returns_to_the_template_moment(d: &Daemon) {
    force_stop(d, &["c1"]);
    let vm = d.ok("vm.wipe", json!(["c1"]));
    assert_eq!(
        clone_fields(&vm),
        ("stopped".into(), "t".into(), true),
        "{vm}"
    );
    d.ok("vm.start", json!(["c1"]));
    let mut console = answer(d, "c1");
    assert!(!exists(&mut console, ONLY_C1), "the wipe kept c1's file");
    assert!(
        exists(&mut console, ORIGIN),
        "the template's file is gone after the wipe"
    );
    let (_, seen) = console.capture("hostname", ANSWER);
    assert!(
        seen.lines().any(|l| l.trim() == "src"),
        "the template's moment: {seen}"
    );
}

/// c2 stopped gracefully (the restored guest's ACPI daemon runs) and started again: now it
/// boots from its own disk, with its own name, and keeps the template's file.
fn second_start_boots_from_the_clone_disk(d: &Daemon) {
    let vm = d.ok("vm.stop", json!([{"name": "c2", "timeout_secs": 60}]));
    assert_eq!(
        clone_fields(&vm),
        ("stopped".into(), "t".into(), false),
        "{vm}"
    );
    d.wait_log("c2", "GUEST-POWEROFF", 1, BOOT);
    d.ok("vm.start", json!(["c2"]));
    d.wait_log("c2", "GUEST-READY c2", 1, BOOT);
    let mut console = answer(d, "c2");
    assert!(exists(&mut console, ORIGIN));
    assert!(!exists(&mut console, ONLY_C1));
    let (_, seen) = console.capture("cat /data/boot-count", ANSWER);
    assert!(
        seen.lines().any(|l| l.trim() == "2"),
        "a second boot of the disk: {seen}"
    );
    drop(console);
    force_stop(d, &["c2"]);
}

#[test]
fn clones_running_through_kill_9_of_vmd_are_readopted() {
    let d = Daemon::start();
    d.import_guest();
    boot_source(&d, "src");
    take(&d, "t", "src");
    clone_of(&d, "c1", "t");
    clone_of(&d, "c2", "t");
    let pids: Vec<u64> = ["c1", "c2"]
        .iter()
        .map(|c| d.ok("vm.start", json!([c]))["pid"].as_u64().expect("pid"))
        .collect();
    drop(answer(&d, "c1"));
    let dir = d.kill9();
    assert!(pids.iter().all(|p| alive(*p)), "clones must outlive vmd");
    let d = Daemon::start_in(dir);
    for (c, pid) in ["c1", "c2"].iter().zip(&pids) {
        let vm = d.ok("vm.get", json!([c]));
        assert_eq!(
            clone_fields(&vm),
            ("running".into(), "t".into(), false),
            "{vm}"
        );
        assert_eq!(vm["pid"].as_u64(), Some(*pid), "{vm}");
        drop(answer(&d, c));
    }
    assert_pending(&d, "src", "t");
    assert_eq!(
        clones(&d.ok("template.get", json!(["t"]))),
        ["c1", "c2", "src"]
    );
    d.ok("vm.start", json!(["src"]));
    drop(answer(&d, "src"));
    force_stop(&d, &["c1", "c2", "src"]);
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "stopped through the new vmd"
    );
    remove_all(&d, &["c1", "c2", "src"], "t");
}

#[test]
fn templates_refuse_wrong_states_names_and_hardware() {
    let d = Daemon::start();
    d.import_guest();
    d.ok(
        "vm.create",
        json!([{"name": "cold", "image": "guest", "memory_mib": 128}]),
    );
    let err = d.err("template.create", json!([{"name": "t", "from": "cold"}]));
    assert_eq!(code(&err), WRONG_STATE, "a stopped VM: {err}");
    let err = d.err("template.create", json!([{"name": "t", "from": "nope"}]));
    assert_eq!(code(&err), NOT_FOUND, "{err}");
    d.boot("src");
    take(&d, "t", "src");
    d.ok("vm.start", json!(["cold"]));
    let err = d.err("template.create", json!([{"name": "t", "from": "cold"}]));
    assert_eq!(code(&err), ALREADY_EXISTS, "{err}");
    let err = d.err(
        "template.create",
        json!([{"name": "Bad Name", "from": "cold"}]),
    );
    assert_eq!(code(&err), INVALID_ARGUMENT, "{err}");
    paused_vms_become_templates_and_iso_vms_do_not(&d);
    d.ok("vm.start", json!(["src"]));
    let err = d.err("template.create", json!([{"name": "t2", "from": "src"}]));
    assert_eq!(
        code(&err),
        INVALID_ARGUMENT,
        "a clone cannot become a template: {err}"
    );
    force_stop(&d, &["src"]);
    clones_keep_the_template_hardware(&d);
    assert_eq!(clones(&d.ok("template.get", json!(["t"]))), ["src"]);
}

/// `cold` (running) paused: it becomes template `tp`, and its clone starts running. A VM
/// with an ISO inserted is refused.
fn paused_vms_become_templates_and_iso_vms_do_not(d: &Daemon) {
    assert_eq!(d.ok("vm.pause", json!(["cold"]))["state"], "paused");
    take(d, "tp", "cold");
    assert_pending(d, "cold", "tp");
    let vm = d.ok("vm.start", json!(["cold"]));
    assert_eq!(
        clone_fields(&vm),
        ("running".into(), "tp".into(), false),
        "{vm}"
    );
    force_stop(d, &["cold"]);
    d.import_iso("cd");
    let vm = json!([{"name": "withcd", "image": "guest", "iso": "cd", "memory_mib": 128}]);
    d.ok("vm.create", vm);
    d.ok("vm.start", json!(["withcd"]));
    let err = d.err(
        "template.create",
        json!([{"name": "tcd", "from": "withcd"}]),
    );
    assert_eq!(code(&err), INVALID_ARGUMENT, "a VM with an ISO: {err}");
    assert_eq!(
        d.ok("vm.get", json!(["withcd"]))["state"],
        "running",
        "left running"
    );
    force_stop(d, &["withcd"]);
}

/// A clone asking for other hardware, another image or a missing template is refused, and
/// no VM is left behind.
fn clones_keep_the_template_hardware(d: &Daemon) {
    d.import(&raw_disk(d.dir.path(), "other.img", "16M"), "other");
    for (field, value) in [
        ("cpus", json!(2)),
        ("memory_mib", json!(256)),
        ("image", json!("other")),
    ] {
        let mut req = json!({"name": "x", "template": "t"});
        req[field] = value;
        let err = d.err("vm.create", json!([req]));
        assert_eq!(code(&err), INVALID_ARGUMENT, "{field}: {err}");
    }
    let err = d.err("vm.create", json!([{"name": "x", "template": "nope"}]));
    assert_eq!(code(&err), NOT_FOUND, "{err}");
    assert_eq!(
        code(&d.err("vm.get", json!(["x"]))),
        NOT_FOUND,
        "no VM left behind"
    );
}

#[test]
fn private_templates_are_hidden_and_shared_ones_cloned_by_users() {
    let d = Daemon::start();
    d.import_guest();
    d.boot("src");
    let shared = d.ok(
        "template.create",
        json!([{"name": "t", "from": "src", "shared": true}]),
    );
    assert_eq!(shared["shared"], true, "an admin may share: {shared}");
    let ann = account(&d, "ann");
    let bob = account(&d, "bob");
    let vm = json!([{"name": "a1", "image": "guest", "memory_mib": 128}]);
    ok_as(&d, &ann, "vm.create", vm);
    ok_as(&d, &ann, "vm.start", json!(["a1"]));
    let share = json!([{"name": "ann-s", "from": "a1", "shared": true}]);
    assert_eq!(
        refused_as(&d, &ann, "template.create", share),
        PERMISSION_DENIED,
        "only admins share templates"
    );
    assert_eq!(d.ok("vm.get", json!(["a1"]))["state"], "running");
    let mine = ok_as(
        &d,
        &ann,
        "template.create",
        json!([{"name": "ann-t", "from": "a1"}]),
    );
    assert_eq!(
        (mine["owner"].as_str(), mine["shared"].as_bool()),
        (Some("ann"), Some(false))
    );
    assert_eq!(
        refused_as(&d, &bob, "template.get", json!(["ann-t"])),
        NOT_FOUND
    );
    let clone = json!([{"name": "b0", "template": "ann-t"}]);
    assert_eq!(refused_as(&d, &bob, "vm.create", clone), NOT_FOUND);
    let listed = ok_as(&d, &bob, "template.list", json!([]));
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["t"], "bob sees only the shared template: {listed}");
    ok_as(
        &d,
        &bob,
        "vm.create",
        json!([{"name": "b1", "template": "t"}]),
    );
    let seen = ok_as(&d, &bob, "template.get", json!(["t"]));
    assert_eq!(
        clones(&seen),
        ["b1"],
        "others' clones are not listed to a user: {seen}"
    );
    assert_eq!(
        refused_as(&d, &bob, "template.remove", json!(["t"])),
        PERMISSION_DENIED
    );
    assert_eq!(clones(&d.ok("template.get", json!(["t"]))), ["b1", "src"]);
    assert_eq!(clones(&d.ok("template.get", json!(["ann-t"]))), ["a1"]);
}

#[test]
fn a_failed_restore_leaves_a_stopped_vm_and_says_why() {
    let d = Daemon::start();
    d.import_guest();
    boot_source(&d, "src");
    take(&d, "t", "src");
    clone_of(&d, "c1", "t");
    let state = template_dir(&d).join("state");
    let saved = std::fs::read(&state).expect("read the device state");
    std::fs::write(&state, "not a migration stream\n".repeat(64)).expect("corrupt it (root)");
    let err = d.err("vm.start", json!(["c1"]));
    let text = err.to_string().to_lowercase();
    assert!(text.contains("migration"), "QEMU's words: {err}");
    let hint = err["data"]["hint"].as_str().unwrap_or("");
    assert!(
        hint.contains("template"),
        "a hint to recreate the template: {err}"
    );
    let vm = d.ok("vm.get", json!(["c1"]));
    assert_eq!(
        clone_fields(&vm),
        ("stopped".into(), "t".into(), true),
        "{vm}"
    );
    assert!(vm["pid"].is_null(), "{vm}");
    let left = qemus_naming(&d.dir.path().to_string_lossy());
    assert!(left.is_empty(), "QEMU left behind: {left:?}");
    std::fs::write(&state, saved).expect("put the device state back");
    d.ok("vm.start", json!(["c1"]));
    drop(answer(&d, "c1"));
    force_stop(&d, &["c1"]);
    a_touched_ram_file_is_refused(&d);
    remove_all(&d, &["c1", "src"], "t");
}

/// The template's RAM file rewritten in place (same bytes, new mtime): src's restore is
/// refused before QEMU runs, with the hint, and src stays a stopped, pending clone.
fn a_touched_ram_file_is_refused(d: &Daemon) {
    use std::os::unix::fs::FileExt;
    let ram = template_dir(d).join("ram");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ram)
        .expect("open the RAM file (root)");
    let mut first = [0u8; 1];
    file.read_exact_at(&mut first, 0).expect("read");
    file.write_all_at(&first, 0).expect("write the same byte");
    drop(file);
    let err = d.err("vm.start", json!(["src"]));
    assert!(
        err["message"].as_str().unwrap_or("").contains("RAM"),
        "{err}"
    );
    let hint = err["data"]["hint"].as_str().unwrap_or("");
    assert!(hint.contains("template"), "{err}");
    assert_pending(d, "src", "t");
    let left = qemus_naming(&d.dir.path().to_string_lossy());
    assert!(left.is_empty(), "QEMU left behind: {left:?}");
}
