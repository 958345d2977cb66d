//! Hostile disk images against the real daemon: VMDKs whose descriptor points at host files
//! (the capacity-0 embedded-descriptor trick, FLAT extents, other subformats), descriptor-only
//! files and absurd virtual sizes are refused as `invalid_argument` without a trace, with
//! messages that say nothing about the host; genuine VMDKs made by `qemu-img` still import.

mod common;

use common::{code, path_str, qemu_img, raw_disk, Daemon};
use serde_json::{json, Value};

/// A sparse VMDK (`KDMV` header) with `descriptor` embedded at sector 1 and no grain data.
fn sparse_vmdk(capacity_sectors: u64, descriptor: &str) -> Vec<u8> {
    let mut header = Vec::with_capacity(512);
    header.extend_from_slice(b"KDMV");
    header.extend_from_slice(&1u32.to_le_bytes()); // version
    header.extend_from_slice(&3u32.to_le_bytes()); // flags: newline test, redundant GD
    header.extend_from_slice(&capacity_sectors.to_le_bytes());
    header.extend_from_slice(&128u64.to_le_bytes()); // grain size (sectors)
    header.extend_from_slice(&1u64.to_le_bytes()); // descriptor offset (sectors)
    header.extend_from_slice(&20u64.to_le_bytes()); // descriptor size (sectors)
    header.extend_from_slice(&512u32.to_le_bytes()); // grain table entries per table
    header.extend_from_slice(&0u64.to_le_bytes()); // redundant grain directory offset
    header.extend_from_slice(&0u64.to_le_bytes()); // grain directory offset
    header.extend_from_slice(&128u64.to_le_bytes()); // overhead (sectors)
    header.extend_from_slice(b"\0\n \r\n\0\0");
    header.resize(512, 0);
    let mut desc = descriptor.as_bytes().to_vec();
    desc.resize(20 * 512, 0);
    header.extend_from_slice(&desc);
    header.resize(128 * 512, 0);
    header
}

fn descriptor(create_type: &str, extent: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"{create_type}\"\n\n# Extent description\n{extent}\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n"
    )
}

/// Uploads `bytes` and imports them; returns the error, asserting 400 and no change.
fn refused(d: &Daemon, file_name: &str, bytes: &[u8]) -> Value {
    let file = d.dir.path().join(file_name);
    std::fs::write(&file, bytes).expect("write fixture");
    let before = d.snapshot();
    let upload = d.upload(&file);
    let err = d.err(
        "image.import",
        json!([{"name": "evil", "upload_id": upload["upload_id"]}]),
    );
    assert_eq!(code(&err), 400, "{file_name}: {err}");
    assert!(err["data"]["hint"].is_string(), "{file_name}: {err}");
    assert_eq!(d.snapshot(), before, "{file_name}: refusal changed the lab");
    let missing = d.call("image.get", json!(["evil"]));
    assert!(missing.get("error").is_some(), "{file_name}: row created");
    err
}

/// The error as the client sees it, minus nothing: message, chain and hint.
fn words(err: &Value) -> String {
    format!(
        "{} {} {}",
        err["message"], err["data"]["chain"], err["data"]["hint"]
    )
}

/// A line of `/etc/passwd` that any leak of the file would carry.
fn passwd_marker() -> String {
    let text = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    text.lines().next().expect("a line").to_string()
}

#[test]
fn capacity_zero_vmdk_with_flat_extent_on_host_files_is_refused() {
    let d = Daemon::start();
    let marker = passwd_marker();
    let mut seen = Vec::new();
    for target in [
        "/etc/shadow",
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
        "/nonexistent/vmd-test/shadow",
        "../../../../../../../../nonexistent/vmd-test",
    ] {
        let desc = descriptor("monolithicFlat", &format!("RW 8 FLAT \"{target}\" 0"));
        let err = refused(&d, "attack.vmdk", &sparse_vmdk(0, &desc));
        let text = words(&err);
        assert!(
            !text.contains(&marker),
            "{target}: host file leaked: {text}"
        );
        assert!(!text.contains(target), "{target}: path echoed: {text}");
        assert!(
            !text.contains("No such file"),
            "{target}: existence: {text}"
        );
        seen.push(text);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "errors differ between existing and missing host paths: {seen:#?}"
    );
}

#[test]
fn nonzero_capacity_vmdk_with_foreign_extents_is_refused() {
    let d = Daemon::start();
    let cases = [
        ("monolithicSparse", "RW 2048 FLAT \"/etc/shadow\" 0"),
        ("monolithicFlat", "RW 2048 FLAT \"disk-flat.vmdk\" 0"),
        ("twoGbMaxExtentSparse", "RW 2048 SPARSE \"disk-s001.vmdk\""),
        (
            "monolithicSparse",
            "RW 2048 SPARSE \"../../../../etc/passwd\"",
        ),
        ("monolithicSparse", "RW 2048 SPARSE \"/etc/passwd\""),
        ("monolithicSparse", "RW 2048 ZERO"),
        (
            "monolithicSparse",
            "RW 1024 SPARSE \"a.vmdk\"\nRW 1024 SPARSE \"b.vmdk\"",
        ),
        ("monolithicSparse", "RW 4096 SPARSE \"a.vmdk\""),
    ];
    for (create_type, extent) in cases {
        let err = refused(
            &d,
            "x.vmdk",
            &sparse_vmdk(2048, &descriptor(create_type, extent)),
        );
        let text = words(&err);
        assert!(text.contains("VMDK"), "{create_type} / {extent}: {text}");
        assert!(!text.contains("etc/"), "{create_type} / {extent}: {text}");
    }
    let parent = descriptor("monolithicSparse", "RW 2048 SPARSE \"a.vmdk\"").replace(
        "parentCID=ffffffff",
        "parentCID=12345678\nparentFileNameHint=\"/etc/passwd\"",
    );
    let err = refused(&d, "child.vmdk", &sparse_vmdk(2048, &parent));
    assert!(words(&err).contains("parent"), "{err}");
}

#[test]
fn descriptor_files_and_monolithic_flat_are_refused() {
    let d = Daemon::start();
    let text = descriptor("monolithicFlat", "RW 2048 FLAT \"/etc/passwd\" 0");
    let err = refused(&d, "desc.vmdk", text.as_bytes());
    assert!(words(&err).contains("VMDK descriptor"), "{err}");
    let flat = descriptor("monolithicFlat", "RW 2048 FLAT \"flat.vmdk\" 0");
    let err = refused(&d, "flat.vmdk", &sparse_vmdk(2048, &flat));
    assert!(words(&err).contains("monolithicFlat"), "{err}");
}

#[test]
fn absurd_sizes_and_corrupt_metadata_are_invalid_argument() {
    let d = Daemon::start();
    let small = d.dir.path().join("small.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", path_str(&small), "1M"]);
    let mut bytes = std::fs::read(&small).expect("read");
    bytes[24..32].copy_from_slice(&(1u64 << 60).to_be_bytes());
    let err = refused(&d, "huge.qcow2", &bytes);
    assert!(words(&err).contains("exceeds"), "{err}");
    bytes[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
    bytes[20..24].copy_from_slice(&200u32.to_be_bytes()); // cluster bits
    let err = refused(&d, "bad-clusters.qcow2", &bytes);
    assert!(words(&err).contains("cannot read the image"), "{err}");
    assert!(
        !words(&err).contains("luster"),
        "qemu-img's words leaked: {err}"
    );
    bytes[8..16].copy_from_slice(&u64::MAX.to_be_bytes()); // backing file offset
    let err = refused(&d, "bad-backing.qcow2", &bytes);
    assert!(words(&err).contains("backing file"), "{err}");
    let desc = descriptor("monolithicSparse", "RW 2251799813685248 SPARSE \"a.vmdk\"");
    let err = refused(&d, "huge.vmdk", &sparse_vmdk(1 << 51, &desc));
    assert!(words(&err).contains("exceeds"), "{err}");
}

#[test]
fn genuine_vmdk_subformats_still_import() {
    let d = Daemon::start();
    let raw = raw_disk(d.dir.path(), "disk.img", "16M");
    for subformat in ["monolithicSparse", "streamOptimized"] {
        let out = d.dir.path().join(format!("{subformat}.vmdk"));
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            &format!("subformat={subformat}"),
            path_str(&raw),
            path_str(&out),
        ]);
        let name = subformat.to_lowercase();
        let image = d.import(&out, &name);
        assert_eq!(image["source_format"], "vmdk", "{image}");
        assert_eq!(image["virtual_size_bytes"], 16 << 20, "{image}");
        let converted = d.dir.path().join(format!("{name}.raw"));
        qemu_img(&[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "raw",
            image["path"].as_str().expect("path"),
            path_str(&converted),
        ]);
        let bytes = std::fs::read(&converted).expect("read");
        assert_eq!(&bytes[510..512], &[0x55, 0xaa], "{subformat}: content kept");
    }
}

#[test]
fn without_bwrap_imports_fail_and_never_run_unsandboxed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    // A PATH with qemu-img (vmd needs it to start) and no bwrap.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let qemu_img = std::process::Command::new("sh")
        .args(["-c", "command -v qemu-img"])
        .output()
        .expect("sh");
    let qemu_img = String::from_utf8_lossy(&qemu_img.stdout).trim().to_string();
    std::os::unix::fs::symlink(&qemu_img, bin.join("qemu-img")).expect("symlink");
    let d = Daemon::start_with_env(dir, &[("PATH", &bin)]);
    let raw = raw_disk(d.dir.path(), "disk.img", "8M");
    let before = d.snapshot();
    let upload = d.upload(&raw);
    let err = d.err(
        "image.import",
        json!([{"name": "plain", "upload_id": upload["upload_id"]}]),
    );
    assert_eq!(code(&err), 500, "a host problem, not the upload's: {err}");
    assert!(words(&err).contains("bwrap"), "{err}");
    assert!(words(&err).contains("install bubblewrap"), "{err}");
    assert_eq!(d.snapshot(), before, "nothing imported without the sandbox");
}
