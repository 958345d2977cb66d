//! A minimal client of vmd's socket: one HTTP/1.1 request per connection (what vmctl and the
//! tests do), JSON-RPC 2.0 calls by POST, and image uploads by `PUT /v1/uploads`.
//!
//! Deliberately raw: the bench measures the daemon, so the client must cost next to nothing
//! and depend on nothing that changes with the API types (results are `serde_json::Value`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
pub(crate) use testkit::http::parse_response;

/// How long one request may take (a graceful stop waits for the guest).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of one daemon socket. Cheap to clone; every call opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the daemon listening on `socket`.
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same client with another deadline per request (a hang becomes an error).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Calls `method` with positional `params`; returns `result`, or the JSON-RPC error as
    /// an error.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        match self.try_call(method, params)? {
            Ok(result) => Ok(result),
            Err(err) => bail!("{method} failed: {err}"),
        }
    }

    /// Calls `method`; the outer error is a transport failure (no answer), the inner one
    /// the JSON-RPC error object the daemon answered with.
    pub fn try_call(&self, method: &str, params: Value) -> anyhow::Result<Result<Value, Value>> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, text) =
            self.http("POST", "/", "application/json", body.to_string().as_bytes())?;
        let mut resp: Value = serde_json::from_str(&text)
            .with_context(|| format!("{method}: HTTP {status}, not JSON: {text:.200}"))?;
        match resp.get_mut("error") {
            Some(err) => Ok(Err(err.take())),
            None => Ok(Ok(resp["result"].take())),
        }
    }

    /// Uploads `bytes` and imports them as base image `name`.
    pub fn import(&self, bytes: &[u8], name: &str) -> anyhow::Result<Value> {
        let (status, text) = self.http("PUT", "/v1/uploads", "application/octet-stream", bytes)?;
        if status != 201 {
            bail!("upload of {name} failed: HTTP {status}: {text:.300}");
        }
        let upload: Value = serde_json::from_str(&text).context("upload answer is not JSON")?;
        let params = json!([{"name": name, "upload_id": upload["upload_id"]}]);
        self.call("image.import", params)
    }

    /// One request; returns the status code and the (de-chunked) body.
    fn http(
        &self,
        method: &str,
        path: &str,
        ctype: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, String)> {
        let mut stream = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting to {}", self.socket.display()))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: vmd\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .context("reading the response")?;
        Ok(parse_response(&raw))
    }
}
