//! Accepting connections without spinning, and refusing the ones over the cap out loud.
//!
//! A failed `accept` (EMFILE, ENFILE, ENOBUFS, ENOMEM — and, to be safe, any other error)
//! pauses accepting: 10 ms, doubling on every further failure up to 1 s, back to 10 ms after
//! the next success. Pending clients wait in the listen backlog meanwhile. Failures are logged
//! at most once per 10 s with the number suppressed since the last line, so a descriptor
//! flood costs neither a core nor the log disk.
//!
//! A connection over a cap (see [`admission`](super::admission)) is answered with HTTP 503 and
//! a JSON error naming the limit, then closed. At most [`MAX_REFUSING`] refusals are in flight,
//! each for at most [`REFUSAL_TIMEOUT`]; past that a refused connection is closed at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Refusal;
use super::upload::error_response;
use super::Caller;
use crate::log_limit::LogLimit;

/// First pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Shortest interval between two log lines about the same condition.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Refusals answered at once; more are closed without an answer.
pub const MAX_REFUSING: usize = 64;
/// How long a refused client gets to send its request and read the answer.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The growing pause between failed accepts.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The pause to take now; the next one is twice as long, up to [`MAX_PAUSE`].
    fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(MAX_PAUSE);
        pause
    }

    fn succeeded(&mut self) {
        self.next = FIRST_PAUSE;
    }
}

/// The listening socket with its back-off.
#[derive(Debug)]
pub struct Acceptor {
    listener: UnixListener,
    backoff: Backoff,
    log: LogLimit,
}

impl Acceptor {
    /// Accepts from `listener`.
    pub fn new(listener: UnixListener) -> Acceptor {
        Acceptor {
            listener,
            backoff: Backoff { next: FIRST_PAUSE },
            log: LogLimit::new(LOG_INTERVAL),
        }
    }

    /// The next connection, or `None` once `shutdown` is cancelled.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<UnixStream> {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return None,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    self.backoff.succeeded();
                    return Some(stream);
                }
                Err(err) => {
                    let pause = self.failed(&err);
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    fn failed(&mut self, err: &std::io::Error) -> Duration {
        let pause = self.backoff.failed();
        if let Some(suppressed) = self.log.allow(Instant::now()) {
            tracing::warn!(
                error = %err,
                suppressed,
                pause_ms = pause.as_millis() as u64,
                "accept failed; pausing accepts"
            );
        }
        pause
    }
}

/// Answers connections that were not admitted.
#[derive(Debug)]
pub struct Refuser {
    slots: Arc<Semaphore>,
    log: LogLimit,
}

impl Default for Refuser {
    fn default() -> Refuser {
        Refuser {
            slots: Arc::new(Semaphore::new(MAX_REFUSING)),
            log: LogLimit::new(LOG_INTERVAL),
        }
    }
}

impl Refuser {
    /// Answers `stream` with a 503 naming `refusal` (in a task on `tracker`), then closes it.
    pub fn refuse(
        &mut self,
        tracker: &TaskTracker,
        stream: UnixStream,
        caller: Caller,
        refusal: Refusal,
    ) {
        if let Some(suppressed) = self.log.allow(Instant::now()) {
            tracing::warn!(uid = caller.uid, pid = ?caller.pid, %refusal, suppressed, "connection refused");
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return; // too many refusals in flight: dropping `stream` closes it
        };
        tracker.spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer(stream, refusal)).await;
            drop(slot);
        });
    }
}

/// Serves one HTTP exchange on `stream` whose answer is the refusal, then closes.
async fn answer(stream: UnixStream, refusal: Refusal) {
    let svc = hyper::service::service_fn(move |_req| async move {
        let mut resp = error_response(StatusCode::SERVICE_UNAVAILABLE, &refusal.api_error());
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, Infallible>(resp)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
    if let Err(err) = served {
        tracing::debug!(error = %err, "refused connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff { next: FIRST_PAUSE };
        let pauses: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), FIRST_PAUSE);
    }
}
