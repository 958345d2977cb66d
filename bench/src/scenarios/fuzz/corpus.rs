//! The fuzzer's seeds: a valid-looking call of every method of `vm-proto/src/api.rs` (plus
//! named-parameter forms, batches and notifications), names for console paths, and small
//! disk images of each format vmd detects, made by `qemu-img create`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The running VM every fuzz daemon has (console attach, pause, logs work on it).
pub const VM: &str = "f0";
/// A VM name that mutated creates start from.
pub const NEW_VM: &str = "fz1";

/// Every method with plausible positional params.
pub fn calls() -> Vec<(&'static str, Value)> {
    let create = json!({"name": NEW_VM, "image": "small", "cpus": 1, "memory_mib": 64,
        "disk_bytes": 67108864u64, "ssh_port": 2222, "firmware": "bios"});
    vec![
        ("system.info", json!([])),
        (
            "image.import",
            json!([{"name": "imp1", "upload_id": "u-1"}]),
        ),
        ("image.list", json!([])),
        ("image.get", json!(["small"])),
        ("image.remove", json!(["imp1"])),
        ("vm.create", json!([create])),
        ("vm.list", json!([])),
        ("vm.get", json!([VM])),
        ("vm.remove", json!([NEW_VM])),
        ("vm.wipe", json!([NEW_VM])),
        ("vm.start", json!([NEW_VM])),
        (
            "vm.stop",
            json!([{"name": NEW_VM, "force": true, "timeout_secs": 1}]),
        ),
        ("vm.reboot", json!([VM])),
        ("vm.pause", json!([VM])),
        ("vm.resume", json!([VM])),
        ("vm.logs", json!([VM, 1024])),
        ("vm.follow_logs", json!([VM])),
        ("vm.unfollow_logs", json!(["0"])),
        ("events.subscribe", json!([0])),
        ("events.unsubscribe", json!(["0"])),
        ("events.list", json!([0, 10])),
        ("iso.import", json!([{"name": "iso1", "upload_id": "u-1"}])),
        ("iso.list", json!([])),
        ("iso.get", json!(["iso1"])),
        ("iso.remove", json!(["iso1"])),
        ("vm.attach_iso", json!([{"vm": VM, "iso": "iso1"}])),
        ("vm.detach_iso", json!([VM])),
        (
            "image.create",
            json!([{"name": "ic1", "size_bytes": 1048576, "iso": "iso1", "cpus": 1, "memory_mib": 64}]),
        ),
        ("image.seal", json!(["ic1"])),
        ("image.publish", json!([{"vm": NEW_VM, "name": "pub1"}])),
    ]
}

/// The JSON-RPC seed corpus: every call, some by name, a batch, a notification.
pub fn requests() -> Vec<Value> {
    let calls = calls();
    let mut out: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
        .collect();
    out.push(json!({"jsonrpc": "2.0", "id": "s", "method": "vm.get", "params": {"name": VM}}));
    out.push(json!({"jsonrpc": "2.0", "method": "vm.list", "params": []}));
    out.push(json!({"jsonrpc": "2.0", "id": 1, "method": "system.info"}));
    out.push(Value::Array(out[..4].to_vec()));
    out
}

/// Names for console paths: real, missing, and hostile.
pub const CONSOLE_NAMES: &[&str] = &[
    VM, NEW_VM, "nope", "", ".", "..", "../f0", "f0/", "f0%00", "%2e%2e", "F0", "f0 ", "a\u{e9}",
    "-", "f0?x=1", "f0#", "%", "\\", "f0;rm",
];

/// Small images of the formats vmd detects, as (format, bytes), at most `cap` bytes each.
pub fn images(dir: &Path, cap: usize) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::new();
    for (fmt, opts) in [
        ("qcow2", ""),
        ("vmdk", ""),
        ("vdi", ""),
        ("vhdx", ""),
        ("vpc", ""),
        ("qcow2", "compat=0.10"),
    ] {
        let path = dir.join(format!("img-{fmt}-{}", out.len()));
        let mut cmd = Command::new("qemu-img");
        cmd.args(["create", "-q", "-f", fmt]);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        let res = cmd
            .arg(&path)
            .arg("1M")
            .output()
            .context("running qemu-img")?;
        if !res.status.success() {
            bail!(
                "qemu-img create -f {fmt}: {}",
                String::from_utf8_lossy(&res.stderr)
            );
        }
        let mut bytes = std::fs::read(&path)?;
        bytes.truncate(cap);
        out.push((fmt, bytes));
    }
    Ok(out)
}
