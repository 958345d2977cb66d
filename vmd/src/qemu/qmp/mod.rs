//! A small QMP client over a Unix socket.
//!
//! # Flow
//! [`Qmp::connect`] retries until QEMU has created its socket, reads the greeting and sends
//! `qmp_capabilities`. Then two background tasks own the socket: a writer that sends queued
//! requests, and a reader that routes every line: replies go to the caller waiting on the
//! same `id` (vmd numbers its requests), events go to a broadcast channel ([`Qmp::events`]),
//! and a line that does not parse is logged at debug and skipped. When QEMU closes the
//! connection, waiting calls fail with [`QmpError::Closed`] and [`Qmp::closed`] resolves.
//! When the last handle is dropped, the writer half-closes the socket and QEMU ends the
//! session (QEMU serves one QMP client at a time per socket; a second one gets no greeting
//! until the first leaves).
//!
//! A request may carry a file descriptor ([`Qmp::execute_with_fd`]): the writer sends it as
//! `SCM_RIGHTS` in the same `sendmsg` as the request, which is how QEMU ties it to `add-fd`.
//! That needs a Unix socket ([`Qmp::connect`], [`Qmp::from_unix`]).
//!
//! Replies are plain [`serde_json::Value`]s; the commands vmd uses have typed helpers whose
//! enums keep a catch-all variant, so a newer QEMU cannot break the connection.

mod commands;
#[cfg(test)]
mod fd_tests;
mod migration;
#[cfg(test)]
mod tests;
mod wire;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

pub use commands::{AddFdInfo, RunState, StatusInfo};
pub use migration::MigrationEnd;
pub use wire::QmpEvent;
use wire::{Frame, Line};
use writer::{write_loop, Outgoing, QmpWrite};

/// Time limit of [`Qmp::execute`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between connection attempts while QEMU has not created its socket yet.
const CONNECT_RETRY: Duration = Duration::from_millis(5);
/// Events buffered per subscriber before it starts missing some (`RecvError::Lagged`).
const EVENT_CAPACITY: usize = 256;

/// Failures of QMP operations.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be connected (the last error when retries ran out of time).
    #[error("cannot connect to QMP socket {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// QEMU sent no greeting in time.
    #[error("no QMP greeting in time")]
    GreetingTimeout,
    /// The first frame was not a greeting.
    #[error("QMP peer did not start with a greeting")]
    BadGreeting,
    /// Reading from or writing to the socket failed.
    #[error("QMP connection failed")]
    Io(#[source] std::io::Error),
    /// The connection is closed (QEMU exited or closed the socket).
    #[error("QMP connection closed")]
    Closed,
    /// No reply arrived in time.
    #[error("QMP command {command} timed out")]
    Timeout {
        /// The command.
        command: String,
    },
    /// QEMU answered with an error.
    #[error("{desc} ({class})")]
    Command {
        /// QMP error class, e.g. `GenericError`, `CommandNotFound`.
        class: String,
        /// QEMU's message.
        desc: String,
    },
    /// The reply did not have the expected shape.
    #[error("unexpected reply to QMP command {command}")]
    Decode {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// A connected QMP session. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

/// Owned by the handles only: dropping the last one stops the writer.
struct Inner {
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    next_id: AtomicU64,
    greeting: Value,
}

type Waiter = oneshot::Sender<Result<Value, QmpError>>;

/// State shared by the handles and the background tasks.
struct Shared {
    /// std Mutex: held only to insert or remove a waiter, never across `.await`.
    pending: Mutex<Pending>,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    waiters: HashMap<u64, Waiter>,
}

impl Qmp {
    /// Connects to the QMP socket at `path`, retrying while it is missing or refuses
    /// connections (QEMU creates it during start-up), and completes the handshake, all
    /// within `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = connect_retrying(path, deadline).await?;
        let (read, write) = stream.into_split();
        Qmp::handshake(read, write, deadline).await
    }

    /// Completes the handshake over a connected Unix socket within `timeout`; requests may
    /// then carry descriptors ([`Qmp::execute_with_fd`]).
    pub async fn from_unix(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        let (read, write) = stream.into_split();
        Qmp::handshake(read, write, Instant::now() + timeout).await
    }

    /// Completes the handshake over an already-connected stream within `timeout`. Such a
    /// session cannot pass descriptors.
    pub async fn from_stream<S>(stream: S, timeout: Duration) -> Result<Qmp, QmpError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        Qmp::handshake(read, write, Instant::now() + timeout).await
    }

    async fn handshake<R, W>(read: R, write: W, deadline: Instant) -> Result<Qmp, QmpError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: QmpWrite,
    {
        let mut reader = BufReader::new(read);
        let greeting = tokio::time::timeout_at(deadline, read_greeting(&mut reader))
            .await
            .map_err(|_| QmpError::GreetingTimeout)??;
        let qmp = Qmp::start(reader, write, greeting);
        let left = deadline.saturating_duration_since(Instant::now());
        qmp.execute_timeout("qmp_capabilities", None, left).await?;
        Ok(qmp)
    }

    fn start<R, W>(reader: R, writer: W, greeting: Value) -> Qmp
    where
        R: AsyncBufRead + Unpin + Send + 'static,
        W: QmpWrite,
    {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            events: broadcast::channel(EVENT_CAPACITY).0,
            closed: watch::channel(false).0,
        });
        let (outgoing, queue) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(reader, Arc::clone(&shared)));
        tokio::spawn(write_loop(writer, queue, Arc::clone(&shared)));
        let inner = Inner {
            shared,
            outgoing,
            next_id: AtomicU64::new(0),
            greeting,
        };
        Qmp {
            inner: Arc::new(inner),
        }
    }

    /// The greeting's body (`{"version": …, "capabilities": […]}`).
    pub fn greeting(&self) -> &Value {
        &self.inner.greeting
    }

    /// Runs `command` with [`DEFAULT_TIMEOUT`]; returns the reply's `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        self.execute_timeout(command, arguments, DEFAULT_TIMEOUT)
            .await
    }

    /// Runs `command`, waiting at most `limit` for its reply.
    pub async fn execute_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        limit: Duration,
    ) -> Result<Value, QmpError> {
        self.request(command, arguments, None, limit).await
    }

    /// Runs `command` with [`DEFAULT_TIMEOUT`], passing `fd` to QEMU with it (`SCM_RIGHTS`
    /// in the same `sendmsg`), e.g. for `add-fd`. Our copy of `fd` is closed once sent.
    /// Needs a session over a Unix socket ([`Qmp::connect`], [`Qmp::from_unix`]); otherwise
    /// fails with [`QmpError::Io`] (`Unsupported`) and sends nothing.
    pub async fn execute_with_fd(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: OwnedFd,
    ) -> Result<Value, QmpError> {
        self.request(command, arguments, Some(fd), DEFAULT_TIMEOUT)
            .await
    }

    async fn request(
        &self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<OwnedFd>,
        limit: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = &self.inner.shared;
        let reply = shared.register(id)?;
        tracing::trace!(command, id, with_fd = fd.is_some(), "QMP request");
        let line = request_line(command, arguments, id);
        if self.inner.outgoing.send(Outgoing { id, line, fd }).is_err() {
            shared.forget(id);
            return Err(QmpError::Closed);
        }
        match tokio::time::timeout(limit, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QmpError::Closed),
            Err(_) => {
                shared.forget(id);
                Err(QmpError::Timeout {
                    command: command.to_string(),
                })
            }
        }
    }

    /// Subscribes to events from now on. Subscribe before sending the command whose event
    /// you wait for.
    pub fn events(&self) -> broadcast::Receiver<QmpEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Resolves once the connection is closed (at once if it already is). Any number of
    /// tasks may wait.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closed = self.inner.shared.closed.subscribe();
        async move {
            // An error means the reader task is gone, which also means closed.
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        *self.inner.shared.closed.borrow()
    }
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A poisoned map is still consistent: every operation on it is a single call.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: u64) -> Result<oneshot::Receiver<Result<Value, QmpError>>, QmpError> {
        let mut pending = self.lock();
        if pending.closed {
            return Err(QmpError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.insert(id, tx);
        Ok(rx)
    }

    fn forget(&self, id: u64) {
        self.lock().waiters.remove(&id);
    }

    fn resolve(&self, id: u64, result: Result<Value, QmpError>) {
        let waiter = self.lock().waiters.remove(&id);
        match waiter {
            // The caller may have given up (timeout) in the meantime: nothing to do.
            Some(tx) => drop(tx.send(result)),
            None => tracing::debug!(id, "QMP reply for no waiting request"),
        }
    }

    fn close(&self) {
        let waiters = {
            let mut pending = self.lock();
            pending.closed = true;
            std::mem::take(&mut pending.waiters)
        };
        for (_, tx) in waiters {
            let _ = tx.send(Err(QmpError::Closed));
        }
        self.closed.send_replace(true);
    }

    fn dispatch(&self, line: &[u8]) {
        match Frame::parse(line) {
            Ok(Frame::Reply {
                id: Some(id),
                result,
            }) => {
                let result = result.map_err(|e| QmpError::Command {
                    class: e.class,
                    desc: e.desc,
                });
                self.resolve(id, result);
            }
            Ok(Frame::Event(event)) => {
                tracing::trace!(event = %event.event, "QMP event");
                // No subscribers is fine.
                let _ = self.events.send(event);
            }
            Ok(Frame::Reply { id: None, result }) => {
                tracing::debug!(?result, "QMP reply without a known id skipped");
            }
            Ok(Frame::Greeting(_)) => tracing::debug!("repeated QMP greeting skipped"),
            Err(err) => {
                let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
                tracing::debug!(error = %err, frame = %text.trim_end(), "QMP frame skipped");
            }
        }
    }
}

fn request_line(command: &str, arguments: Option<Value>, id: u64) -> String {
    let mut request = serde_json::Map::new();
    request.insert("execute".into(), command.into());
    if let Some(arguments) = arguments {
        request.insert("arguments".into(), arguments);
    }
    request.insert("id".into(), id.into());
    let mut line = Value::Object(request).to_string();
    line.push('\n');
    line
}

async fn connect_retrying(path: &Path, deadline: Instant) -> Result<UnixStream, QmpError> {
    loop {
        let err = match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(err) => err,
        };
        let retry = matches!(
            err.kind(),
            ErrorKind::NotFound | ErrorKind::ConnectionRefused
        );
        if !retry || Instant::now() + CONNECT_RETRY > deadline {
            return Err(QmpError::Connect {
                path: path.to_path_buf(),
                source: err,
            });
        }
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}

/// Reads up to the greeting, skipping lines that do not parse.
async fn read_greeting<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Value, QmpError> {
    let mut buf = Vec::new();
    loop {
        match wire::read_line(reader, &mut buf)
            .await
            .map_err(QmpError::Io)?
        {
            Line::Eof => return Err(QmpError::Closed),
            Line::Oversized => continue,
            Line::Complete => match Frame::parse(&buf) {
                Ok(Frame::Greeting(greeting)) => return Ok(greeting),
                Ok(_) => return Err(QmpError::BadGreeting),
                Err(err) => tracing::debug!(error = %err, "QMP frame before greeting skipped"),
            },
        }
    }
}

async fn read_loop<R: AsyncBufRead + Unpin>(mut reader: R, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        match wire::read_line(&mut reader, &mut buf).await {
            Ok(Line::Complete) => shared.dispatch(&buf),
            Ok(Line::Oversized) => tracing::debug!("oversized QMP frame skipped"),
            Ok(Line::Eof) => break,
            Err(err) => {
                tracing::debug!(error = %err, "QMP read failed");
                break;
            }
        }
    }
    shared.close();
}
