//! OS families and descriptions of images against a real daemon: guessed or given at import,
//! changed by `image.set` (admins on public images, owners on their own private ones), bad
//! descriptions refused with nothing changed, events, a restart, and a store migrated from
//! schema version 5 (no such columns) whose images get their family guessed from the name.

mod common;

use common::{raw_disk, Daemon};
use serde_json::{json, Value};

/// The JSON-RPC error code and kind of a response.
fn refusal(resp: &Value) -> (i64, &str) {
    let kind = resp["error"]["data"]["kind"].as_str().unwrap_or("");
    (resp["error"]["code"].as_i64().unwrap_or(0), kind)
}

/// Adds account `name` (as root) and returns a bearer token for it.
fn account(d: &Daemon, name: &str) -> String {
    d.ok("user.add", json!([{"name": name}]));
    let secret = d.ok("token.create", json!([{"user": name}]));
    secret["token"].as_str().expect("token").to_string()
}

/// `(os, description)` of an image object.
fn info(image: &Value) -> (&str, &str) {
    (
        image["os"].as_str().unwrap_or("?"),
        image["description"].as_str().unwrap_or("?"),
    )
}

/// The messages of the `image_changed` events of `image`.
fn changes(d: &Daemon, image: &str) -> Vec<String> {
    let events = d.ok("events.list", json!([0]));
    let events = events.as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["kind"] == "image_changed" && e["image"] == image)
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn imports_guess_or_take_the_family_and_set_changes_and_keeps_it() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "16M");
    assert_eq!(info(&d.import(&disk, "debian-12")), ("debian", ""));
    assert_eq!(info(&d.import(&disk, "lab")), ("other", ""));
    let upload = d.upload(&disk);
    let given = json!([{"name": "tiny", "upload_id": upload["upload_id"],
        "os": "alpine", "description": "Alpine 3.19, 16 MiB"}]);
    assert_eq!(
        info(&d.ok("image.import", given)),
        ("alpine", "Alpine 3.19, 16 MiB")
    );
    let set = json!([{"name": "lab", "os": "windows", "description": "Windows 11 eval"}]);
    assert_eq!(
        info(&d.ok("image.set", set)),
        ("windows", "Windows 11 eval")
    );
    assert_eq!(changes(&d, "lab"), ["os other → windows, description set"]);
    for bad in [
        json!({"name": "lab", "description": "a\nb"}),
        json!({"name": "lab"}),
    ] {
        let resp = d.call("image.set", json!([bad]));
        assert_eq!(refusal(&resp).1, "invalid_argument", "{resp}");
    }
    let long = json!([{"name": "lab", "description": "x".repeat(201)}]);
    let resp = d.call("image.set", long);
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("at most 200"), "{resp}");
    let hint = resp["error"]["data"]["hint"].as_str().unwrap_or("");
    assert!(hint.contains("on one line"), "{resp}");
    assert_eq!(
        info(&d.ok("image.get", json!(["lab"]))),
        ("windows", "Windows 11 eval"),
        "a refused change changes nothing"
    );
    let resp = d.call("image.set", json!([{"name": "ghost", "os": "linux"}]));
    assert_eq!(refusal(&resp).1, "not_found", "{resp}");
    let dir = d.kill9();
    let d = Daemon::start_in(dir);
    assert_eq!(
        info(&d.ok("image.get", json!(["lab"]))),
        ("windows", "Windows 11 eval"),
        "kept across a restart"
    );
}

#[test]
fn users_change_only_their_own_private_images_and_never_make_them_public() {
    let d = Daemon::start();
    d.import(&raw_disk(d.dir.path(), "b.img", "16M"), "ubuntu-24");
    let ann = account(&d, "ann");
    let bob = account(&d, "bob");
    let (_, resp) = d.call_with(
        &ann,
        "image.set",
        json!([{"name": "ubuntu-24", "description": "mine"}]),
    );
    assert_eq!(refusal(&resp).1, "permission_denied", "{resp}");
    let (_, resp) = d.call_with(
        &ann,
        "vm.create",
        json!([{"name": "a1", "image": "ubuntu-24"}]),
    );
    assert!(resp.get("error").is_none(), "{resp}");
    let publish = json!([{"vm": "a1", "name": "ann-base", "public": false}]);
    let (_, resp) = d.call_with(&ann, "image.publish", publish);
    assert_eq!(
        info(&resp["result"]),
        ("ubuntu", ""),
        "inherits the base's family: {resp}"
    );
    let set = json!([{"name": "ann-base", "os": "fedora", "description": "ann's lab"}]);
    let (_, resp) = d.call_with(&ann, "image.set", set);
    assert_eq!(info(&resp["result"]), ("fedora", "ann's lab"), "{resp}");
    let (_, resp) = d.call_with(
        &bob,
        "image.set",
        json!([{"name": "ann-base", "os": "arch"}]),
    );
    assert_eq!(
        refusal(&resp).1,
        "not_found",
        "others' private images are hidden: {resp}"
    );
    let (_, resp) = d.call_with(
        &ann,
        "image.set",
        json!([{"name": "ann-base", "public": true}]),
    );
    assert_eq!(refusal(&resp).1, "permission_denied", "{resp}");
    let image = d.ok("image.set", json!([{"name": "ann-base", "public": true}]));
    assert_eq!(image["public"], true, "admins make images public");
    let (_, resp) = d.call_with(
        &ann,
        "image.set",
        json!([{"name": "ann-base", "os": "rhel"}]),
    );
    assert_eq!(refusal(&resp).1, "permission_denied", "now public: {resp}");
    let (_, list) = d.call_with(&bob, "image.list", json!([]));
    let seen = list["result"].as_array().cloned().unwrap_or_default();
    let base = seen
        .iter()
        .find(|i| i["name"] == "ann-base")
        .expect("bob sees it now");
    assert_eq!(info(base), ("fedora", "ann's lab"));
    assert_eq!(
        changes(&d, "ann-base"),
        ["os ubuntu → fedora, description set", "made public"]
    );
}

#[test]
fn a_version_5_store_gets_families_guessed_from_names() {
    let d = Daemon::start();
    let disk = raw_disk(d.dir.path(), "disk.img", "16M");
    d.import(&disk, "rocky-9");
    d.import(&disk, "plain");
    d.ok(
        "image.set",
        json!([{"name": "plain", "os": "freebsd", "description": "x"}]),
    );
    let state = d.state.clone();
    let dir = d.kill9();
    let db = rusqlite::Connection::open(state.join("vmd.db")).expect("open vmd.db");
    db.execute_batch(
        "DROP INDEX vms_template;
         ALTER TABLE vms DROP COLUMN restore_pending;
         ALTER TABLE vms DROP COLUMN template_id;
         DROP TABLE templates;
         DROP TABLE port_forwards;
         DROP TABLE vm_nics;
         DROP TABLE networks;
         ALTER TABLE vms DROP COLUMN user_net;
         ALTER TABLE vms ADD COLUMN ssh_port INTEGER;
         CREATE UNIQUE INDEX vms_ssh_port ON vms(ssh_port) WHERE ssh_port IS NOT NULL;
         DROP TABLE vm_cloud_init;
         ALTER TABLE vms DROP COLUMN labels;
         ALTER TABLE images DROP COLUMN cloud_init;
         DROP INDEX events_public_seq;
         DROP INDEX events_audience_seq;
         ALTER TABLE images DROP COLUMN os;
         ALTER TABLE images DROP COLUMN description;
         PRAGMA user_version = 5;",
    )
    .expect("back to version 5");
    drop(db);
    let d = Daemon::start_in(dir);
    let list = d.ok("image.list", json!([]));
    let got: Vec<_> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                info(i).0.to_string(),
                info(i).1.to_string(),
            )
        })
        .collect();
    let want = [("plain", "other", ""), ("rocky-9", "rhel", "")];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(d.ok("system.info", json!([]))["issues"], json!([]));
}
