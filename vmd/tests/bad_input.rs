//! Bad input over raw HTTP JSON-RPC: every case gets a clear error and changes nothing in the
//! store or on disk.

mod common;

use common::{code, convert, path_str, qemu_img, raw_disk, Daemon};
use serde_json::{json, Value};

fn lab() -> (Daemon, Value) {
    let d = Daemon::start();
    let base = raw_disk(d.dir.path(), "base.img", "64M");
    d.import(&base, "base");
    d.ok("vm.create", json!([{"name": "web1", "image": "base"}]));
    let snap = serde_json::to_value(d.snapshot()).expect("snapshot");
    (d, snap)
}

fn assert_unchanged(d: &Daemon, before: &Value) {
    let after = serde_json::to_value(d.snapshot()).expect("snapshot");
    assert_eq!(&after, before, "a failed request changed the lab");
}

fn message(err: &Value) -> String {
    err["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn bad_and_duplicate_names_are_refused() {
    let (d, before) = lab();
    for name in [
        "",
        "Web1",
        "web_1",
        "-web",
        "web-",
        "a.b",
        "../etc",
        &"x".repeat(64),
    ] {
        let err = d.err("vm.create", json!([{"name": name, "image": "base"}]));
        assert_eq!(code(&err), 400, "{name}: {err}");
        assert!(message(&err).contains("lowercase letters"), "{err}");
        assert_eq!(err["data"]["kind"], "invalid_argument");
    }
    let err = d.err("vm.create", json!([{"name": "web1", "image": "base"}]));
    assert_eq!(
        (code(&err), message(&err).as_str()),
        (409, "vm web1 already exists")
    );
    assert!(
        err["data"]["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{err}"
    );
    assert_unchanged(&d, &before);
}

#[test]
fn unknown_fields_and_wrong_types_are_invalid_params() {
    let (d, before) = lab();
    let err = d.err(
        "vm.create",
        json!([{"name": "a", "image": "base", "memory": 512}]),
    );
    assert_eq!(code(&err), -32602);
    assert!(err.to_string().contains("unknown field `memory`"), "{err}");
    let err = d.err(
        "vm.create",
        json!([{"name": "a", "image": "base", "cpus": -1}]),
    );
    assert_eq!(code(&err), -32602, "{err}");
    let err = d.err(
        "vm.create",
        json!([{"name": "a", "image": "base", "disk_bytes": -5}]),
    );
    assert_eq!(code(&err), -32602, "{err}");
    let err = d.err("no.such.method", json!([]));
    assert_eq!(code(&err), -32601, "{err}");
    assert_unchanged(&d, &before);
}

#[test]
fn out_of_range_sizes_are_refused() {
    let (d, before) = lab();
    let cases = [
        (
            json!({"name": "a", "image": "base", "cpus": 0}),
            "cpus must be between 1 and 64",
        ),
        (
            json!({"name": "a", "image": "base", "cpus": 1000}),
            "cpus must be between 1 and 64",
        ),
        (
            json!({"name": "a", "image": "base", "memory_mib": 1}),
            "memory_mib must be between 64",
        ),
        (
            json!({"name": "a", "image": "base", "memory_mib": u64::MAX}),
            "memory_mib must be between 64",
        ),
        (
            json!({"name": "a", "image": "base", "disk_bytes": 1024}),
            "smaller than image base",
        ),
        (
            json!({"name": "a", "image": "base", "disk_bytes": u64::MAX}),
            "exceeds the limit",
        ),
    ];
    for (params, expected) in cases {
        let err = d.err("vm.create", json!([params]));
        assert_eq!(code(&err), 400, "{params}: {err}");
        assert!(message(&err).contains(expected), "{params}: {err}");
    }
    let err = d.err("vm.create", json!([{"name": "a", "image": "nope"}]));
    assert_eq!(
        (code(&err), message(&err).as_str()),
        (404, "image nope not found")
    );
    assert_unchanged(&d, &before);
}

#[test]
fn malformed_and_oversized_requests_are_refused() {
    let (d, before) = lab();
    let (_, text) = d.http(
        "POST",
        "/",
        "application/json",
        br#"{"jsonrpc":"2.0","id":1,"method":"vm.list""#,
    );
    let resp: Value = serde_json::from_str(&text).expect("json error response");
    assert_eq!(code(&resp["error"]), -32700, "{resp}");
    let name = "x".repeat(2 << 20);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "vm.create", "params": [{"name": name, "image": "base"}]});
    let (status, text) = d.http("POST", "/", "application/json", body.to_string().as_bytes());
    assert!(
        status == 413 || text.contains("-32007"),
        "oversized request accepted: {status} {text:.200}"
    );
    assert_unchanged(&d, &before);
}

#[test]
fn missing_objects_are_not_found() {
    let (d, before) = lab();
    for (method, what) in [
        ("vm.wipe", "vm"),
        ("vm.remove", "vm"),
        ("vm.get", "vm"),
        ("image.remove", "image"),
        ("image.get", "image"),
    ] {
        let err = d.err(method, json!(["ghost"]));
        assert_eq!(code(&err), 404, "{method}: {err}");
        assert_eq!(message(&err), format!("{what} ghost not found"));
    }
    let err = d.err(
        "image.import",
        json!([{"name": "img", "upload_id": "no-such-upload"}]),
    );
    assert_eq!(code(&err), 404, "{err}");
    assert_unchanged(&d, &before);
}

#[test]
fn removing_a_base_in_use_names_its_vms() {
    let (d, before) = lab();
    d.ok("vm.create", json!([{"name": "web2", "image": "base"}]));
    let before2 = serde_json::to_value(d.snapshot()).expect("snapshot");
    let err = d.err("image.remove", json!(["base"]));
    assert_eq!(code(&err), 423, "{err}");
    assert_eq!(message(&err), "image base is used by 2 vms: web1, web2");
    assert_unchanged(&d, &before2);
    d.ok("vm.remove", json!(["web2"]));
    assert_unchanged(&d, &before);
}

fn assert_import_refused(d: &Daemon, file: &std::path::Path, expected: &str) {
    let before = serde_json::to_value(d.snapshot()).expect("snapshot");
    let upload = d.upload(file);
    let err = d.err(
        "image.import",
        json!([{"name": "evil", "upload_id": upload["upload_id"]}]),
    );
    assert_eq!(code(&err), 400, "{err}");
    assert!(
        err["data"]["chain"].to_string().contains(expected),
        "expected {expected:?} in {err}"
    );
    assert!(err["data"]["hint"].is_string(), "{err}");
    assert_unchanged(d, &before);
}

#[test]
fn hostile_and_non_image_files_are_refused_on_import() {
    let (d, _) = lab();
    let dir = d.dir.path();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "just some text, not a disk\n").expect("write");
    assert_import_refused(&d, &text, "not a recognised disk image");

    let evil = dir.join("evil.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "/etc/passwd",
        "-F",
        "raw",
        path_str(&evil),
        "1M",
    ]);
    assert_import_refused(&d, &evil, "backing file (\\\"/etc/passwd\\\")");

    let ext = dir.join("ext.qcow2");
    let data = dir.join("ext.data");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &format!("data_file={}", path_str(&data)),
        path_str(&ext),
        "1M",
    ]);
    assert_import_refused(&d, &ext, "external data file");

    let desc = dir.join("desc.vmdk");
    std::fs::write(&desc, "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\n").expect("write");
    assert_import_refused(&d, &desc, "VMDK descriptor files");

    let mut iso = vec![0u8; 64 * 1024];
    iso[32769..32774].copy_from_slice(b"CD001");
    let iso_path = dir.join("cd.iso");
    std::fs::write(&iso_path, iso).expect("write");
    assert_import_refused(
        &d,
        &iso_path,
        "this is an ISO (CD/DVD image), not a disk image",
    );

    let truncated = dir.join("trunc.qcow2");
    let good = convert(&raw_disk(dir, "t.img", "8M"), "qcow2");
    let bytes = std::fs::read(good).expect("read");
    std::fs::write(&truncated, &bytes[..600]).expect("write");
    assert_import_refused(&d, &truncated, "image is corrupt");
}

#[test]
fn bad_image_names_are_refused_before_anything_is_consumed() {
    let (d, before) = lab();
    let err = d.err(
        "image.import",
        json!([{"name": "Bad Name", "upload_id": "x"}]),
    );
    assert_eq!(code(&err), 400, "{err}");
    let err = d.err("image.import", json!([{"name": "base", "upload_id": "x"}]));
    assert_eq!(
        (code(&err), message(&err).as_str()),
        (409, "image base already exists")
    );
    assert_unchanged(&d, &before);
}
