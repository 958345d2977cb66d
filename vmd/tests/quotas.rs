//! Quotas and host memory admission against a real daemon: concurrent requests of one user
//! never pass a limit, a refusal leaves nothing behind, admins are unlimited by default.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::guest::BOOT;
use common::Daemon;
use serde_json::{json, Value};

/// States in which a VM has a QEMU process (what the running quotas count).
const WITH_PROCESS: [&str; 4] = ["starting", "running", "paused", "stopping"];

fn kind(resp: &Value) -> &str {
    resp["error"]["data"]["kind"].as_str().unwrap_or("")
}

/// The JSON-RPC error code and kind of a response.
fn refusal(resp: &Value) -> (i64, &str) {
    (resp["error"]["code"].as_i64().unwrap_or(0), kind(resp))
}

/// Adds account `name` (as root) and returns a bearer token for it.
fn account(d: &Daemon, name: &str) -> String {
    d.ok("user.add", json!([{"name": name}]));
    let secret = d.ok("token.create", json!([{"user": name}]));
    secret["token"].as_str().expect("token").to_string()
}

/// Runs `f(i)` for `i in 0..n` on `n` threads at once; results in order.
fn concurrently<F>(n: usize, f: F) -> Vec<(u16, Value)>
where
    F: Fn(usize) -> (u16, Value) + Sync,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

/// How many results carry each error kind (`ok` for successes).
fn tally(results: &[(u16, Value)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, resp) in results {
        let k = if resp.get("error").is_some() {
            kind(resp)
        } else {
            "ok"
        };
        *counts.entry(k.to_string()).or_insert(0) += 1;
    }
    counts
}

fn states(d: &Daemon, token: &str) -> Vec<String> {
    let (_, resp) = d.call_with(token, "vm.list", json!([]));
    let vms = resp["result"].as_array().cloned().unwrap_or_default();
    vms.iter()
        .map(|v| v["state"].as_str().unwrap_or("").to_string())
        .collect()
}

fn overlays(d: &Daemon) -> Vec<String> {
    let info = d.ok("system.info", json!([]));
    let dir = info["overlays_dir"]
        .as_str()
        .expect("overlays_dir")
        .to_string();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read overlays dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn fifty_concurrent_creates_and_starts_respect_the_quota() {
    let d = Daemon::start();
    d.import_guest();
    let token = account(&d, "busy");
    d.ok(
        "user.set",
        json!([{"name": "busy", "max_vms": 5, "max_running": 2}]),
    );
    let created = concurrently(50, |i| {
        let vm = json!([{"name": format!("q{i:02}"), "image": "guest", "memory_mib": 128}]);
        d.call_with(&token, "vm.create", vm)
    });
    let counts = tally(&created);
    assert_eq!(counts.get("ok"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("quota_exceeded"), Some(&45), "{counts:?}");
    for (_, resp) in created.iter().filter(|(_, r)| r.get("error").is_some()) {
        assert_eq!(refusal(resp), (429, "quota_exceeded"), "{resp}");
    }
    assert_eq!(states(&d, &token).len(), 5);
    let root_view = d.ok("vm.list", json!([{"all": true}]));
    assert_eq!(root_view.as_array().map(Vec::len), Some(5), "{root_view}");
    assert_eq!(overlays(&d).len(), 5, "{:?}", overlays(&d));

    let names: Vec<String> = created
        .iter()
        .filter(|(_, r)| r.get("error").is_none())
        .map(|(_, r)| r["result"]["name"].as_str().expect("name").to_string())
        .collect();
    let done = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    let started = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let n = states(&d, &token)
                    .iter()
                    .filter(|st| WITH_PROCESS.contains(&st.as_str()))
                    .count();
                most.fetch_max(n, Ordering::SeqCst);
                // A poll interval (observation only, nothing waits on it).
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let results = concurrently(50, |i| {
            d.call_with(&token, "vm.start", json!([names[i % names.len()]]))
        });
        done.store(true, Ordering::SeqCst);
        results
    });
    let counts = tally(&started);
    eprintln!("vm.start outcomes: {counts:?}, most seen with a process: {most:?}");
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "seen {most:?} with a process"
    );
    assert_eq!(counts.get("ok"), Some(&2), "{counts:?}");
    let allowed = ["ok", "quota_exceeded", "wrong_state", "in_use"];
    assert!(
        counts.keys().all(|k| allowed.contains(&k.as_str())),
        "{counts:?}"
    );
    assert!(
        counts.get("quota_exceeded").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    let now = states(&d, &token);
    assert_eq!(now.iter().filter(|s| *s == "running").count(), 2, "{now:?}");
    assert_eq!(
        now.iter()
            .filter(|s| WITH_PROCESS.contains(&s.as_str()))
            .count(),
        2
    );
    for name in &names {
        if d.ok("vm.get", json!([name]))["state"] == "running" {
            d.ok("vm.stop", json!([{"name": name, "force": true}]));
        }
    }
}

#[test]
fn disk_quota_refuses_create_and_private_publish() {
    let d = Daemon::start();
    d.import_guest();
    let base = d.ok("image.get", json!(["guest"]))["virtual_size_bytes"]
        .as_u64()
        .expect("size");
    let token = account(&d, "disky");
    d.ok(
        "user.set",
        json!([{"name": "disky", "max_disk_bytes": base + base / 2}]),
    );
    let big = json!([{"name": "big", "image": "guest", "disk_bytes": 2 * base}]);
    let (_, resp) = d.call_with(&token, "vm.create", big);
    assert_eq!(refusal(&resp), (429, "quota_exceeded"), "{resp}");
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("disk would be"), "{message}");
    assert!(states(&d, &token).is_empty());
    assert!(overlays(&d).is_empty(), "{:?}", overlays(&d));

    let (_, resp) = d.call_with(
        &token,
        "vm.create",
        json!([{"name": "src", "image": "guest"}]),
    );
    assert!(resp.get("error").is_none(), "{resp}");
    let publish = json!([{"vm": "src", "name": "mine", "public": false}]);
    let (_, resp) = d.call_with(&token, "image.publish", publish.clone());
    assert_eq!(refusal(&resp), (429, "quota_exceeded"), "{resp}");
    assert_eq!(
        d.err("image.get", json!(["mine"]))["data"]["kind"],
        "not_found"
    );
    let info = d.ok("system.info", json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(info["images_dir"].as_str().expect("images_dir"))
        .expect("images dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("mine"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    d.ok(
        "user.set",
        json!([{"name": "disky", "max_disk_bytes": 2 * base}]),
    );
    let (_, resp) = d.call_with(&token, "image.publish", publish);
    assert!(resp.get("error").is_none(), "{resp}");
    let (_, me) = d.call_with(&token, "auth.whoami", json!([]));
    assert_eq!(me["result"]["usage"]["disk_bytes"], 2 * base, "{me}");
}

#[test]
fn host_memory_limit_admits_one_256m_vm_at_a_time() {
    let d = Daemon::start_configured(
        tempfile::tempdir().expect("tempdir"),
        "host_memory_limit = \"300M\"\n",
    );
    d.import_guest();
    for name in ["m1", "m2"] {
        d.ok(
            "vm.create",
            json!([{"name": name, "image": "guest", "memory_mib": 256}]),
        );
    }
    d.ok("vm.start", json!(["m1"]));
    let resp = d.call("vm.start", json!(["m2"]));
    assert_eq!(resp["error"]["code"], 503, "{resp}");
    assert_eq!(kind(&resp), "unavailable");
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("host_memory_limit"), "{message}");
    assert_eq!(d.ok("vm.get", json!(["m2"]))["state"], "stopped");

    d.ok("vm.stop", json!([{"name": "m1", "force": true}]));
    d.wait_state("m1", "stopped", BOOT);
    d.ok("vm.start", json!(["m2"]));
    d.ok("vm.stop", json!([{"name": "m2", "force": true}]));
}

#[test]
fn config_defaults_bind_users_not_admins() {
    let d = Daemon::start_configured(
        tempfile::tempdir().expect("tempdir"),
        "[quota]\nmax_vms = 1\n",
    );
    d.import_guest();
    for name in ["r1", "r2"] {
        d.ok("vm.create", json!([{"name": name, "image": "guest"}]));
    }
    let root = d.ok("auth.whoami", json!([]));
    assert!(root["quota"]["max_vms"].is_null(), "{root}");

    let token = account(&d, "plain");
    let (_, me) = d.call_with(&token, "auth.whoami", json!([]));
    assert_eq!(me["result"]["quota"]["max_vms"], 1, "{me}");
    let (_, first) = d.call_with(
        &token,
        "vm.create",
        json!([{"name": "u1", "image": "guest"}]),
    );
    assert!(first.get("error").is_none(), "{first}");
    let (_, second) = d.call_with(
        &token,
        "vm.create",
        json!([{"name": "u2", "image": "guest"}]),
    );
    assert_eq!(refusal(&second), (429, "quota_exceeded"), "{second}");
    let message = second["error"]["message"].as_str().unwrap_or("");
    assert_eq!(
        message,
        "quota exceeded: vms would be 2 with a limit of 1 (now 1)"
    );
}

#[test]
fn a_template_counts_its_ram_against_the_disk_quota_and_a_refusal_leaves_the_vm_running() {
    let d = Daemon::start();
    d.import_guest();
    let base = d.ok("image.get", json!(["guest"]))["virtual_size_bytes"]
        .as_u64()
        .expect("size");
    let token = account(&d, "ramful");
    let mib = 1024 * 1024;
    d.ok(
        "user.set",
        json!([{"name": "ramful", "max_disk_bytes": base + 64 * mib}]),
    );
    let create = json!([{"name": "src", "image": "guest", "memory_mib": 128}]);
    let (_, resp) = d.call_with(&token, "vm.create", create);
    assert!(resp.get("error").is_none(), "{resp}");
    let (_, resp) = d.call_with(&token, "vm.start", json!(["src"]));
    assert!(resp.get("error").is_none(), "{resp}");
    let take = json!([{"name": "t", "from": "src"}]);
    let (_, resp) = d.call_with(&token, "template.create", take.clone());
    assert_eq!(refusal(&resp), (429, "quota_exceeded"), "{resp}");
    assert_eq!(states(&d, &token), ["running"], "the refused VM runs on");
    assert_eq!(
        d.err("template.get", json!(["t"]))["data"]["kind"],
        "not_found"
    );

    d.ok(
        "user.set",
        json!([{"name": "ramful", "max_disk_bytes": base + 128 * mib}]),
    );
    let (_, resp) = d.call_with(&token, "template.create", take);
    assert!(resp.get("error").is_none(), "{resp}");
    let (_, me) = d.call_with(&token, "auth.whoami", json!([]));
    assert_eq!(
        me["result"]["usage"]["disk_bytes"],
        base + 128 * mib,
        "the VM's disk and the template's RAM: {me}"
    );
}
