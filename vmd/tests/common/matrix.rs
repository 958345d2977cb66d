//! The access matrix of `docs/security.md` and ways to act as a real local account: vmctl
//! through `runuser`, JSON-RPC and uploads through `runuser curl`, and raw HTTP upgrades
//! (console, VNC, WebSocket) through a `runuser socat` relay, so the daemon sees the
//! account's own peer uid every time.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Instant;

use serde_json::{json, Value};

use super::accounts::LocalUser;
use super::{parse_response, path_str, Daemon, DEADLINE};

/// What one cell of the matrix says, or what a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The call was allowed (and did what it should).
    Allow,
    /// `not_found`: the caller may not know the object exists.
    NotFound,
    /// `permission_denied`.
    Denied,
    /// Anything else (another error, a leak), with what happened.
    Other(String),
}

impl Outcome {
    fn parse(cell: &str) -> Outcome {
        match cell {
            "allow" => Outcome::Allow,
            "not_found" => Outcome::NotFound,
            "permission_denied" => Outcome::Denied,
            _ => panic!("matrix cell {cell:?} is not allow, not_found or permission_denied"),
        }
    }

    /// From a JSON-RPC response object.
    pub fn of_response(resp: &Value) -> Outcome {
        match resp["error"]["code"].as_i64() {
            None if resp.get("result").is_some() => Outcome::Allow,
            Some(404) => Outcome::NotFound,
            Some(403) => Outcome::Denied,
            _ => Outcome::Other(resp.to_string()),
        }
    }

    /// From vmctl's exit status (0, 3 not_found, 7 permission_denied).
    pub fn of_vmctl(out: &Output) -> Outcome {
        match out.status.code() {
            Some(0) => Outcome::Allow,
            Some(3) => Outcome::NotFound,
            Some(7) => Outcome::Denied,
            code => Outcome::Other(format!(
                "vmctl exit {code:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// From an HTTP status.
    pub fn of_status(status: u16, body: &str) -> Outcome {
        match status {
            200..=299 => Outcome::Allow,
            404 => Outcome::NotFound,
            403 => Outcome::Denied,
            _ => Outcome::Other(format!("HTTP {status}: {body}")),
        }
    }

    /// `Allow` if `ok`, else `Other(why)`: for allowed calls whose answer must hold back.
    pub fn check(self, ok: bool, why: &str) -> Outcome {
        match (self, ok) {
            (Outcome::Allow, false) => Outcome::Other(why.into()),
            (outcome, _) => outcome,
        }
    }
}

/// One row of the matrix: the row name and the expected outcome for owner, other user, admin.
#[derive(Debug, Clone)]
pub struct Row {
    /// The first column, without backticks.
    pub name: String,
    /// Expected outcomes: owner, other user, admin.
    pub expect: [Outcome; 3],
}

/// The rows of the one table under `## Access model` in `docs/security.md`.
pub fn rows(doc: &str) -> Vec<Row> {
    let section = doc
        .split("\n## Access model")
        .nth(1)
        .expect("docs/security.md has an `## Access model` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section.lines().skip_while(|l| !l.starts_with("| method"));
    let header = lines.next().expect("the matrix table");
    assert_eq!(
        cells(header),
        ["method or endpoint", "owner", "other user", "admin"]
    );
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let c = cells(l);
            assert_eq!(c.len(), 4, "matrix row {l:?}");
            Row {
                name: c[0].replace('`', ""),
                expect: [1, 2, 3].map(|i| Outcome::parse(&c[i])),
            }
        })
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// Every method name of the API (`name = "…"` in `vm-proto/src/api.rs`).
pub fn api_methods(api: &str) -> BTreeSet<String> {
    api.split("(name = \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
        .collect()
}

/// Runs `program args` as `user` through runuser.
fn as_user(user: &LocalUser, program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", &user.name, "--", program]);
    cmd
}

impl Daemon {
    /// A JSON-RPC call as `user` (optionally with a bearer token); the response object.
    pub fn rpc_as(
        &self,
        user: &LocalUser,
        token: Option<&str>,
        method: &str,
        params: Value,
    ) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut cmd = as_user(user, "curl");
        cmd.args(["-sS", "--unix-socket", path_str(&self.socket)])
            .args([
                "-H",
                "content-type: application/json",
                "-d",
                &body.to_string(),
            ]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("authorization: Bearer {t}")]);
        }
        let out = cmd.arg("http://vmd/").output().expect("runuser curl");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} as {}: {e}: {text}", user.name))
    }

    /// `PUT /v1/uploads` of `file` as `user`: HTTP status and body.
    pub fn upload_as(&self, user: &LocalUser, file: &Path) -> (u16, String) {
        let out = as_user(user, "curl")
            .args(["-sS", "--unix-socket", path_str(&self.socket), "-X", "PUT"])
            .args([
                "-H",
                "content-type: application/octet-stream",
                "-w",
                "\n%{http_code}",
            ])
            .args(["--data-binary", &format!("@{}", path_str(file))])
            .arg("http://vmd/v1/uploads")
            .output()
            .expect("runuser curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// A connection to the daemon socket made by a process of `user` (socat), spoken through pipes.
pub struct Relay {
    child: Child,
    stdin: ChildStdin,
    bytes: Receiver<Vec<u8>>,
    /// Everything read so far.
    pub seen: Vec<u8>,
}

impl Relay {
    /// Connects to `d`'s socket as `user` and sends `request`.
    pub fn open(d: &Daemon, user: &LocalUser, request: &[u8]) -> Relay {
        let mut child = as_user(user, "socat")
            .args(["-", &format!("UNIX-CONNECT:{}", path_str(&d.socket))])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("runuser socat");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, bytes) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(request).expect("write request");
        Relay {
            child,
            stdin,
            bytes,
            seen: Vec::new(),
        }
    }

    /// Reads until `done(seen)` holds or the connection ends; whether it held.
    pub fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) -> bool {
        let end = Instant::now() + DEADLINE;
        while !done(&self.seen) {
            let left = end.saturating_duration_since(Instant::now());
            match self.bytes.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(_) => return false,
            }
        }
        true
    }

    /// Sends more bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("relay write");
    }

    /// The HTTP response head and what follows it, once the head is complete.
    pub fn response(&mut self) -> (u16, Vec<u8>) {
        let head_end = |s: &[u8]| s.windows(4).position(|w| w == b"\r\n\r\n");
        assert!(
            self.read_until(|s| head_end(s).is_some()),
            "no HTTP response"
        );
        let at = head_end(&self.seen).expect("head") + 4;
        let (status, _) = parse_response(&self.seen[..at]);
        (status, self.seen.split_off(at))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP upgrade of `path` to `protocol` as `user`: the outcome; for an allowed upgrade,
/// `banner` must be the start of what the server sends next (empty: nothing expected).
pub fn upgrade(d: &Daemon, user: &LocalUser, path: &str, protocol: &str, banner: &[u8]) -> Outcome {
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: vmd\r\nconnection: Upgrade\r\nupgrade: {protocol}\r\n\r\n"
    );
    let mut relay = Relay::open(d, user, req.as_bytes());
    let (status, rest) = relay.response();
    if status != 101 {
        return Outcome::of_status(status, &String::from_utf8_lossy(&rest));
    }
    relay.seen = rest;
    let got = relay.read_until(|s| s.len() >= banner.len());
    Outcome::Allow.check(got && relay.seen.starts_with(banner), "no banner after 101")
}

/// Subscribes over a WebSocket as `user` to `method` with `params`; the outcome of the
/// subscription request (its first answer).
pub fn ws_subscribe(d: &Daemon, user: &LocalUser, method: &str, params: Value) -> Outcome {
    let req = "GET / HTTP/1.1\r\nhost: vmd\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
               sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut relay = Relay::open(d, user, req.as_bytes());
    let (status, rest) = relay.response();
    if status != 101 {
        return Outcome::Other(format!("WebSocket upgrade answered {status}"));
    }
    relay.seen = rest;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut frame = vec![0x81u8];
    match body.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: the payload goes as is
    frame.extend_from_slice(body.as_bytes());
    relay.send(&frame);
    let payload = |s: &[u8]| -> Option<Vec<u8>> {
        let (len, at) = match *s.get(1)? & 0x7f {
            126 => (u16::from_be_bytes([*s.get(2)?, *s.get(3)?]) as usize, 4),
            n => (n as usize, 2),
        };
        s.get(at..at + len).map(<[u8]>::to_vec)
    };
    assert!(
        relay.read_until(|s| payload(s).is_some()),
        "no WebSocket answer"
    );
    let text = payload(&relay.seen).expect("frame");
    let resp: Value = serde_json::from_slice(&text).expect("JSON answer");
    Outcome::of_response(&resp)
}
