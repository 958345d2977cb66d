//! Caps that keep one caller from taking every connection vmd-web has to vmd.
//!
//! vmd-web reaches vmd as its own uid, and vmd caps the connections of one uid
//! (`max_connections_per_uid`, 128 by default); past that, every user of vmd-web gets 503. So
//! vmd-web bounds what it holds open on anyone's behalf, with RAII permits:
//!
//! - at most [`Caps::logins`] logins in flight at once (vmd's password checks are slow and run
//!   a few at a time); one more is answered 503 `unavailable` at once, without reaching vmd;
//! - at most [`Caps::streams_per_credential`] long-lived connections (SSE streams and console
//!   WebSockets) per credential, keyed by the SHA-256 of the token, never the token itself;
//! - at most [`Caps::streams`] long-lived connections in all, below vmd's 128 so that short
//!   requests still find room.
//!
//! Over a stream cap the answer is 429 `quota_exceeded`. A permit is held for the life of the
//! SSE body or the WebSocket pump and given back when it is dropped.
//!
//! A JSON request's body is read whole ([`read_body_first`]) before its handler connects to
//! vmd, so a client sending its body slowly holds no vmd connection meanwhile (the 60 s
//! request timeout bounds it).
//!
//! This is ephemeral in-memory accounting of connections open right now, not stored state:
//! it starts empty and is lost with the process. A console WebSocket carries no credential of
//! its own (its one-shot ticket is the credential); it counts against the credential of the
//! session cookie a browser sends along, and otherwise against the global cap only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vm_proto::ErrorCode;

use crate::app::BODY_LIMIT;
use crate::error::WebError;

/// The configured caps (see the module docs and `--max-*` flags in [`crate::cli`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Logins in flight at once.
    pub logins: usize,
    /// Long-lived connections (SSE streams, console WebSockets) per credential.
    pub streams_per_credential: usize,
    /// Long-lived connections in all.
    pub streams: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            logins: 8,
            streams_per_credential: 16,
            streams: 96,
        }
    }
}

/// SHA-256 of a token: the key of its count.
type Key = [u8; 32];

/// Open long-lived connections per credential. A std Mutex: held only to update a count,
/// never across an `.await`.
type Counts = Arc<Mutex<HashMap<Key, usize>>>;

/// The live counts behind [`Caps`]; cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct Limits {
    caps: Caps,
    logins: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    counts: Counts,
}

/// A login slot, given back on drop.
#[derive(Debug)]
pub struct LoginPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// A long-lived connection's slot, given back on drop.
#[derive(Debug)]
pub struct StreamPermit {
    _global: OwnedSemaphorePermit,
    /// The credential's key and the shared counts, when counted per credential.
    owner: Option<(Key, Counts)>,
}

impl Limits {
    /// Empty counts under `caps`.
    pub fn new(caps: Caps) -> Limits {
        Limits {
            caps,
            logins: Arc::new(Semaphore::new(caps.logins)),
            streams: Arc::new(Semaphore::new(caps.streams)),
            counts: Arc::default(),
        }
    }

    /// A login slot, or 503 when [`Caps::logins`] logins are in flight.
    pub fn login(&self) -> Result<LoginPermit, WebError> {
        let permit = Arc::clone(&self.logins).try_acquire_owned().map_err(|_| {
            WebError::new(
                ErrorCode::Unavailable,
                format!("{} logins are in progress", self.caps.logins),
            )
            .hint("retry in a moment")
        })?;
        Ok(LoginPermit(permit))
    }

    /// A long-lived connection's slot for `token` (none: the global cap only), or 429.
    pub fn stream(&self, token: Option<&str>) -> Result<StreamPermit, WebError> {
        let global = Arc::clone(&self.streams)
            .try_acquire_owned()
            .map_err(|_| self.too_many_in_all())?;
        let Some(token) = token else {
            return Ok(StreamPermit {
                _global: global,
                owner: None,
            });
        };
        let key: Key = Sha256::digest(token.as_bytes()).into();
        self.count(key)?;
        let owner = Some((key, Arc::clone(&self.counts)));
        Ok(StreamPermit {
            _global: global,
            owner,
        })
    }

    /// Counts one more connection of `key`, or 429 at the per-credential cap.
    fn count(&self, key: Key) -> Result<(), WebError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry(key).or_insert(0);
        if *held >= self.caps.streams_per_credential {
            return Err(WebError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "this credential already holds {} event streams and consoles",
                    self.caps.streams_per_credential
                ),
            )
            .hint("close an event stream, log follower or console first"));
        }
        *held += 1;
        Ok(())
    }

    fn too_many_in_all(&self) -> WebError {
        WebError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "vmd-web already holds {} event streams and consoles",
                self.caps.streams
            ),
        )
        .hint("retry later, or close an event stream, log follower or console")
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(Caps::default())
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let Some((key, counts)) = self.owner.take() else {
            return;
        };
        let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = counts.get_mut(&key) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// Reads the request's body (up to [`BODY_LIMIT`]) before the handler runs; a body over the
/// limit, or one that fails, is a 400.
pub async fn read_body_first(mut request: Request, next: Next) -> Response {
    let body = std::mem::take(request.body_mut());
    match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => {
            *request.body_mut() = Body::from(bytes);
            next.run(request).await
        }
        Err(err) => WebError::new(
            ErrorCode::InvalidArgument,
            format!("cannot read the body: {err}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(logins: usize, per: usize, all: usize) -> Limits {
        Limits::new(Caps {
            logins,
            streams_per_credential: per,
            streams: all,
        })
    }

    #[test]
    fn logins_past_the_cap_are_unavailable_until_one_ends() {
        let limits = limits(1, 1, 1);
        let first = limits.login().expect("first");
        let err = limits.login().expect_err("second");
        assert_eq!(err.0.kind(), ErrorCode::Unavailable);
        assert!(err.0.data.hint.is_some());
        drop(first);
        assert!(limits.login().is_ok());
    }

    #[test]
    fn streams_are_capped_per_credential_and_freed_on_drop() {
        let limits = limits(1, 2, 10);
        let a1 = limits.stream(Some("a")).expect("a1");
        let _a2 = limits.stream(Some("a")).expect("a2");
        let err = limits.stream(Some("a")).expect_err("a3");
        assert_eq!(err.0.kind(), ErrorCode::QuotaExceeded);
        assert!(limits.stream(Some("b")).is_ok(), "another credential");
        drop(a1);
        let _a3 = limits.stream(Some("a")).expect("a slot was freed");
    }

    #[test]
    fn the_global_cap_counts_everyone() {
        let limits = limits(1, 5, 2);
        let _a = limits.stream(Some("a")).expect("a");
        let b = limits.stream(None).expect("ticket only");
        let err = limits.stream(Some("c")).expect_err("over the ceiling");
        assert_eq!(err.0.kind(), ErrorCode::QuotaExceeded);
        drop(b);
        assert!(limits.stream(Some("c")).is_ok());
    }

    #[test]
    fn a_refused_stream_counts_nothing_and_tokens_are_not_kept() {
        let limits = limits(1, 1, 1);
        let _a = limits.stream(Some("secret")).expect("a");
        assert!(limits.stream(Some("secret")).is_err());
        let counts = limits.counts.lock().expect("lock");
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![1]);
        let key: Key = Sha256::digest(b"secret").into();
        assert!(counts.contains_key(&key));
    }
}
