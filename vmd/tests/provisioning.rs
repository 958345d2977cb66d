//! Provisioning against a real daemon with the tiny test guest: the cloud-init seed a VM gets
//! (its documents read back from the ISO QEMU has open), a new instance-id on wipe, no seed
//! where none helps or with `--no-cloud-init`, a password stored only hashed, bad options that
//! change nothing, and labels on create, set and list. The full journey with a real
//! cloud-init guest (ssh, growth, agent, generalize) is in `cloud_guest.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::guest::BOOT;
use common::{path_str, Daemon};
use serde_json::{json, Value};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHQkM3Rlc3RrZXlmb3J2bWRwcm92aXNpb24 t@h";

/// A daemon with the tiny guest imported as image `guest` (not marked cloud-init).
fn lab() -> Daemon {
    let d = Daemon::start();
    d.import_guest();
    d
}

/// Reads file `name` out of the ISO at `iso` with xorriso.
fn iso_file(iso: &Path, name: &str) -> String {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dst = out_dir.path().join(name);
    let out = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev", path_str(iso), "-extract"])
        .arg(format!("/{name}"))
        .arg(&dst)
        .output()
        .expect("xorriso");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dst).expect("extracted")
}

/// The volume label of the ISO at `iso`.
fn iso_label(iso: &Path) -> String {
    let out = Command::new("xorriso")
        .args(["-indev", path_str(iso), "-pvd_info"])
        .output()
        .expect("xorriso");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("Volume Id    :"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no volume id in:\n{text}"))
}

/// The seed of running VM `vm` (in its run directory, next to its VNC socket).
fn seed_of(vm: &Value) -> PathBuf {
    let vnc = PathBuf::from(vm["vnc_socket"].as_str().expect("running"));
    vnc.with_file_name("seed.iso")
}

/// Starts `name`, waits for the guest, returns the running VM.
fn start(d: &Daemon, name: &str) -> Value {
    d.ok("vm.start", json!([name]));
    d.wait_log(name, &format!("GUEST-READY {name}"), 1, BOOT);
    d.ok("vm.get", json!([name]))
}

fn stop(d: &Daemon, name: &str) {
    d.ok("vm.stop", json!([{"name": name, "force": true}]));
    d.wait_state(name, "stopped", BOOT);
}

#[test]
fn a_seed_carries_the_vm_identity_keys_and_user_data_and_a_wipe_renews_the_instance() {
    let d = lab();
    let data = "#!/bin/sh\necho provisioned\n";
    let vm = d.ok(
        "vm.create",
        json!([{"name": "ci1", "image": "guest", "memory_mib": 128,
            "cloud_init": {"ssh_keys": [KEY], "user": "lab", "user_data": data}}]),
    );
    let ci = &vm["cloud_init"];
    assert_eq!(
        (ci["user"].as_str(), ci["user_data"].as_str()),
        (Some("lab"), Some("script"))
    );
    assert_eq!(ci["ssh_keys"], json!([KEY]));
    let first_id = ci["instance_id"].as_str().expect("instance id").to_string();
    assert!(first_id.starts_with("iid-ci1-"), "{first_id}");

    let running = start(&d, "ci1");
    let seed = seed_of(&running);
    assert!(iso_label(&seed).eq_ignore_ascii_case("cidata"));
    let meta: Value = serde_json::from_str(&iso_file(&seed, "meta-data")).expect("meta-data");
    assert_eq!(
        meta,
        json!({"instance-id": first_id, "local-hostname": "ci1"})
    );
    let user_data = iso_file(&seed, "user-data");
    assert!(
        user_data.starts_with("Content-Type: multipart/mixed"),
        "{user_data}"
    );
    assert!(user_data.contains(KEY) && user_data.contains(data));
    assert!(user_data.find("text/cloud-config") < user_data.find("text/x-shellscript"));
    stop(&d, "ci1");

    let wiped = d.ok("vm.wipe", json!(["ci1"]));
    let second_id = wiped["cloud_init"]["instance_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(second_id, first_id, "a wipe gives the guest a new instance");
    let running = start(&d, "ci1");
    let meta: Value =
        serde_json::from_str(&iso_file(&seed_of(&running), "meta-data")).expect("meta-data");
    assert_eq!(
        meta["instance-id"],
        second_id.as_str(),
        "the new seed says so"
    );
    stop(&d, "ci1");
    assert!(
        !seed_of(&running).exists(),
        "the seed goes with the run directory"
    );
}

#[test]
fn no_seed_where_it_does_not_help_or_is_turned_off() {
    let d = lab();
    let plain = d.ok(
        "vm.create",
        json!([{"name": "plain", "image": "guest", "memory_mib": 128}]),
    );
    assert!(plain["cloud_init"].is_null(), "{plain}");
    d.ok("image.set", json!([{"name": "guest", "cloud_init": true}]));
    assert_eq!(d.ok("image.get", json!(["guest"]))["cloud_init"], true);
    let defaulted = d.ok(
        "vm.create",
        json!([{"name": "auto", "image": "guest", "memory_mib": 128}]),
    );
    let user = defaulted["cloud_init"]["user"].as_str().expect("a seed");
    assert_eq!(
        user, "lab",
        "root may not be the guest user: the default is `lab`"
    );
    let off = d.ok(
        "vm.create",
        json!([{"name": "off", "image": "guest", "memory_mib": 128,
            "cloud_init": {"enabled": false}}]),
    );
    assert!(off["cloud_init"].is_null(), "{off}");
    let running = start(&d, "off");
    assert!(!seed_of(&running).exists(), "no seed for --no-cloud-init");
    stop(&d, "off");
}

#[test]
fn a_guest_password_is_stored_only_as_a_sha512_crypt_hash() {
    let d = lab();
    let secret = "correct horse battery staple";
    let vm = d.ok(
        "vm.create",
        json!([{"name": "pw", "image": "guest", "memory_mib": 128,
            "cloud_init": {"user": "lab", "password": secret}}]),
    );
    assert_eq!(vm["cloud_init"]["password"], true);
    assert!(!vm.to_string().contains(secret));
    let state = d.dir.path().join("state");
    let mut db = std::fs::read(state.join("vmd.db")).unwrap_or_default();
    db.extend(std::fs::read(state.join("vmd.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(secret), "the clear password is not stored");
    assert!(db.contains("$6$"), "its SHA-512 crypt hash is");
    assert!(!d.log().contains(secret), "nor logged");
    let running = start(&d, "pw");
    let user_data = iso_file(&seed_of(&running), "user-data");
    assert!(user_data.contains("\"passwd\":\"$6$") && !user_data.contains(secret));
    stop(&d, "pw");
}

#[test]
fn bad_provisioning_options_are_refused_and_change_nothing() {
    let d = lab();
    let before = d.snapshot();
    for (cloud_init, why) in [
        (json!({"ssh_keys": ["not a key"]}), "SSH public key"),
        (
            json!({"ssh_keys": [format!("{KEY}\nssh-ed25519 AAAA")]}),
            "SSH public key",
        ),
        (json!({"user": "root"}), "system account"),
        (json!({"user": "Bad Name"}), "invalid guest user"),
        (json!({"user_data": "packages: []"}), "must start with"),
        (json!({"user_data": "#cloud-config\n- a\n"}), "mapping"),
        (
            json!({"user_data": "#cloud-config\nk: [\n"}),
            "not valid YAML",
        ),
        (json!({"enabled": false, "user": "lab"}), "disabled"),
        (json!({"keys": []}), "unknown field"),
    ] {
        let err = d.err(
            "vm.create",
            json!([{"name": "bad", "image": "guest", "cloud_init": cloud_init}]),
        );
        assert!(err.to_string().contains(why), "{cloud_init}: {err}");
    }
    let err = d.err(
        "vm.create",
        json!([{"name": "bad", "image": "guest", "labels": {"Bad Key": "x"}}]),
    );
    assert!(
        err["message"].as_str().unwrap_or("").contains("label key"),
        "{err}"
    );
    assert_eq!(d.snapshot(), before, "no row, no overlay");
}

#[test]
fn labels_are_set_changed_removed_and_filter_lists() {
    let d = lab();
    let out = d.vmctl(&[
        "create",
        "l1",
        "--image",
        "guest",
        "--memory",
        "128M",
        "--label",
        "course=net101",
        "--label",
        "team=red",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.ok(
        "vm.create",
        json!([{"name": "l2", "image": "guest", "memory_mib": 128,
            "labels": {"course": "net102"}}]),
    );
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["ls", "--output", "json"];
        full.extend_from_slice(args);
        let out = d.vmctl(&full);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vms: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
        vms.iter()
            .map(|v| v["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&["--label", "course"]), ["l1", "l2"]);
    assert_eq!(names(&["--label", "course=net101"]), ["l1"]);
    assert_eq!(names(&["--label", "course", "--label", "team=red"]), ["l1"]);
    assert!(names(&["--label", "team=blue"]).is_empty());
    let out = d.vmctl(&["set", "l1", "--label", "team=blue", "--unlabel", "course"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vm = d.ok("vm.get", json!(["l1"]));
    assert_eq!(vm["labels"], json!({"team": "blue"}));
    let events = d.ok("events.list", json!([0]));
    let changed = events
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["kind"] == "vm_changed" && e["message"] == "labels team=blue, -course");
    assert!(changed, "{events}");
    let bad = d.vmctl(&["ls", "--label", "bad key"]);
    assert_eq!(
        bad.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let dir = d.kill9();
    let d = Daemon::start_in(dir);
    assert_eq!(
        d.ok("vm.get", json!(["l1"]))["labels"],
        json!({"team": "blue"})
    );
}
