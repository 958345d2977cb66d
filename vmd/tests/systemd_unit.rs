//! Checks `systemd/vmd.service` and `systemd/vmd-web.service`: `systemd-analyze verify` accepts
//! each when `ExecStart=` points at the binary built by this test run, and vmd's unit keeps the
//! settings guests depend on.
//!
//! Needs `systemd-analyze` (Debian package `systemd`); `scripts/setup.sh` installs it. The test
//! fails, rather than skips, when the tool is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A unit file in the source tree.
fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(name)
}

fn read_unit() -> String {
    read_named_unit("vmd.service")
}

fn read_named_unit(name: &str) -> String {
    let path = unit_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Values of every `key=value` line for `key`, ignoring comments and sections.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// The unit with every `ExecStart=` replaced by `exe`.
fn with_exec_start(unit: &str, exe: &str) -> String {
    assert!(
        !exe.contains(char::is_whitespace),
        "binary path {exe:?} contains whitespace"
    );
    let lines: Vec<String> = unit
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("ExecStart=") {
                format!("ExecStart={exe}")
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

fn systemd_analyze_verify(unit_file: &Path) -> Output {
    let result = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit_file)
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "")
        .output();
    match result {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed ({e}); run scripts/setup.sh (it installs the `systemd` package)"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    verify_unit("vmd.service", Path::new(env!("CARGO_BIN_EXE_vmd")));
}

/// The web shim's unit, with the vmd-web binary built beside vmd (`cargo build --workspace
/// --bins`, which `cargo nextest run --workspace` does).
#[test]
fn web_unit_passes_systemd_analyze_verify() {
    let exe = Path::new(env!("CARGO_BIN_EXE_vmd")).with_file_name("vmd-web");
    assert!(
        exe.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        exe.display()
    );
    let unit = read_named_unit("vmd-web.service");
    assert_eq!(
        values(&unit, "ExecStart"),
        ["/usr/bin/vmd-web --socket /run/vmd/vmd.sock --listen 127.0.0.1:8080"]
    );
    // Room for the connection cap (512, two descriptors each) above the default 1024.
    let nofile = values(&unit, "LimitNOFILE");
    let nofile: Vec<u64> = nofile.iter().filter_map(|v| v.parse().ok()).collect();
    assert!(
        matches!(nofile[..], [n] if n >= 2048),
        "LimitNOFILE={nofile:?}"
    );
    verify_unit("vmd-web.service", &exe);
}

/// Runs `systemd-analyze verify` on a copy of unit `name` whose `ExecStart=` is `exe`.
fn verify_unit(name: &str, exe: &Path) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let unit_file = dir.path().join(name);
    let unit = with_exec_start(&read_named_unit(name), exe.to_str().expect("utf-8 path"));
    std::fs::write(&unit_file, unit).expect("write unit copy");

    let out = systemd_analyze_verify(&unit_file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = text.lines().filter(|l| l.contains(name)).collect();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{text}",
        out.status
    );
    assert!(
        problems.is_empty(),
        "systemd-analyze verify reported problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn unit_is_notify_and_spares_guests_on_restart() {
    let unit = read_unit();
    assert_eq!(
        values(&unit, "Type"),
        ["notify"],
        "vmd signals readiness with sd_notify"
    );
    assert_eq!(
        values(&unit, "KillMode"),
        ["process"],
        "guests must outlive vmd restarts"
    );
    assert_eq!(values(&unit, "ExecStart"), ["/usr/bin/vmd"]);
    assert_eq!(
        values(&unit, "RuntimeDirectoryPreserve"),
        ["yes"],
        "guest sockets live in /run/vmd"
    );
    assert!(
        values(&unit, "PrivateDevices").is_empty(),
        "PrivateDevices hides /dev/kvm and /dev/net/tun"
    );
    assert!(
        values(&unit, "DeviceAllow").is_empty(),
        "a DeviceAllow list blocks /dev/kvm"
    );
    assert!(
        values(&unit, "ProtectClock").is_empty(),
        "ProtectClock implies a DeviceAllow list"
    );
}

#[test]
fn exec_start_rewrite_keeps_everything_else() {
    let unit = "[Service]\nType=notify\nExecStart=/usr/bin/vmd\n# ExecStart=comment\n";
    let out = with_exec_start(unit, "/tmp/t/vmd");
    assert_eq!(values(&out, "ExecStart"), ["/tmp/t/vmd"]);
    assert_eq!(values(&out, "Type"), ["notify"]);
    assert!(out.contains("# ExecStart=comment"));
}
