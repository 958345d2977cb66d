//! The REST map over a real vmd with a bearer token: CRUD, power actions on a tiny guest,
//! error shapes and statuses, and the refusals of requests without credentials.

mod common;

use common::{spawn_web, Vmd, Web};
use serde_json::json;

#[test]
fn bearer_vm_crud_power_and_errors() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let web = Web::start(&vmd);
    let t = vmd.admin_token();

    let vm = web
        .bearer(
            &t,
            "POST",
            "/api/v1/vms",
            Some(&json!({"name": "web1", "image": "base"})),
        )
        .expect(201);
    assert_eq!(
        (vm["name"].as_str(), vm["state"].as_str()),
        (Some("web1"), Some("stopped"))
    );
    let list = web.bearer(&t, "GET", "/api/v1/vms", None).expect(200);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/vms?all=1", None).expect(200),
        list
    );
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/vms/web1", None).expect(200)["image"],
        "base"
    );

    let again = json!({"name": "web1", "image": "base"});
    web.bearer(&t, "POST", "/api/v1/vms", Some(&again))
        .expect_error(409, "already_exists");
    web.bearer(&t, "GET", "/api/v1/vms/nope", None)
        .expect_error(404, "not_found");
    let bad = json!({"name": "web1", "image": "base", "colour": "red"});
    web.bearer(&t, "POST", "/api/v1/vms", Some(&bad))
        .expect_error(400, "invalid_argument");
    let bad_name = json!({"name": "Bad Name!", "image": "base"});
    web.bearer(&t, "POST", "/api/v1/vms", Some(&bad_name))
        .expect_error(400, "invalid_argument");
    let no_deadline = json!({"by_secs": 60});
    web.bearer(&t, "POST", "/api/v1/vms/web1/extend", Some(&no_deadline))
        .expect_error(400, "invalid_argument");
    web.bearer(&t, "POST", "/api/v1/vms/web1/pause", None)
        .expect_error(412, "wrong_state");
    let typo = json!({"forse": true});
    web.bearer(&t, "POST", "/api/v1/vms/web1/stop", Some(&typo))
        .expect_error(400, "invalid_argument");
    web.bearer(&t, "DELETE", "/api/v1/images/base", None)
        .expect_error(423, "in_use");

    let power = |action: &str, body: Option<serde_json::Value>| {
        let path = format!("/api/v1/vms/web1/{action}");
        web.bearer(&t, "POST", &path, body.as_ref()).expect(200)["state"].clone()
    };
    assert_eq!(power("start", None), "running");
    assert_eq!(power("pause", None), "paused");
    assert_eq!(power("resume", None), "running");
    assert_eq!(power("reboot", None), "running");
    web.bearer(&t, "DELETE", "/api/v1/vms/web1", None)
        .expect_error(412, "wrong_state");
    assert_eq!(power("stop", Some(json!({"force": true}))), "stopped");
    assert_eq!(power("start", None), "running");
    // No OS answers ACPI: the stop forces after the timeout.
    assert_eq!(power("stop", Some(json!({"timeout_secs": 1}))), "stopped");
    assert_eq!(power("wipe", None), "stopped");
    let logs = web
        .bearer(&t, "GET", "/api/v1/vms/web1/logs?tail_bytes=100", None)
        .expect(200);
    assert!(logs["text"].is_string(), "{logs}");

    web.bearer(&t, "DELETE", "/api/v1/vms/web1", None)
        .expect(204);
    web.bearer(&t, "GET", "/api/v1/vms/web1", None)
        .expect_error(404, "not_found");
}

#[test]
fn patch_vm_changes_settings_and_needs_csrf_with_a_cookie() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    vmd.user_token("ann", Some(PASSWORD));
    let web = Web::start(&vmd);
    let creds = json!({"user": "ann", "password": PASSWORD});
    let resp = web.request("POST", "/api/v1/login", &[], Some(&creds));
    let set_cookie = resp.header("set-cookie").expect("set-cookie");
    let csrf = resp.expect(200)["csrf"].as_str().expect("csrf").to_string();
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let no_csrf = [("cookie", cookie.as_str())];
    let good = [no_csrf[0], ("x-csrf-token", csrf.as_str())];
    let vm = json!({"name": "web1", "image": "base"});
    web.request("POST", "/api/v1/vms", &good, Some(&vm))
        .expect(201);

    let change = json!({"cpus": 2, "memory_mib": 256, "description": "from the browser"});
    web.request("PATCH", "/api/v1/vms/web1", &no_csrf, Some(&change))
        .expect_error(403, "permission_denied");
    let vm = web
        .request("PATCH", "/api/v1/vms/web1", &good, Some(&change))
        .expect(200);
    assert_eq!(
        (vm["cpus"].as_u64(), vm["memory_mib"].as_u64()),
        (Some(2), Some(256))
    );
    assert_eq!(vm["description"], "from the browser");
    let typo = json!({"cpu": 4});
    web.request("PATCH", "/api/v1/vms/web1", &good, Some(&typo))
        .expect_error(400, "invalid_argument");
    let shrink = json!({"disk_bytes": 1 << 20});
    web.request("PATCH", "/api/v1/vms/web1", &good, Some(&shrink))
        .expect_error(400, "invalid_argument");
    web.request("PATCH", "/api/v1/vms/nope", &good, Some(&change))
        .expect_error(404, "not_found");
    let shown = web
        .request("GET", "/api/v1/vms/web1", &no_csrf, None)
        .expect(200);
    assert_eq!(
        (shown["cpus"].as_u64(), shown["description"].as_str()),
        (Some(2), Some("from the browser"))
    );
}

#[test]
fn patch_image_sets_os_and_description_for_admins_and_uploads_take_them() {
    let vmd = Vmd::start();
    vmd.import_disk("debian-12");
    let web = Web::start(&vmd);
    let t = vmd.admin_token();
    let ann = vmd.user_token("ann", None);
    let image = web
        .bearer(&t, "GET", "/api/v1/images/debian-12", None)
        .expect(200);
    assert_eq!(
        (image["os"].as_str(), image["description"].as_str()),
        (Some("debian"), Some(""))
    );
    let change = json!({"os": "ubuntu", "description": "Lab base, cloud-init"});
    let image = web
        .bearer(&t, "PATCH", "/api/v1/images/debian-12", Some(&change))
        .expect(200);
    assert_eq!(
        (image["os"].as_str(), image["description"].as_str()),
        (Some("ubuntu"), Some("Lab base, cloud-init"))
    );
    web.bearer(&ann, "PATCH", "/api/v1/images/debian-12", Some(&change))
        .expect_error(403, "permission_denied");
    let bad = json!({"description": "two\nlines"});
    web.bearer(&t, "PATCH", "/api/v1/images/debian-12", Some(&bad))
        .expect_error(400, "invalid_argument");
    web.bearer(
        &t,
        "PATCH",
        "/api/v1/images/debian-12",
        Some(&json!({"os": "beos"})),
    )
    .expect_error(400, "invalid_argument");
    web.bearer(&t, "PATCH", "/api/v1/images/nope", Some(&change))
        .expect_error(404, "not_found");
    let seen = web.bearer(&ann, "GET", "/api/v1/images", None).expect(200);
    assert_eq!(seen[0]["description"], "Lab base, cloud-init", "{seen}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("disk.img");
    let mut bytes = vec![0u8; 16 << 20];
    bytes[510..512].copy_from_slice(&[0x55, 0xaa]);
    std::fs::write(&file, bytes).expect("write disk");
    let path = "/api/v1/images?name=up&os=freebsd&description=From%20an%20upload";
    let up = web.upload(&t, path, &file).expect(201);
    assert_eq!(
        (up["os"].as_str(), up["description"].as_str()),
        (Some("freebsd"), Some("From an upload"))
    );
}

/// The password of the accounts that log in here.
const PASSWORD: &str = "a long enough password";

#[test]
fn bearer_images_isos_users_tokens_system() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let web = Web::start(&vmd);
    let t = vmd.admin_token();

    let images = web.bearer(&t, "GET", "/api/v1/images", None).expect(200);
    assert_eq!(images[0]["name"], "base", "{images}");
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/images/base", None)
            .expect(200)["name"],
        "base"
    );
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/isos", None).expect(200),
        json!([])
    );
    web.bearer(&t, "GET", "/api/v1/isos/none", None)
        .expect_error(404, "not_found");
    web.bearer(&t, "DELETE", "/api/v1/isos/none", None)
        .expect_error(404, "not_found");

    let dora = web
        .bearer(&t, "POST", "/api/v1/users", Some(&json!({"name": "dora"})))
        .expect(201);
    assert_eq!(dora["role"], "user", "{dora}");
    let users = web.bearer(&t, "GET", "/api/v1/users", None).expect(200);
    assert!(
        users
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u["name"] == "dora")),
        "{users}"
    );
    let set = json!({"max_vms": 3});
    assert_eq!(
        web.bearer(&t, "PATCH", "/api/v1/users/dora", Some(&set))
            .expect(200)["quota"]["max_vms"],
        3
    );
    let pw = json!({"password": "correct horse battery"});
    web.bearer(&t, "POST", "/api/v1/users/dora/password", Some(&pw))
        .expect(204);
    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/users/dora", None)
            .expect(200)["has_password"],
        true
    );
    web.bearer(
        &t,
        "PATCH",
        "/api/v1/users/dora",
        Some(&json!({"name": "x", "role": "admin"})),
    )
    .expect(200);
    web.bearer(&t, "GET", "/api/v1/users/x", None)
        .expect_error(404, "not_found");
    let removed = web
        .bearer(&t, "DELETE", "/api/v1/users/dora?force=1", None)
        .expect(200);
    assert_eq!(removed["name"], "dora");

    let made = web
        .bearer(&t, "POST", "/api/v1/tokens", Some(&json!({"name": "ci"})))
        .expect(201);
    let id = made["info"]["id"].as_u64().expect("id");
    let tokens = web.bearer(&t, "GET", "/api/v1/tokens", None).expect(200);
    assert!(
        tokens
            .as_array()
            .is_some_and(|l| l.iter().any(|k| k["id"] == id)),
        "{tokens}"
    );
    web.bearer(&t, "DELETE", &format!("/api/v1/tokens/{id}"), None)
        .expect(204);
    let secret = made["token"].as_str().expect("secret");
    web.bearer(secret, "GET", "/api/v1/me", None)
        .expect_error(401, "unauthenticated");
    web.bearer(&t, "DELETE", "/api/v1/tokens/abc", None)
        .expect_error(400, "invalid_argument");

    assert_eq!(
        web.bearer(&t, "GET", "/api/v1/me", None).expect(200)["role"],
        "admin"
    );
    let system = web.bearer(&t, "GET", "/api/v1/system", None).expect(200);
    let host = &system["host"];
    assert!(host["cpus"].as_u64().is_some_and(|n| n >= 1), "{system}");
    let total = host["memory_total_bytes"].as_u64().unwrap_or(0);
    let available = host["memory_available_bytes"].as_u64().unwrap_or(u64::MAX);
    assert!(total > 0 && available <= total, "{system}");
    let busy = host["cpu_busy_percent"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=100.0).contains(&busy), "{system}");
    assert!(
        host["load_1"].as_f64().is_some_and(|l| l >= 0.0),
        "{system}"
    );
}

/// The `seq`s of a JSON list of events.
fn seqs(events: &serde_json::Value) -> Vec<u64> {
    let list = events.as_array().expect("a list of events");
    list.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

/// Whether some event of `events` is about VM `vm`.
fn names_vm(events: &serde_json::Value, vm: &str) -> bool {
    let list = events.as_array().expect("a list of events");
    list.iter().any(|e| e["vm"] == vm)
}

#[test]
fn event_history_pages_and_shows_each_user_only_theirs() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let web = Web::start(&vmd);
    let admin = vmd.admin_token();
    let ann = vmd.user_token("ann", None);
    let bob = vmd.user_token("bob", None);
    for (token, vm) in [(&ann, "ann1"), (&bob, "bob1")] {
        let body = json!({"name": vm, "image": "base"});
        web.bearer(token, "POST", "/api/v1/vms", Some(&body))
            .expect(201);
    }

    let all = web
        .bearer(&admin, "GET", "/api/v1/events/history", None)
        .expect(200);
    assert!(names_vm(&all, "ann1") && names_vm(&all, "bob1"), "{all}");
    let seen = seqs(&all);
    assert!(
        seen.len() >= 4 && seen.windows(2).all(|w| w[0] < w[1]),
        "{all}"
    );

    let mine = web
        .bearer(&ann, "GET", "/api/v1/events/history", None)
        .expect(200);
    assert!(
        names_vm(&mine, "ann1") && !names_vm(&mine, "bob1"),
        "{mine}"
    );
    let owners = mine.as_array().expect("list").iter().map(|e| &e["owner"]);
    assert!(owners.clone().all(|o| o != "bob"), "{mine}");
    assert!(owners.clone().any(|o| o == "ann"), "{mine}");
    let bobs = web
        .bearer(
            &bob,
            "GET",
            "/api/v1/events/history?since=0&limit=1000",
            None,
        )
        .expect(200);
    assert!(
        names_vm(&bobs, "bob1") && !names_vm(&bobs, "ann1"),
        "{bobs}"
    );

    // Pages of two, each from the last seq of the one before, add up to the whole list.
    let mut paged = Vec::new();
    loop {
        let since = paged.last().copied().unwrap_or(0);
        let path = format!("/api/v1/events/history?since={since}&limit=2");
        let page = seqs(&web.bearer(&admin, "GET", &path, None).expect(200));
        assert!(page.len() <= 2, "{page:?}");
        paged.extend(&page);
        if page.len() < 2 {
            break;
        }
    }
    assert_eq!(paged, seen);
    let after = format!("/api/v1/events/history?since={}", seen[seen.len() - 2]);
    let last = web.bearer(&admin, "GET", &after, None).expect(200);
    assert_eq!(seqs(&last), [seen[seen.len() - 1]], "{last}");

    web.bearer(&admin, "GET", "/api/v1/events/history?since=x", None)
        .expect_error(400, "invalid_argument");
    web.request("GET", "/api/v1/events/history", &[], None)
        .expect_error(401, "unauthenticated");
}

#[test]
fn no_credential_is_401_and_health_follows_vmd() {
    let mut vmd = Vmd::start();
    let web = Web::start(&vmd);
    let t = vmd.admin_token();
    for (method, path) in [
        ("GET", "/api/v1/vms"),
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/vms"),
        ("GET", "/api/v1/system"),
    ] {
        web.request(method, path, &[], None)
            .expect_error(401, "unauthenticated");
    }
    web.bearer("not-a-token", "GET", "/api/v1/me", None)
        .expect_error(401, "unauthenticated");
    web.request("GET", "/api/v1/nothing", &[], None)
        .expect_error(404, "not_found");
    assert_eq!(
        web.request("GET", "/health", &[], None).expect(200)["status"],
        "ok"
    );

    vmd.kill();
    web.request("GET", "/health", &[], None)
        .expect_error(503, "unavailable");
    web.bearer(&t, "GET", "/api/v1/vms", None)
        .expect_error(503, "unavailable");
}

#[test]
fn plain_http_off_loopback_needs_insecure_http() {
    let (mut refused, line) =
        spawn_web(&["--socket", "/nonexistent.sock", "--listen", "0.0.0.0:0"]);
    assert_eq!(line, "", "no listener");
    let status = refused.wait().expect("wait");
    assert!(!status.success());
    let (mut allowed, line) = spawn_web(&[
        "--socket",
        "/nonexistent.sock",
        "--listen",
        "0.0.0.0:0",
        "--insecure-http",
    ]);
    assert!(
        line.starts_with("vmd-web listening on http://0.0.0.0:"),
        "{line}"
    );
    let _ = allowed.kill();
    let _ = allowed.wait();
}
