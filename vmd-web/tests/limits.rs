//! vmd-web's caps on what one caller may hold open (`--max-streams-per-credential`,
//! `--max-logins`), over a real vmd, and the `Cache-Control: no-store` of login and logout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Instant;

use common::{Resp, Vmd, Web, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// `GET /api/v1/events` as `token`; the open stream on a 200, else the status.
fn open_events(web: &Web, token: &str) -> Result<TcpStream, u16> {
    let mut stream = TcpStream::connect(&web.addr).expect("connect to vmd-web");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let head = format!(
        "GET /api/v1/events HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\r\n",
        web.addr
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut status = String::new();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    reader.read_line(&mut status).expect("status line");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    match code.expect("an HTTP status") {
        200 => Ok(stream),
        other => Err(other),
    }
}

#[test]
fn streams_are_capped_per_credential_and_a_closed_one_frees_its_slot() {
    let vmd = Vmd::start();
    let web = Web::start_with(&vmd, &["--max-streams-per-credential", "2"]);
    let (ann, bob) = (vmd.user_token("ann", None), vmd.user_token("bob", None));
    let first = open_events(&web, &ann).expect("ann's first stream");
    let _second = open_events(&web, &ann).expect("ann's second stream");
    let refused = web.bearer(&ann, "GET", "/api/v1/events", None);
    let body = refused.expect_error(429, "quota_exceeded");
    assert!(
        body["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{body}"
    );
    let _bob = open_events(&web, &bob).expect("another user still gets a stream");
    web.bearer(&ann, "GET", "/api/v1/me", None).expect(200);
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        match open_events(&web, &ann) {
            Ok(_) => break,
            Err(429) => assert!(Instant::now() < deadline, "the slot was never freed"),
            Err(other) => panic!("unexpected status {other}"),
        }
        std::thread::yield_now();
    }
}

/// `POST /api/v1/login` as ann; the reply goes to `done`.
fn login(web: &Web, done: mpsc::Sender<Resp>) {
    let body = json!({ "user": "ann", "password": "correct horse" });
    let _ = done.send(web.request("POST", "/api/v1/login", &[], Some(&body)));
}

#[test]
fn logins_past_the_cap_are_refused_at_once_without_vmd() {
    let vmd = Vmd::start();
    vmd.user_token("ann", Some("correct horse"));
    let web = Web::start_with(&vmd, &["--max-logins", "1"]);
    // vmd stopped: a login that reaches it waits, holding the one slot, until SIGCONT.
    let pid = Pid::from_raw(vmd.pid() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP vmd");
    let (done, replies) = mpsc::channel();
    let (first, second) = std::thread::scope(|s| {
        s.spawn(|| login(&web, done.clone()));
        s.spawn(|| login(&web, done.clone()));
        let first = replies.recv_timeout(DEADLINE);
        kill(pid, Signal::SIGCONT).expect("SIGCONT vmd");
        (first, replies.recv_timeout(DEADLINE))
    });
    let first = first.expect("one login is answered while vmd is stopped");
    assert_eq!(first.header("cache-control").as_deref(), Some("no-store"));
    let body = first.expect_error(503, "unavailable");
    assert!(
        body["hint"].as_str().is_some_and(|h| h.contains("retry")),
        "{body}"
    );
    second.expect("the held login ends").expect(200);
}

#[test]
fn login_and_logout_replies_are_not_cached() {
    let vmd = Vmd::start();
    vmd.user_token("ann", Some("correct horse"));
    let web = Web::start(&vmd);
    let wrong = json!({"user": "ann", "password": "wrong"});
    let refused = web.request("POST", "/api/v1/login", &[], Some(&wrong));
    assert_eq!(refused.header("cache-control").as_deref(), Some("no-store"));
    refused.expect_error(401, "unauthenticated");
    let right = json!({"user": "ann", "password": "correct horse"});
    let login = web.request("POST", "/api/v1/login", &[], Some(&right));
    assert_eq!(login.header("cache-control").as_deref(), Some("no-store"));
    let cookie = login.header("set-cookie").expect("cookie");
    let session = cookie.split(';').next().expect("pair").to_string();
    let csrf = login.expect(200)["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let headers = [
        ("cookie", session.as_str()),
        ("x-csrf-token", csrf.as_str()),
    ];
    let logout = web.request("POST", "/api/v1/logout", &headers, None);
    assert_eq!(logout.header("cache-control").as_deref(), Some("no-store"));
    logout.expect(204);
}
