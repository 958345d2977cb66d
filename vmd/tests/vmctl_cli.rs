//! The built `vmctl` binary against a real daemon: every verb's `--output json` schema, human
//! tables, `-q`, documented exit codes, errors on stderr with hints, and socket permissions.

mod common;

use common::{raw_disk, Daemon};
use serde_json::Value;

fn run(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = d.vmctl(args);
    let code = out.status.code().unwrap_or(-1);
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(d, &all);
    assert_eq!(code, 0, "vmctl {args:?} failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("vmctl {args:?}: not one JSON document ({e}): {stdout}"))
}

fn has_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(f).is_some(), "missing field {f} in {v}");
    }
}

#[test]
fn image_and_vm_verbs_with_json_schemas() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "32M");
    let image = json(
        &d,
        &["image", "import", common::path_str(&disk), "--name", "base"],
    );
    has_fields(
        &image,
        &[
            "name",
            "format",
            "virtual_size_bytes",
            "disk_usage_bytes",
            "sha256",
            "owner",
            "created_at",
            "used_by",
        ],
    );
    let vm = json(
        &d,
        &[
            "create", "web1", "--image", "base", "--cpus", "2", "--memory", "256M", "--disk", "1G",
        ],
    );
    has_fields(
        &vm,
        &[
            "name",
            "state",
            "image",
            "cpus",
            "memory_mib",
            "disk_bytes",
            "owner",
            "created_at",
        ],
    );
    assert_eq!(
        (
            vm["cpus"].as_u64(),
            vm["memory_mib"].as_u64(),
            vm["disk_bytes"].as_u64()
        ),
        (Some(2), Some(256), Some(1 << 30))
    );
    let list = json(&d, &["ls"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(
        json(&d, &["image", "show", "base"])["used_by"],
        serde_json::json!(["web1"])
    );
    assert_eq!(json(&d, &["show", "web1"])["state"], "stopped");
    assert_eq!(json(&d, &["wipe", "web1"])["name"], "web1");
    let status = json(&d, &["status"]);
    has_fields(
        &status,
        &[
            "daemon_version",
            "api_version",
            "accelerator",
            "image_count",
            "vm_count",
            "disk",
            "issues",
        ],
    );
    assert_eq!(
        json(&d, &["rm", "web1"]),
        serde_json::json!({"removed": "web1", "kind": "vm"})
    );
    assert_eq!(
        json(&d, &["image", "rm", "base"]),
        serde_json::json!({"removed": "base", "kind": "image"})
    );
}

#[test]
fn tables_and_quiet_mode() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "32M");
    let (code, _, _) = run(
        &d,
        &[
            "-q",
            "image",
            "import",
            common::path_str(&disk),
            "--name",
            "base",
        ],
    );
    assert_eq!(code, 0);
    for name in ["b-vm", "a-vm"] {
        assert_eq!(run(&d, &["create", name, "--image", "base", "-q"]).0, 0);
    }
    let (_, table, _) = run(&d, &["ls"]);
    let header = table.lines().next().unwrap_or("");
    for col in [
        "NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "DISK", "OWNER", "CREATED",
    ] {
        assert!(header.contains(col), "{col} missing: {table}");
    }
    assert_eq!(
        run(&d, &["ls", "-q"]).1,
        "a-vm\nb-vm\n",
        "-q prints names only, sorted"
    );
    let (_, images, _) = run(&d, &["image", "ls"]);
    assert!(
        images.contains("base") && images.contains("VMS") && images.contains("OWNER"),
        "{images}"
    );
}

#[test]
fn exit_codes_and_errors_with_hints() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "32M");
    run(
        &d,
        &[
            "-q",
            "image",
            "import",
            common::path_str(&disk),
            "--name",
            "base",
        ],
    );
    run(&d, &["-q", "create", "web1", "--image", "base"]);
    let (code, stdout, stderr) = run(&d, &["show", "ghost"]);
    assert_eq!((code, stdout.as_str()), (3, ""), "not found: {stderr}");
    assert!(
        stderr.starts_with("vmctl: error: vm ghost not found\nhint: "),
        "{stderr}"
    );
    assert_eq!(
        run(&d, &["create", "web1", "--image", "base"]).0,
        4,
        "already exists"
    );
    let (code, _, stderr) = run(&d, &["image", "rm", "base"]);
    assert_eq!(code, 4, "in use: {stderr}");
    assert!(
        stderr.contains("image base is used by 1 vm: web1"),
        "{stderr}"
    );
    assert_eq!(
        run(&d, &["create", "Bad_Name", "--image", "base"]).0,
        6,
        "invalid argument"
    );
    assert_eq!(
        run(&d, &["create", "x", "--image", "base", "--memory", "lots"]).0,
        6
    );
    assert_eq!(
        run(&d, &["create", "x", "--image", "base", "--cpus", "500"]).0,
        6,
        "daemon-side invalid argument"
    );
    assert_eq!(run(&d, &["frobnicate"]).0, 2, "usage");
    let (code, _, stderr) = run(&d, &["--output", "json", "show", "ghost"]);
    assert_eq!(code, 3);
    let err: Value = serde_json::from_str(stderr.trim()).expect("json error on stderr");
    assert_eq!(
        (err["error"]["code"].as_i64(), err["error"]["kind"].as_str()),
        (Some(404), Some("not_found")),
        "{err}"
    );
    let none = d.dir.path().join("nothing.sock");
    let out = std::process::Command::new(common::vmctl_bin())
        .args(["--socket", common::path_str(&none), "ls"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(5), "daemon unreachable");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is vmd running?"),
        "{out:?}"
    );
}

#[test]
fn socket_env_is_honoured_and_non_members_are_refused() {
    let d = Daemon::start();
    let out = std::process::Command::new(common::vmctl_bin())
        .args(["--output", "json", "ls"])
        .env("VMD_SOCKET", &d.socket)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    if vm_proto::paths::current_uid() != 0 {
        return; // the permission check below needs root to switch users
    }
    let dir_mode: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    for dir in [d.dir.path(), d.socket.parent().expect("run dir")] {
        std::fs::set_permissions(dir, dir_mode.clone()).expect("chmod");
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::vmctl_bin())
        .args(["--socket", common::path_str(&d.socket), "ls"])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "a user outside the socket's group is refused: {stderr}"
    );
    assert!(stderr.contains("ermission denied"), "{stderr}");
}

#[test]
fn status_shows_consistency_issues() {
    let d = Daemon::start();
    let dir = d.kill9();
    let overlays = dir.path().join("state/overlays");
    std::fs::write(overlays.join("stray.qcow2"), b"x").expect("orphan");
    let d = Daemon::start_in(dir);
    let (code, stdout, stderr) = run(&d, &["status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("orphan_overlay") && stdout.contains("stray"),
        "{stdout}"
    );
    assert!(!stderr.is_empty(), "a warning on stderr");
}

#[test]
fn image_os_and_description_through_import_set_ls_and_show() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "16M");
    let path = common::path_str(&disk);
    let image = json(
        &d,
        &["image", "import", path, "--name", "lab", "--os", "opensuse"],
    );
    assert_eq!(
        (image["os"].as_str(), image["description"].as_str()),
        (Some("opensuse"), Some(""))
    );
    json(&d, &["image", "import", path, "--name", "win11"]);
    let set = [
        "image",
        "set",
        "lab",
        "--os",
        "alpine",
        "--description",
        "tiny base",
    ];
    let image = json(&d, &set);
    assert_eq!(
        (image["os"].as_str(), image["description"].as_str()),
        (Some("alpine"), Some("tiny base"))
    );
    let list = json(&d, &["image", "ls"]);
    let families: Vec<_> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["os"].clone())
        .collect();
    assert_eq!(families, [Value::from("alpine"), Value::from("windows")]);
    let (code, table, _) = run(&d, &["image", "ls"]);
    let header = table.lines().next().unwrap_or("");
    assert!(
        code == 0 && header.starts_with("NAME") && header.contains(" OS "),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("win11")).unwrap_or("");
    assert!(row.contains("windows"), "{table}");
    let (_, shown, _) = run(&d, &["image", "show", "lab"]);
    assert!(
        shown.contains("tiny base") && shown.contains("alpine"),
        "{shown}"
    );
    let (code, _, stderr) = run(&d, &["image", "set", "lab", "--description", "a\u{7}b"]);
    assert_eq!(code, 6, "{stderr}");
    let (code, _, stderr) = run(&d, &["image", "set", "ghost", "--os", "linux"]);
    assert_eq!(code, 3, "{stderr}");
}
