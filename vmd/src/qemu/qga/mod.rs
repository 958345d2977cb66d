//! A small qemu-guest-agent client over the VM's virtio-serial channel (`<run_dir>/agent`).
//!
//! # Protocol
//! Same JSON framing as QMP, but the agent sends no greeting and the channel may still hold
//! bytes from an earlier client (a reply to a command whose caller went away, half a line).
//! So every session starts with `guest-sync-delimited`: vmd sends a `0xFF` byte (the agent
//! resets its parser on it) and the command with a random id; the agent answers with a `0xFF`
//! byte followed by `{"return": id}`. Everything before a `0xFF` is discarded, and replies
//! whose id does not match are skipped (`0xFF` never occurs in UTF-8 JSON). After that,
//! commands carry an `id` that the agent echoes; lines with another id are skipped.
//!
//! # The guest is hostile
//! Whatever the guest sends is bounded before vmd keeps it: a line longer than
//! [`MAX_REPLY`] ends the session, at most [`MAX_STALE`] bytes are discarded while syncing,
//! every step has a time limit ([`STEP_TIMEOUT`]), interface and address counts are capped and
//! strings are stripped of control characters and cut to a fixed length ([`report`]). A guest
//! that floods or stays silent costs one poll and a dropped connection, nothing more.

pub mod report;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

pub use report::{GuestIp, GuestReport};

/// Longest reply line kept; a longer one ends the session.
pub const MAX_REPLY: usize = 256 << 10;
/// Most stale bytes discarded while looking for the sync reply.
pub const MAX_STALE: usize = 1 << 20;
/// Time limit of connecting, of the sync and of each command.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The sync marker: the agent resets its parser on it and sends it before the sync reply.
const SENTINEL: u8 = 0xFF;

/// Failures talking to the guest agent. Each ends the session.
#[derive(Debug, thiserror::Error)]
pub enum QgaError {
    /// The channel socket could not be connected (QEMU gone, or not yet listening).
    #[error("cannot connect to the guest agent channel")]
    Connect(#[source] std::io::Error),
    /// Reading or writing the channel failed.
    #[error("guest agent channel failed")]
    Io(#[source] std::io::Error),
    /// The channel was closed.
    #[error("guest agent channel closed")]
    Closed,
    /// The agent did not answer in time (not running yet, or stuck).
    #[error("guest agent did not answer {step} in time")]
    Timeout {
        /// The sync or the command.
        step: &'static str,
    },
    /// The guest sent a line longer than [`MAX_REPLY`] or too much stale data.
    #[error("guest agent sent an oversized reply")]
    Oversized,
    /// The agent answered with an error.
    #[error("guest agent refused {command}: {desc}")]
    Command {
        /// The command.
        command: &'static str,
        /// The agent's (sanitised) message.
        desc: String,
    },
}

/// One synced session with a guest agent.
pub struct Qga {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Qga {
    /// Connects to the channel at `path` and syncs, each within [`STEP_TIMEOUT`].
    pub async fn connect(path: &Path) -> Result<Qga, QgaError> {
        let stream = tokio::time::timeout(STEP_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| QgaError::Timeout { step: "connect" })?
            .map_err(QgaError::Connect)?;
        let mut qga = Qga::from_stream(stream);
        qga.sync().await?;
        Ok(qga)
    }

    /// A session over a connected stream, not yet synced.
    pub fn from_stream(stream: UnixStream) -> Qga {
        let (read, writer) = stream.into_split();
        Qga {
            reader: BufReader::with_capacity(16 << 10, read),
            writer,
            next_id: 1,
        }
    }

    /// `guest-sync-delimited` with a random id: afterwards, the next reply is ours.
    pub async fn sync(&mut self) -> Result<(), QgaError> {
        let id = random_id();
        let mut request = vec![SENTINEL];
        let command = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
        request.extend_from_slice(command.to_string().as_bytes());
        request.push(b'\n');
        let step = async {
            self.writer
                .write_all(&request)
                .await
                .map_err(QgaError::Io)?;
            await_sync(&mut self.reader, id).await
        };
        tokio::time::timeout(STEP_TIMEOUT, step)
            .await
            .map_err(|_| QgaError::Timeout { step: "sync" })?
    }

    /// Runs `command` (no arguments) and returns its `return` value, within [`STEP_TIMEOUT`].
    pub async fn execute(&mut self, command: &'static str) -> Result<Value, QgaError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({"execute": command, "id": id}).to_string();
        line.push('\n');
        let step = async {
            self.writer
                .write_all(line.as_bytes())
                .await
                .map_err(QgaError::Io)?;
            await_reply(&mut self.reader, command, id).await
        };
        tokio::time::timeout(STEP_TIMEOUT, step)
            .await
            .map_err(|_| QgaError::Timeout { step: command })?
    }

    /// OS, kernel, hostname and addresses. A command the agent refuses (an old or restricted
    /// agent) leaves its part empty; a broken session is an error.
    pub async fn report(&mut self) -> Result<GuestReport, QgaError> {
        let mut report = GuestReport::default();
        if let Some(v) = self.optional("guest-get-osinfo").await? {
            report.set_osinfo(&v);
        }
        if let Some(v) = self.optional("guest-get-host-name").await? {
            report.set_hostname(&v);
        }
        if let Some(v) = self.optional("guest-network-get-interfaces").await? {
            report.set_interfaces(&v);
        }
        Ok(report)
    }

    async fn optional(&mut self, command: &'static str) -> Result<Option<Value>, QgaError> {
        match self.execute(command).await {
            Ok(value) => Ok(Some(value)),
            Err(QgaError::Command { desc, .. }) => {
                tracing::debug!(command, desc, "guest agent refused a command");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

fn random_id() -> u64 {
    let mut bytes = [0u8; 4];
    // A fixed id only weakens the stale-reply check; it never breaks the session.
    let _ = getrandom::fill(&mut bytes);
    u64::from(u32::from_le_bytes(bytes))
}

/// Discards input up to each `0xFF` and reads the line after it, until that line is the
/// sync reply with `id`; at most [`MAX_STALE`] bytes are discarded in all.
async fn await_sync<R>(reader: &mut R, id: u64) -> Result<(), QgaError>
where
    R: AsyncBufRead + Unpin,
{
    let mut budget = MAX_STALE;
    let mut line = Vec::new();
    loop {
        skip_past_sentinel(reader, &mut budget).await?;
        read_line(reader, &mut line).await?;
        budget = budget.saturating_sub(line.len());
        let reply: Option<Value> = serde_json::from_slice(&line).ok();
        if reply.as_ref().and_then(|r| r.get("return")) == Some(&json!(id)) {
            return Ok(());
        }
    }
}

/// Consumes bytes up to and including the next `0xFF`, charging them to `budget`.
async fn skip_past_sentinel<R>(reader: &mut R, budget: &mut usize) -> Result<(), QgaError>
where
    R: AsyncBufRead + Unpin,
{
    loop {
        let chunk = reader.fill_buf().await.map_err(QgaError::Io)?;
        if chunk.is_empty() {
            return Err(QgaError::Closed);
        }
        let found = chunk.iter().position(|&b| b == SENTINEL);
        let take = found.map_or(chunk.len(), |i| i + 1);
        reader.consume(take);
        *budget = budget.checked_sub(take).ok_or(QgaError::Oversized)?;
        if found.is_some() {
            return Ok(());
        }
    }
}

/// Reads lines until the reply with `id`: its `return` value, or its error.
async fn await_reply<R>(reader: &mut R, command: &'static str, id: u64) -> Result<Value, QgaError>
where
    R: AsyncBufRead + Unpin,
{
    let mut line = Vec::new();
    loop {
        read_line(reader, &mut line).await?;
        let Ok(mut reply) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if reply.get("id") != Some(&json!(id)) {
            continue;
        }
        if let Some(value) = reply.get_mut("return") {
            return Ok(value.take());
        }
        let desc = reply
            .pointer("/error/desc")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(QgaError::Command {
            command,
            desc: report::clean(desc, report::MAX_TEXT),
        });
    }
}

/// Reads one line (without its terminator) into `buf`; longer than [`MAX_REPLY`] is an error,
/// and so is the end of the stream before a newline.
async fn read_line<R>(reader: &mut R, buf: &mut Vec<u8>) -> Result<(), QgaError>
where
    R: AsyncBufRead + Unpin,
{
    buf.clear();
    loop {
        let chunk = reader.fill_buf().await.map_err(QgaError::Io)?;
        if chunk.is_empty() {
            return Err(QgaError::Closed);
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if buf.len() + take > MAX_REPLY + 1 {
            return Err(QgaError::Oversized);
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if newline.is_some() {
            buf.pop();
            return Ok(());
        }
    }
}
