//! Base image import with real qemu-img: every supported format becomes a read-only qcow2 whose
//! recorded sha256 matches the uploaded bytes, and removal deletes the file.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{convert, raw_disk, Daemon};
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha256_hex(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_supported_format_imports_as_readonly_qcow2() {
    let d = Daemon::start();
    let raw = raw_disk(d.dir.path(), "disk.img", "32M");
    let formats = ["qcow2", "vmdk", "vdi", "vhdx", "vpc"];
    let mut files = vec![("raw", raw.clone())];
    files.extend(formats.iter().map(|f| (*f, convert(&raw, f))));
    for (format, file) in files {
        let name = format!("img-{format}");
        let image = d.import(&file, &name);
        assert_eq!(image["source_format"], format, "{image}");
        assert_eq!(image["format"], "qcow2");
        assert_eq!(
            image["sha256"],
            sha256_hex(&file),
            "{format}: sha256 of the uploaded bytes"
        );
        assert!(
            image["virtual_size_bytes"].as_u64().unwrap_or(0) >= 32 << 20,
            "{image}"
        );
        let path = std::path::PathBuf::from(image["path"].as_str().expect("path"));
        let mode = std::fs::metadata(&path)
            .expect("base exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o444, "{format}: base must be read-only");
        let info = std::process::Command::new("qemu-img")
            .args(["info", "-U", "-f", "qcow2", "--output=json"])
            .arg(&path)
            .output()
            .expect("qemu-img info");
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
        assert!(
            info.get("backing-filename").is_none(),
            "{format}: base must be standalone"
        );
    }
    let list = d.ok("image.list", json!([]));
    assert_eq!(list.as_array().map(Vec::len), Some(6));
}

#[test]
fn base_is_never_written_and_used_by_tracks_vms() {
    let d = Daemon::start();
    let base = d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "deb");
    let path = std::path::PathBuf::from(base["path"].as_str().expect("path"));
    let before = sha256_hex(&path);
    d.ok("vm.create", json!([{"name": "a", "image": "deb"}]));
    d.ok("vm.create", json!([{"name": "b", "image": "deb"}]));
    d.ok("vm.wipe", json!(["a"]));
    let image = d.ok("image.get", json!(["deb"]));
    assert_eq!(image["used_by"], json!(["a", "b"]));
    assert_eq!(sha256_hex(&path), before, "base changed");
    d.ok("vm.remove", json!(["a"]));
    d.ok("vm.remove", json!(["b"]));
    d.ok("image.remove", json!(["deb"]));
    assert!(!path.exists(), "base file must be deleted with its image");
    assert_eq!(d.ok("image.list", json!([])), json!([]));
}

#[test]
fn owner_is_the_peer_uids_account() {
    let d = Daemon::start();
    let image = d.import(&raw_disk(d.dir.path(), "b.img", "8M"), "mine");
    // Tests run as root: uid 0 is always the admin account `root`.
    assert_eq!(
        (image["owner"].as_str(), image["public"].as_bool()),
        (Some("root"), Some(true))
    );
    let vm = d.ok("vm.create", json!([{"name": "v", "image": "mine"}]));
    assert_eq!(
        (vm["owner"].as_str(), vm["owner_uid"].as_u64()),
        (Some("root"), Some(0))
    );
    let me = d.ok("auth.whoami", json!([]));
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str(), me["via"].as_str()),
        (Some("root"), Some("admin"), Some("peer"))
    );
}
