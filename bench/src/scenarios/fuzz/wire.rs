//! Sending one fuzz input and classifying what came back, within a deadline.
//!
//! The parts are written a moment apart; if nothing but a `100 Continue` arrives within
//! [`QUIET`] the writing side is shut down (vmd may be waiting for a body that will never
//! come). Reading stops at a complete response (by Content-Length, the end of a chunked body,
//! or a `101`), at end of stream, or at the deadline.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::inputs::Input;
use crate::rpc::parse_response;

/// Silence after which the writing side is shut down.
const QUIET: Duration = Duration::from_millis(150);

/// What one input got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response: status and the JSON-RPC result/error codes of its body.
    Answered(u16, Vec<String>),
    /// The connection ended without a byte.
    Closed,
    /// Bytes that are not an HTTP response.
    Garbage,
    /// No complete answer by the deadline.
    Timeout,
    /// The socket refused the connection (vmd gone or overloaded).
    Refused,
}

/// Sends `input` to the socket and classifies the answer; an import input's upload is
/// followed by its `image.import`/`iso.import` call, whose answer counts.
pub fn exchange(socket: &Path, input: &Input, deadline: Duration) -> Outcome {
    let Some((raw, timed_out)) = send(socket, input, deadline) else {
        return Outcome::Refused;
    };
    let Some((method, name)) = &input.import else {
        return classify(&raw, timed_out);
    };
    let (status, body) = parse_response(&raw);
    let id = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["upload_id"].as_str().map(str::to_string));
    let (201, Some(id)) = (status, id) else {
        return classify(&raw, timed_out);
    };
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method,
        "params": [{"name": name, "upload_id": id}]});
    let post = super::inputs::post("/", call.to_string().as_bytes());
    let second = Input {
        parts: vec![post],
        import: None,
        ..input.clone()
    };
    match send(socket, &second, deadline) {
        Some((raw, timed_out)) => classify(&raw, timed_out),
        None => Outcome::Refused,
    }
}

/// Writes the parts and reads the answer; `None` if the connection was refused.
fn send(socket: &Path, input: &Input, deadline: Duration) -> Option<(Vec<u8>, bool)> {
    let end = Instant::now() + deadline;
    let mut s = UnixStream::connect(socket).ok()?;
    let _ = s.set_write_timeout(Some(deadline));
    let mut half_closed = false;
    for (i, part) in input.parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if s.write_all(part).is_err() {
            break;
        }
    }
    if input.half_close {
        let _ = s.shutdown(Shutdown::Write);
        half_closed = true;
    }
    Some(read_answer(&mut s, end, half_closed))
}

/// Reads until a complete response, EOF or `end`; returns the bytes and whether it timed out.
fn read_answer(s: &mut UnixStream, end: Instant, mut half_closed: bool) -> (Vec<u8>, bool) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    loop {
        if complete(&buf) {
            return (buf, false);
        }
        if Instant::now() >= end {
            return (buf, true);
        }
        match s.read(&mut chunk) {
            Ok(0) => return (buf, false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let interim_only = buf.is_empty() || buf.starts_with(b"HTTP/1.1 100");
                if !half_closed && interim_only && started.elapsed() >= QUIET {
                    let _ = s.shutdown(Shutdown::Write);
                    half_closed = true;
                }
            }
            Err(_) => return (buf, false),
        }
    }
}

/// Whether `buf` holds a whole response (1xx interim answers other than 101 skipped).
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return complete(&buf[end + 4..]);
    }
    if status == 101 || status == 204 || status == 304 {
        return true;
    }
    let body = &buf[end + 4..];
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

/// The outcome of the bytes read.
fn classify(raw: &[u8], timed_out: bool) -> Outcome {
    if raw.is_empty() {
        return if timed_out {
            Outcome::Timeout
        } else {
            Outcome::Closed
        };
    }
    let mut rest = raw;
    // Skip interim `100 Continue` answers.
    while rest.starts_with(b"HTTP/1.1 100") {
        match rest.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => rest = &rest[at + 4..],
            None => break,
        }
    }
    let (status, body) = parse_response(rest);
    if status == 0 {
        return if timed_out {
            Outcome::Timeout
        } else {
            Outcome::Garbage
        };
    }
    Outcome::Answered(status, rpc_codes(&body))
}

/// `ok` or the error code of each JSON-RPC answer in `body` (also for upload errors).
pub fn rpc_codes(body: &str) -> Vec<String> {
    let one = |v: &Value| match (v.get("result"), v.get("error")) {
        (_, Some(e)) => e["code"].as_i64().map_or("error".into(), |c| c.to_string()),
        (Some(_), None) => "ok".to_string(),
        _ => "other".to_string(),
    };
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(items)) => items.iter().map(one).collect(),
        Ok(v) if v.get("upload_id").is_some() => vec!["upload".into()],
        Ok(v) => vec![one(&v)],
        Err(_) if body.is_empty() => Vec::new(),
        Err(_) => vec!["not_json".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness() {
        assert!(!complete(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"));
        assert!(complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab"));
        assert!(complete(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"));
        assert!(!complete(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn codes() {
        assert_eq!(rpc_codes(r#"{"jsonrpc":"2.0","id":1,"result":3}"#), ["ok"]);
        assert_eq!(
            rpc_codes(r#"[{"error":{"code":-32600}},{"result":null}]"#),
            ["-32600", "ok"]
        );
        assert_eq!(rpc_codes("<html>"), ["not_json"]);
        assert_eq!(
            classify(b"HTTP/1.1 413 x\r\ncontent-length: 0\r\n\r\n", false),
            Outcome::Answered(413, vec![])
        );
        assert_eq!(classify(b"", true), Outcome::Timeout);
    }
}
