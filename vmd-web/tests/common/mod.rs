//! Test harness: a real vmd ([`daemon::Vmd`]), a real `vmd-web` in front of it on a free
//! loopback port ([`Web`]), and a small raw HTTP/1.1 client. Processes are killed by pid on
//! drop; every wait has a deadline.
#![allow(dead_code)]

pub mod daemon;
pub use testkit::guest;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub use daemon::Vmd;
pub use testkit::http::parse_response;
use testkit::http::{split_response, stream_until_answered};

/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running vmd-web.
pub struct Web {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
}

impl Web {
    /// Starts vmd-web on `socket`, on a free loopback port.
    pub fn start(vmd: &Vmd) -> Web {
        Web::start_logging(vmd, Stdio::inherit())
    }

    /// [`Web::start`] with vmd-web's log (stderr) going to `log`.
    pub fn start_logging(vmd: &Vmd, log: Stdio) -> Web {
        Web::start_flags(vmd, &[], log)
    }

    /// [`Web::start`] with `extra` flags.
    pub fn start_with(vmd: &Vmd, extra: &[&str]) -> Web {
        Web::start_flags(vmd, extra, Stdio::inherit())
    }

    /// [`Web::start`] with `extra` flags and the log going to `log`.
    pub fn start_flags(vmd: &Vmd, extra: &[&str], log: Stdio) -> Web {
        let socket = vmd.socket.to_str().expect("utf-8");
        let base = ["--socket", socket, "--listen", "127.0.0.1:0"];
        let (child, line) = spawn_web_logging(&[&base[..], extra].concat(), log);
        let addr = line
            .trim()
            .strip_prefix("vmd-web listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Web { addr, child }
    }

    /// One request; `headers` are `(name, value)` pairs.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to vmd-web");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("content-type: application/json\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body.as_bytes()).expect("write body");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Resp::parse(&raw)
    }

    /// vmd-web's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `POST path` as `token` with `file`'s bytes as the raw body, streamed from disk.
    pub fn upload(&self, token: &str, path: &str, file: &std::path::Path) -> Resp {
        let mut source = std::fs::File::open(file).expect("open upload");
        let size = source.metadata().expect("stat").len();
        let mut stream = TcpStream::connect(&self.addr).expect("connect to vmd-web");
        // The reply comes after vmd has stored, hashed and imported the file: slow on a busy host.
        stream
            .set_read_timeout(Some(5 * DEADLINE))
            .expect("timeout");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-type: application/octet-stream\r\ncontent-length: {size}\r\n\r\n",
            self.addr
        );
        stream.write_all(head.as_bytes()).expect("write head");
        std::io::copy(&mut source, &mut stream).expect("write body");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Resp::parse(&raw)
    }

    /// Streams a `len`-byte body starting with `head` (zeros after it) to `path`, 64 KiB per
    /// write on one thread while another reads the reply; returns the reply and how many body
    /// bytes could be written before the server stopped reading.
    pub fn upload_until_refused(
        &self,
        token: &str,
        path: &str,
        head: &[u8],
        len: u64,
    ) -> (Resp, u64) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to vmd-web");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        stream.set_write_timeout(Some(DEADLINE)).expect("timeout");
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).expect("write head");
        let reader = stream.try_clone().expect("clone");
        let (raw, sent) = stream_until_answered(stream, reader, head, len);
        (Resp::parse(&raw), sent)
    }

    /// Whether vmd-web is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls until vmd-web exits; its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for vmd-web") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "vmd-web did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A request with `Authorization: Bearer token`.
    pub fn bearer(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let auth = format!("Bearer {token}");
        self.request(method, path, &[("authorization", &auth)], body)
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns vmd-web with `args`; returns it and its first stdout line (empty if it exited).
pub fn spawn_web(args: &[&str]) -> (Child, String) {
    // Its log (to stderr) shows with the test's output; a pipe nobody reads could fill.
    spawn_web_logging(args, Stdio::inherit())
}

/// [`spawn_web`] with its log (stderr) going to `log`.
pub fn spawn_web_logging(args: &[&str], log: Stdio) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmd-web"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn vmd-web");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    // Ends at the first line, or at EOF when vmd-web exits: no timing involved.
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    (child, line)
}

/// Polls `log` until it has a line containing `needle`.
pub fn wait_log(log: &std::path::Path, needle: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A response: status, raw head and JSON body (`Null` when empty).
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// The body as JSON.
    pub json: Value,
}

impl Resp {
    fn parse(raw: &[u8]) -> Resp {
        let (status, head, body) = split_response(raw);
        let json = match body.trim() {
            "" => Value::Null,
            text => serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
        };
        Resp { status, head, json }
    }

    /// Asserts the status and returns the body.
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.json);
        self.json
    }

    /// Asserts an error response of `status` and `kind` in the documented shape.
    pub fn expect_error(self, status: u16, kind: &str) -> Value {
        let json = self.expect(status);
        assert_eq!(json["code"], status, "{json}");
        assert_eq!(json["kind"], kind, "{json}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert!(
            json.as_object().is_some_and(|o| o.contains_key("hint")),
            "{json}"
        );
        json
    }

    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}
