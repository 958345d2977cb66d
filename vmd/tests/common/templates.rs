//! Helpers of the warm-template tests (`vmd/tests/templates.rs`): taking templates and
//! clones over JSON-RPC, the clone fields of a VM, asking a guest's shell on its console,
//! the template's files under the state directory, and calls as other accounts.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::guest::Console;
use super::{code, Daemon};

/// How long a restored clone (or a booted guest at its prompt) may take to answer.
pub const ANSWER: Duration = Duration::from_secs(60);

/// Error codes (vm-proto's `ErrorCode::code`).
pub const NOT_FOUND: i64 = 404;
pub const ALREADY_EXISTS: i64 = 409;
pub const WRONG_STATE: i64 = 412;
pub const IN_USE: i64 = 423;
pub const INVALID_ARGUMENT: i64 = 400;
pub const PERMISSION_DENIED: i64 = 403;

/// `template.create` of `name` from `from`; returns the template.
pub fn take(d: &Daemon, name: &str, from: &str) -> Value {
    d.ok("template.create", json!([{"name": name, "from": from}]))
}

/// `vm.create` of a clone of `template`.
pub fn clone_of(d: &Daemon, name: &str, template: &str) -> Value {
    d.ok("vm.create", json!([{"name": name, "template": template}]))
}

/// The clone-related fields of a VM: (state, template, restore_pending).
pub fn clone_fields(vm: &Value) -> (String, String, bool) {
    (
        vm["state"].as_str().unwrap_or("?").to_string(),
        vm["template"].as_str().unwrap_or("-").to_string(),
        vm["restore_pending"].as_bool().unwrap_or(false),
    )
}

/// Asserts that `name` is a stopped clone of `template` whose next start restores.
pub fn assert_pending(d: &Daemon, name: &str, template: &str) {
    let vm = d.ok("vm.get", json!([name]));
    assert_eq!(
        clone_fields(&vm),
        ("stopped".into(), template.into(), true),
        "{vm}"
    );
}

/// Attaches to `name`'s console and waits for an answer computed by the guest's shell (the
/// marker is output-only: the typed line shows `AN""SWER-$((6*7))`).
pub fn answer(d: &Daemon, name: &str) -> Console {
    let mut console = Console::attach(d, name);
    console.send("echo AN\"\"SWER-$((6*7))");
    console.expect("ANSWER-42", ANSWER);
    console
}

/// Whether `path` exists in the guest behind `console`.
pub fn exists(console: &mut Console, path: &str) -> bool {
    let (rc, seen) = console.capture(&format!("test -e {path}"), ANSWER);
    assert!(rc == 0 || rc == 1, "test -e {path}: rc {rc}; saw:\n{seen}");
    rc == 0
}

/// The one recorded template directory under the state directory.
pub fn template_dir(d: &Daemon) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(d.state.join("templates"))
        .expect("templates dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert_eq!(dirs.len(), 1, "one template directory: {dirs:?}");
    dirs[0].clone()
}

/// The names in a template's `clones`, sorted.
pub fn clones(template: &Value) -> Vec<String> {
    let mut names: Vec<String> = template["clones"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Forced stop of every VM in `names`.
pub fn force_stop(d: &Daemon, names: &[&str]) {
    for n in names {
        d.ok("vm.stop", json!([{"name": n, "force": true}]));
    }
}

/// Removes every VM in `names`, then the template `t`; nothing of it stays on disk.
pub fn remove_all(d: &Daemon, names: &[&str], t: &str) {
    for n in names {
        d.ok("vm.remove", json!([n]));
    }
    d.ok("template.remove", json!([t]));
    assert_eq!(d.ok("template.list", json!([])), json!([]));
    let left: Vec<_> = std::fs::read_dir(d.state.join("templates"))
        .expect("templates dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "template files left: {left:?}");
}

/// Adds account `name` (as root) and returns a bearer token for it.
pub fn account(d: &Daemon, name: &str) -> String {
    d.ok("user.add", json!([{"name": name}]));
    let secret = d.ok("token.create", json!([{"user": name}]));
    secret["token"].as_str().expect("token").to_string()
}

/// `call_with` that must succeed; returns `result`.
pub fn ok_as(d: &Daemon, token: &str, method: &str, params: Value) -> Value {
    let (_, resp) = d.call_with(token, method, params);
    assert!(resp.get("error").is_none(), "{method}: {resp}");
    resp["result"].clone()
}

/// `call_with` that must fail; returns its error code.
pub fn refused_as(d: &Daemon, token: &str, method: &str, params: Value) -> i64 {
    let (_, resp) = d.call_with(token, method, params);
    assert!(resp.get("result").is_none(), "{method} succeeded: {resp}");
    code(&resp["error"])
}
