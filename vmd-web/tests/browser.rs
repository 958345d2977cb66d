//! Browser sessions over a real vmd: login cookie, CSRF and Origin checks, logout; and that
//! a second user reaches none of the first user's VM or private image through any
//! `/vms/{name}` or `/images/{name}` route.

mod common;

use common::{Vmd, Web};
use serde_json::json;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "a long enough password";

#[test]
fn login_cookie_csrf_origin_and_logout() {
    let vmd = Vmd::start();
    vmd.user_token("ann", Some(PASSWORD));
    let web = Web::start(&vmd);

    let wrong = json!({"user": "ann", "password": "wrong password!"});
    web.request("POST", "/api/v1/login", &[], Some(&wrong))
        .expect_error(401, "unauthenticated");
    let creds = json!({"user": "ann", "password": PASSWORD});
    let foreign = [("origin", "http://evil.example")];
    web.request("POST", "/api/v1/login", &foreign, Some(&creds))
        .expect_error(403, "permission_denied");

    let resp = web.request("POST", "/api/v1/login", &[], Some(&creds));
    let set_cookie = resp.header("set-cookie").expect("set-cookie");
    let login = resp.expect(200);
    assert_eq!(
        (login["user"].as_str(), login["role"].as_str()),
        (Some("ann"), Some("user"))
    );
    assert!(login["expires_at"].is_string(), "{login}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no TLS, no Secure: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let session = cookie.strip_prefix("vmd_session=").expect("session cookie");
    let csrf = login["csrf"].as_str().expect("csrf");
    let digest = Sha256::digest(format!("vmd-web-csrf:{session}"));
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(csrf, expected);

    let me = web
        .request("GET", "/api/v1/me", &[("cookie", &cookie)], None)
        .expect(200);
    assert_eq!(
        (me["user"].as_str(), me["via"].as_str()),
        (Some("ann"), Some("session")),
        "{me}"
    );

    let body = json!({"name": "from-browser"});
    let no_csrf = [("cookie", cookie.as_str())];
    web.request("POST", "/api/v1/tokens", &no_csrf, Some(&body))
        .expect_error(403, "permission_denied");
    let bad_csrf = [no_csrf[0], ("x-csrf-token", "0000")];
    web.request("POST", "/api/v1/tokens", &bad_csrf, Some(&body))
        .expect_error(403, "permission_denied");
    let good = [no_csrf[0], ("x-csrf-token", csrf)];
    web.request("POST", "/api/v1/tokens", &good, Some(&body))
        .expect(201);
    let cross = [good[0], good[1], ("origin", "http://evil.example")];
    web.request("POST", "/api/v1/tokens", &cross, Some(&body))
        .expect_error(403, "permission_denied");
    let origin = format!("http://{}", web.addr);
    let same = [good[0], good[1], ("origin", origin.as_str())];
    web.request(
        "POST",
        "/api/v1/tokens",
        &same,
        Some(&json!({"name": "same"})),
    )
    .expect(201);

    // The image-making routes: refused without the token, passed to vmd with it (which
    // keeps image.create and image.seal for admins, and finds no such VM).
    let new_routes = [
        (
            "POST",
            "/api/v1/images",
            json!({"name": "i", "size_bytes": 1 << 20, "iso": "none"}),
            403,
        ),
        ("POST", "/api/v1/images/none/seal", json!(null), 403),
        ("PUT", "/api/v1/vms/none/iso", json!({"iso": "none"}), 404),
        ("DELETE", "/api/v1/vms/none/iso", json!(null), 404),
        (
            "POST",
            "/api/v1/vms/none/publish",
            json!({"name": "p"}),
            404,
        ),
    ];
    for (method, path, body, status) in &new_routes {
        let body = Some(body).filter(|b| !b.is_null());
        let refused = web.request(method, path, &no_csrf, body).expect(403);
        assert_eq!(refused["message"], "missing or wrong CSRF token", "{path}");
        let passed = web.request(method, path, &good, body).expect(*status);
        assert_ne!(passed["message"], refused["message"], "{path}");
    }

    web.request("POST", "/api/v1/logout", &no_csrf, None)
        .expect_error(403, "permission_denied");
    let resp = web.request("POST", "/api/v1/logout", &good, None);
    let cleared = resp.header("set-cookie").expect("cleared cookie");
    assert!(
        cleared.starts_with("vmd_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    resp.expect(204);
    web.request("GET", "/api/v1/me", &no_csrf, None)
        .expect_error(401, "unauthenticated");
}

#[test]
fn another_users_vm_is_not_found_through_every_route() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    vmd.import_iso("tools");
    let ann = vmd.user_token("ann", None);
    let bob = vmd.user_token("bob", None);
    let web = Web::start(&vmd);
    let vm = json!({"name": "annvm", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);

    let routes = [
        ("GET", "/api/v1/vms/annvm", None),
        ("PATCH", "/api/v1/vms/annvm", Some(json!({"cpus": 2}))),
        ("DELETE", "/api/v1/vms/annvm", None),
        ("GET", "/api/v1/vms/annvm/logs", None),
        ("POST", "/api/v1/vms/annvm/start", None),
        (
            "POST",
            "/api/v1/vms/annvm/stop",
            Some(json!({"force": true})),
        ),
        ("POST", "/api/v1/vms/annvm/reboot", None),
        ("POST", "/api/v1/vms/annvm/pause", None),
        ("POST", "/api/v1/vms/annvm/resume", None),
        ("POST", "/api/v1/vms/annvm/wipe", None),
        (
            "POST",
            "/api/v1/vms/annvm/extend",
            Some(json!({"by_secs": 60})),
        ),
        (
            "PUT",
            "/api/v1/vms/annvm/iso",
            Some(json!({"iso": "tools"})),
        ),
        ("DELETE", "/api/v1/vms/annvm/iso", None),
        (
            "POST",
            "/api/v1/vms/annvm/publish",
            Some(json!({"name": "copy"})),
        ),
    ];
    for (method, path, body) in &routes {
        web.bearer(&bob, method, path, body.as_ref())
            .expect_error(404, "not_found");
    }
    assert_eq!(
        web.bearer(&bob, "GET", "/api/v1/vms", None).expect(200),
        json!([])
    );
    web.bearer(&bob, "GET", "/api/v1/vms?user=ann", None)
        .expect_error(403, "permission_denied");
    assert_eq!(
        web.bearer(&ann, "GET", "/api/v1/vms/annvm", None)
            .expect(200)["state"],
        "stopped"
    );
}

/// vmd-web's request lines name the user vmd identified (bearer, cookie, login) and never
/// carry a secret; a refused credential names nobody.
#[test]
fn request_lines_name_the_user_and_no_secret() {
    let vmd = Vmd::start();
    let token = vmd.user_token("ann", Some(PASSWORD));
    let log_path = vmd.dir.path().join("vmd-web.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let web = Web::start_logging(&vmd, log.into());

    web.bearer(&token, "GET", "/api/v1/vms", None).expect(200);
    let creds = json!({"user": "ann", "password": PASSWORD});
    let resp = web.request("POST", "/api/v1/login", &[], Some(&creds));
    let cookie = resp.header("set-cookie").expect("set-cookie");
    let cookie = cookie.split(';').next().expect("pair").to_string();
    resp.expect(200);
    web.request("GET", "/api/v1/me", &[("cookie", &cookie)], None)
        .expect(200);
    let forged = format!("{token}0");
    web.bearer(&forged, "GET", "/api/v1/system", None)
        .expect_error(401, "unauthenticated");
    drop(web);

    let text = std::fs::read_to_string(&log_path).expect("read log");
    let line = |method: &str, path: &str| -> String {
        let head = format!("request{{method={method} path={path}");
        let found = text
            .lines()
            .find(|l| l.contains(&head) && l.contains("status="));
        found
            .unwrap_or_else(|| panic!("no line for {method} {path}:\n{text}"))
            .to_string()
    };
    assert!(line("GET", "/api/v1/vms").contains("user=ann"), "{text}");
    assert!(line("POST", "/api/v1/login").contains("user=ann"), "{text}");
    assert!(line("GET", "/api/v1/me").contains("user=ann"), "{text}");
    let refused = line("GET", "/api/v1/system");
    assert!(
        refused.contains("status=401") && !refused.contains("user="),
        "{refused}"
    );
    let session = cookie.strip_prefix("vmd_session=").expect("session");
    for secret in [token.as_str(), session, PASSWORD] {
        assert!(!text.contains(secret), "a secret in vmd-web's log:\n{text}");
    }
}

#[test]
fn another_users_private_image_is_not_found() {
    let vmd = Vmd::start();
    vmd.import_disk("base");
    let ann = vmd.user_token("ann", None);
    let bob = vmd.user_token("bob", None);
    let web = Web::start(&vmd);
    let vm = json!({"name": "annvm", "image": "base"});
    web.bearer(&ann, "POST", "/api/v1/vms", Some(&vm))
        .expect(201);
    let publish = json!({"name": "annimg"});
    let image = web
        .bearer(&ann, "POST", "/api/v1/vms/annvm/publish", Some(&publish))
        .expect(201);
    assert_eq!(
        (image["owner"].as_str(), image["public"].as_bool()),
        (Some("ann"), Some(false)),
        "a user's published image is private: {image}"
    );

    for (method, path) in [
        ("GET", "/api/v1/images/annimg"),
        ("DELETE", "/api/v1/images/annimg"),
    ] {
        web.bearer(&bob, method, path, None)
            .expect_error(404, "not_found");
    }
    // Creating and sealing bases is for admins: vmd says so before looking the name up.
    let create = json!({"name": "bobimg", "size_bytes": 64u64 << 20, "iso": "none"});
    web.bearer(&bob, "POST", "/api/v1/images", Some(&create))
        .expect_error(403, "permission_denied");
    web.bearer(&bob, "POST", "/api/v1/images/annimg/seal", None)
        .expect_error(403, "permission_denied");
    assert_eq!(
        web.bearer(&ann, "GET", "/api/v1/images/annimg", None)
            .expect(200)["owner"],
        "ann"
    );
    let public = json!({"name": "annpub", "public": true});
    web.bearer(&ann, "POST", "/api/v1/vms/annvm/publish", Some(&public))
        .expect_error(403, "permission_denied");
}
