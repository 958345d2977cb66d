//! Serving connections: vmd-web's own accept loop over hyper's HTTP/1.1 server, so that no
//! client can hold connections or descriptors for free.
//!
//! - **Header timeout** ([`Limits::header_timeout`], 10 s): a client has that long to send a
//!   whole request head, or the connection is closed (a slowloris sending one header line at a
//!   time is cut at the deadline, not kept). hyper restarts the same clock whenever a
//!   kept-alive connection waits for its next request, so it is also the idle keep-alive
//!   timeout.
//! - **Connection cap** ([`Limits::max_connections`], 512): a semaphore permit is taken
//!   before each accept and travels with the connection's stream ([`Counted`]), so it is held
//!   for the connection's whole life, a WebSocket after its upgrade included. At the cap the
//!   loop stops accepting: newcomers wait in the kernel's listen backlog rather than being
//!   accepted and dropped.
//! - **Shutdown**: on SIGTERM or SIGINT the listener closes and every connection finishes its
//!   current request and closes; connections still open after [`SHUTDOWN_GRACE`] (event
//!   streams) are dropped with the process. Console WebSockets are not waited for: once
//!   upgraded they are no longer hyper's, and end with the process (as under `axum::serve`).
//! - **Descriptors**: [`raise_nofile_limit`] lifts the soft `RLIMIT_NOFILE` to the hard limit.
//!
//! Only HTTP/1.1 is served (with upgrades, for the console WebSockets), as TLS's ALPN offers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::serve::Listener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest shutdown waits for open connections before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Least time between two "connection cap reached" warnings.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);
/// Descriptors each connection may hold: its socket and one to vmd.
const NOFILE_PER_CONNECTION: u64 = 2;
/// Descriptors kept beyond the connections: TLS handshakes, the listener, the runtime.
const NOFILE_RESERVE: u64 = 256;

/// The bounds on connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest a client may take to send a request head, or to start the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` within `limits` until `stop` resolves, then drains the open
/// connections for up to [`SHUTDOWN_GRACE`].
pub async fn run<L>(mut listener: L, app: Router, limits: Limits, stop: impl Future<Output = ()>)
where
    L: Listener,
{
    let builder = http1_builder(limits.header_timeout);
    let (draining, tracker) = (CancellationToken::new(), TaskTracker::new());
    let mut cap = Cap::new(limits.max_connections);
    tokio::pin!(stop);
    loop {
        let io = tokio::select! {
            io = accept(&mut listener, &mut cap) => io,
            () = &mut stop => break,
        };
        let conn = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        tracker.spawn(serve_connection(conn, draining.clone()));
    }
    drop(listener);
    drain(&draining, &tracker).await;
}

/// HTTP/1.1, keep-alive allowed, with the header (and idle) timeout. (hyper-util's `auto`
/// builder is not used: with upgrades it first waits, without any timeout, for the bytes that
/// tell HTTP/1 from HTTP/2, so a silent connection would be kept forever.)
fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
}

/// Serves one connection; once `draining` is cancelled, lets it finish its current request.
async fn serve_connection<I>(
    conn: http1::UpgradeableConnection<TokioIo<I>, TowerToHyperService<Router>>,
    draining: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = draining.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(cause) = result {
        tracing::debug!(%cause, "connection ended with an error");
    }
}

/// The next connection, once a permit for it is free.
async fn accept<L: Listener>(listener: &mut L, cap: &mut Cap) -> Counted<L::Io> {
    let permit = cap.acquire().await;
    let (io, _peer) = listener.accept().await;
    Counted {
        io,
        _permit: permit,
    }
}

/// Asks every connection to finish; gives up after [`SHUTDOWN_GRACE`].
async fn drain(draining: &CancellationToken, tracker: &TaskTracker) {
    draining.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        let (open, secs) = (tracker.len(), SHUTDOWN_GRACE.as_secs());
        tracing::info!(open, "connections still open after {secs} s are closed");
    }
}

/// The connection cap: permits, and when the last warning about reaching it was logged.
struct Cap {
    permits: Arc<Semaphore>,
    max: usize,
    warned: Option<Instant>,
}

impl Cap {
    fn new(max: usize) -> Cap {
        Cap {
            permits: Arc::new(Semaphore::new(max)),
            max,
            warned: None,
        }
    }

    /// A permit, waiting (and warning, at most every [`CAP_WARNING_EVERY`]) at the cap.
    async fn acquire(&mut self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => return permit,
            Err(TryAcquireError::NoPermits) => self.warn(),
            Err(TryAcquireError::Closed) => unreachable!("the cap's semaphore is never closed"),
        }
        let permit = Arc::clone(&self.permits).acquire_owned().await;
        permit.expect("the cap's semaphore is never closed")
    }

    fn warn(&mut self) {
        if self
            .warned
            .is_some_and(|at| at.elapsed() < CAP_WARNING_EVERY)
        {
            return;
        }
        self.warned = Some(Instant::now());
        tracing::warn!(
            max_connections = self.max,
            "connection cap reached; new connections wait in the listen backlog"
        );
    }
}

/// A connection's stream with its permit: the permit is released when the stream is dropped,
/// whether by hyper or, after a WebSocket upgrade, by the WebSocket's task.
struct Counted<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the default soft limit, often 1024, is
/// below what `max_connections` may need), and warns when the result is still too low.
/// Failures are logged, not fatal.
pub fn raise_nofile_limit(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => return tracing::warn!(error = %err, "cannot read the descriptor limit"),
    };
    let soft = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(err) => {
                tracing::warn!(error = %err, soft, hard, "cannot raise the descriptor limit");
                soft
            }
        }
    } else {
        soft
    };
    let needed = max_connections as u64 * NOFILE_PER_CONNECTION + NOFILE_RESERVE;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            "descriptor limit is too low for the connection cap; raise LimitNOFILE"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_permit_is_released_with_its_stream() {
        let mut cap = Cap::new(1);
        let (a, _b) = tokio::io::duplex(64);
        let counted = Counted {
            io: a,
            _permit: cap.acquire().await,
        };
        assert_eq!(cap.permits.available_permits(), 0);
        drop(counted);
        assert_eq!(cap.permits.available_permits(), 1);
    }
}
