//! Through a real daemon: cloud-init detected on import, `image publish --generalize` resetting
//! the identity of the published copy (checked with debugfs on the new base's file), and its
//! refusal of a disk without an ext root file system that leaves nothing behind.

mod common;

use std::path::Path;

use common::guest_disk::{self, Layout, View, FS_OFFSET};
use common::Daemon;
use serde_json::json;

/// Every file under the state directory's `images/`, `overlays/`, `uploads/` and `sandbox/`.
fn state_files(d: &Daemon) -> Vec<String> {
    let mut files = Vec::new();
    for sub in ["images", "overlays", "uploads", "sandbox"] {
        let Ok(entries) = std::fs::read_dir(d.state.join(sub)) else {
            continue;
        };
        files.extend(
            entries
                .flatten()
                .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy())),
        );
    }
    files.sort();
    files
}

#[test]
fn import_detects_cloud_init_and_publish_generalizes() {
    let d = Daemon::start();
    let root = guest_disk::guest_tree(d.dir.path(), true);
    let raw = guest_disk::raw_disk(d.dir.path(), &root, Layout::Mbr);
    let image = d.import(&raw, "gold");
    assert_eq!(image["cloud_init"], true, "detected: {image}");
    let upload = d.upload(&raw);
    let told = d.ok(
        "image.import",
        json!([{"name": "gold-off", "upload_id": upload["upload_id"], "cloud_init": false}]),
    );
    assert_eq!(told["cloud_init"], false, "the admin's word wins: {told}");
    d.ok("vm.create", json!([{"name": "v", "image": "gold"}]));
    let out = d.vmctl(&["image", "publish", "v", "gen", "--generalize"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gen = d.ok("image.get", json!(["gen"]));
    assert_eq!(gen["cloud_init"], true, "inherited from the base: {gen}");
    let view = View::open(&d.state.join("images/gen.qcow2"), "qcow2", FS_OFFSET);
    assert!(view.stat("/etc/machine-id").contains("Size: 0"));
    let keys: Vec<String> = view
        .names("/etc/ssh")
        .into_iter()
        .filter(|n| n.starts_with("ssh_host_") && !n.contains('\n'))
        .collect();
    assert!(keys.is_empty(), "host keys left: {keys:?}");
    assert!(view.fsck_clean());
    let base = View::open(&d.state.join("images/gold.qcow2"), "qcow2", FS_OFFSET);
    assert!(
        base.exists("/etc/ssh/ssh_host_ed25519_key"),
        "the source base is untouched"
    );
    let events = d.ok("events.list", json!([0]));
    assert!(
        events
            .to_string()
            .contains("generalized (machine-id, 4 SSH host keys"),
        "{events}"
    );
}

/// A disk with an MBR and one partition holding no file system.
fn blank_partitioned(dir: &Path) -> std::path::PathBuf {
    let disk = dir.join("blank.raw");
    std::fs::File::create(&disk)
        .expect("create")
        .set_len(16 << 20)
        .expect("size");
    guest_disk::partition(&disk, "label: dos\nstart=2048\n");
    disk
}

#[test]
fn generalize_refuses_a_disk_without_an_ext_root_and_changes_nothing() {
    let d = Daemon::start();
    let image = d.import(&blank_partitioned(d.dir.path()), "blank");
    assert_eq!(image["cloud_init"], false, "{image}");
    d.ok("vm.create", json!([{"name": "v", "image": "blank"}]));
    let before = (d.ok("image.list", json!([])), state_files(&d));
    let err = d.err(
        "image.publish",
        json!([{"vm": "v", "name": "gen", "generalize": true}]),
    );
    assert_eq!(err["data"]["kind"], "invalid_argument", "{err}");
    assert!(
        err["data"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("ext2/3/4"),
        "{err}"
    );
    assert_eq!(
        (d.ok("image.list", json!([])), state_files(&d)),
        before,
        "nothing left behind"
    );
    let plain = d.ok("image.publish", json!([{"vm": "v", "name": "plain"}]));
    assert_eq!(
        plain["name"], "plain",
        "publishing without --generalize still works"
    );
}
