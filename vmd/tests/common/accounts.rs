//! Real local accounts and bearer credentials for tests of identity and authorization.
//!
//! [`LocalUser::create`] runs `useradd` (tests run as root) with a name unique to the test
//! process, and `userdel -r` on drop. [`Daemon::call_with`] sends a JSON-RPC call with an
//! `Authorization: Bearer` header; [`Daemon::vmctl_as`] runs vmctl as a local user through
//! `runuser`. Daemons that local users must reach are started with [`OPEN_SOCKET`] in their
//! config (the socket is root-owned; vmd authorizes every call itself).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

use super::{parse_response, vmctl_bin, Daemon, DEADLINE};

/// Config lines that let every local user reach the socket.
pub const OPEN_SOCKET: &str = "socket_mode = \"0666\"\n";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A local account that exists for the life of the value.
pub struct LocalUser {
    /// Login name (also the auto-registered vmd account name).
    pub name: String,
    /// Its uid.
    pub uid: u32,
}

impl LocalUser {
    /// Creates `<prefix><pid><n>` with `useradd`, in the given supplementary groups (created
    /// with `groupadd -f` when missing).
    pub fn create(prefix: &str, groups: &[&str]) -> LocalUser {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{}x{n}", std::process::id());
        for g in groups {
            run("groupadd", &["-f", g]);
        }
        let mut args = vec!["-M", "-s", "/bin/sh"];
        let joined = groups.join(",");
        if !groups.is_empty() {
            args.extend(["-G", joined.as_str()]);
        }
        args.push(&name);
        run("useradd", &args);
        let out = Command::new("id").args(["-u", &name]).output().expect("id");
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("uid");
        LocalUser { name, uid }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Daemon {
    /// A JSON-RPC call with `Authorization: Bearer token`; returns HTTP status and body.
    pub fn call_with(&self, token: &str, method: &str, params: Value) -> (u16, Value) {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let mut stream = UnixStream::connect(&self.socket).expect("connect to vmd");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let head = format!(
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body.as_bytes()).expect("write body");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let (status, text) = parse_response(&raw);
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"));
        (status, value)
    }

    /// Runs the built vmctl as local user `user` (through `runuser`), stdin from `input`.
    pub fn vmctl_as(&self, user: &LocalUser, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new("runuser")
            .args(["-u", &user.name, "--"])
            .arg(vmctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("VMD_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runuser vmctl");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.unwrap_or("").as_bytes());
        }
        child.wait_with_output().expect("vmctl output")
    }
}
