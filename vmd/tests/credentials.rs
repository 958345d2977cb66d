//! Tokens and login sessions as a script would use them: plain `curl` on the socket with an
//! `Authorization: Bearer` header. Revoked, expired, forged and garbage tokens get HTTP 401
//! (never the peer's identity); failed logins are throttled and never logged with the
//! password; a password change ends the sessions of that account.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Daemon;
use serde_json::{json, Value};

/// One JSON-RPC call through `curl`, with `token` as bearer if any: HTTP status and body.
fn curl(d: &Daemon, token: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut cmd = Command::new("curl");
    cmd.arg("--unix-socket")
        .arg(&d.socket)
        .args(["-s", "-m", "30", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .args(["-d", &body.to_string(), "http://vmd/"])
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json_text, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let value = serde_json::from_str(json_text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status.trim().parse().expect("http status"), value)
}

/// Asserts the answer is HTTP 401 with error kind `unauthenticated` and no result.
fn assert_refused((status, body): (u16, Value)) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["data"]["kind"], "unauthenticated", "{body}");
    assert!(body.get("result").is_none(), "{body}");
}

fn kind(resp: &Value) -> &str {
    resp["error"]["data"]["kind"].as_str().unwrap_or("")
}

fn login(d: &Daemon, user: &str, password: &str) -> Value {
    d.call("auth.login", json!([{"user": user, "password": password}]))
}

#[test]
fn api_tokens_work_until_revoked_and_are_never_listed() {
    let d = Daemon::start();
    d.ok("user.add", json!([{"name": "ann"}]));
    let made = d.ok("token.create", json!([{"user": "ann", "name": "ci"}]));
    let token = made["token"].as_str().expect("secret").to_string();
    let (status, who) = curl(&d, Some(&token), "auth.whoami", json!([]));
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["result"]["user"], "ann", "{who}");
    assert_eq!(who["result"]["via"], "token", "{who}");
    let listed = d.ok("token.list", json!([])).to_string();
    let hex = token.rsplit('_').next().expect("hex part");
    assert!(listed.contains("\"ci\""), "{listed}");
    assert!(
        !listed.contains(hex),
        "token.list shows the secret: {listed}"
    );
    d.ok("token.revoke", json!([made["info"]["id"]]));
    assert_refused(curl(&d, Some(&token), "auth.whoami", json!([])));
}

#[test]
fn expiring_tokens_are_refused_once_expired() {
    let d = Daemon::start();
    d.ok("user.add", json!([{"name": "ann"}]));
    let made = d.ok("token.create", json!([{"user": "ann", "ttl_secs": 1}]));
    let token = made["token"].as_str().expect("secret");
    let end = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let (status, body) = curl(&d, Some(token), "auth.whoami", json!([]));
        if status != 200 || Instant::now() >= end {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_refused(refused);
}

#[test]
fn bad_tokens_get_401_never_the_peer() {
    let d = Daemon::start();
    let made = d.ok("token.create", json!([{}]));
    let token = made["token"].as_str().expect("secret");
    let (status, who) = curl(&d, Some(token), "auth.whoami", json!([]));
    assert_eq!(
        (status, &who["result"]["user"]),
        (200, &json!("root")),
        "{who}"
    );
    let last = token.chars().last().expect("non-empty");
    let forged = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let unknown_id = format!("vmd_999999_{}", token.rsplit('_').next().expect("hex"));
    for bad in ["garbage", "vmd_1_zz", forged.as_str(), unknown_id.as_str()] {
        assert_refused(curl(&d, Some(bad), "auth.whoami", json!([])));
        assert_refused(curl(&d, Some(bad), "vm.list", json!([])));
    }
    let (status, who) = curl(&d, None, "auth.whoami", json!([]));
    assert_eq!(
        (status, &who["result"]["via"]),
        (200, &json!("peer")),
        "{who}"
    );
}

#[test]
fn failed_logins_are_throttled_and_never_logged() {
    let d = Daemon::start();
    let (right, other) = ("bob-right-pass-1", "carol-right-pass-2");
    d.ok("user.add", json!([{"name": "bob", "password": right}]));
    d.ok("user.add", json!([{"name": "carol", "password": other}]));
    let wrong: Vec<String> = (0..5).map(|i| format!("bob-wrong-guess-{i}")).collect();
    for w in &wrong {
        let resp = login(&d, "bob", w);
        assert_eq!(kind(&resp), "unauthenticated", "{resp}");
    }
    let resp = login(&d, "bob", right);
    assert_eq!(kind(&resp), "unauthenticated", "{resp}");
    let message = resp["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("too many"), "{resp}");
    let carol = login(&d, "carol", other);
    assert!(carol["result"]["token"].is_string(), "{carol}");
    let log = d.log();
    for secret in wrong.iter().map(String::as_str).chain([right, other]) {
        assert!(!log.contains(secret), "log shows a password: {secret}");
    }
    assert!(log.contains("bob"), "failed logins are logged by name");
}

#[test]
fn a_password_change_ends_the_sessions() {
    let d = Daemon::start();
    d.ok(
        "user.add",
        json!([{"name": "dave", "password": "dave-old-pass"}]),
    );
    let session = login(&d, "dave", "dave-old-pass")["result"]["token"]
        .as_str()
        .expect("session")
        .to_string();
    let (status, who) = curl(&d, Some(&session), "auth.whoami", json!([]));
    assert_eq!(
        (status, &who["result"]["via"]),
        (200, &json!("session")),
        "{who}"
    );
    d.ok(
        "user.passwd",
        json!([{"name": "dave", "password": "dave-new-pass"}]),
    );
    assert_refused(curl(&d, Some(&session), "auth.whoami", json!([])));
    assert_eq!(kind(&login(&d, "dave", "dave-old-pass")), "unauthenticated");
    assert!(login(&d, "dave", "dave-new-pass")["result"]["token"].is_string());
}

/// Seconds since the epoch of an RFC 3339 time, through date(1).
fn epoch_secs(rfc3339: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: date -d {rfc3339:?}: {out:?}"))
}

#[test]
fn sessions_last_session_ttl_secs() {
    let config = "session_ttl_secs = 60\n";
    let d = Daemon::start_configured(tempfile::tempdir().expect("tmp"), config);
    d.ok(
        "user.add",
        json!([{"name": "erin", "password": "erin-pass-123"}]),
    );
    let made = login(&d, "erin", "erin-pass-123")["result"].clone();
    let expires = made["info"]["expires_at"].as_str().expect("session end");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let left = epoch_secs(expires) - now;
    assert!(
        left > 0 && left <= 2 * 3600,
        "session ends in {left} s: {made}"
    );
    assert_eq!(made["info"]["kind"], "session", "{made}");
}

/// What a stolen session can do is bounded: it cannot change the password without knowing it,
/// and a token it makes lives no longer than the session.
#[test]
fn a_session_cannot_lock_out_its_owner_or_outlive_itself() {
    let d = Daemon::start();
    d.ok(
        "user.add",
        json!([{"name": "ann", "password": "first password"}]),
    );
    let session = login(&d, "ann", "first password")["result"].clone();
    let token = session["token"].as_str().expect("session token");
    let change = |current: Option<&str>| {
        let req =
            json!([{"name": "ann", "password": "second password", "current_password": current}]);
        curl(&d, Some(token), "user.passwd", req)
    };
    let (_, refused) = change(None);
    assert_eq!(kind(&refused), "unauthenticated", "{refused}");
    let (_, refused) = change(Some("a wrong guess"));
    assert_eq!(kind(&refused), "unauthenticated", "{refused}");
    let (status, minted) = curl(
        &d,
        Some(token),
        "token.create",
        json!([{"name": "forever"}]),
    );
    assert_eq!(status, 200, "{minted}");
    let (session_end, minted_end) = (
        &session["info"]["expires_at"],
        &minted["result"]["info"]["expires_at"],
    );
    let (session_end, minted_end) = (
        epoch_secs(session_end.as_str().expect("end")),
        epoch_secs(
            minted_end
                .as_str()
                .expect("a token made with a session expires"),
        ),
    );
    assert!(minted_end <= session_end, "{minted_end} > {session_end}");
    let minted_token = minted["result"]["token"]
        .as_str()
        .expect("minted")
        .to_string();
    assert_eq!(
        curl(&d, Some(&minted_token), "auth.whoami", json!([])).0,
        200
    );
    let (_, changed) = change(Some("first password"));
    assert!(changed.get("error").is_none(), "{changed}");
    // The password change ended the session, and with it the token made with it.
    assert_refused(curl(&d, Some(&minted_token), "auth.whoami", json!([])));
    let again = login(&d, "ann", "second password");
    assert!(again["result"]["token"].is_string(), "{again}");
}
