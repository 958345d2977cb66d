//! Admission of connections: a cap on the connections served at once, in total
//! (`max_connections`) and per non-root uid (`max_connections_per_uid`).
//!
//! The accept loop asks [`Admission::admit`] for a [`Permit`] before it serves a connection.
//! The permit travels inside the connection's socket ([`Admitted`]), so it is released when
//! the socket is closed — also when the connection was upgraded to a WebSocket or a console
//! and outlives the HTTP exchange that started it. A refused connection gets a [`Refusal`],
//! which says which limit was hit and names the config key to raise.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use vm_proto::{ApiError, ErrorCode};

/// The connection caps and the current counts.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_uid: usize,
    // A std Mutex: held only to update two counters, never across an `.await`.
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// All users together hold `max_connections` connections.
    #[error("vmd is serving its limit of {0} connections")]
    Total(usize),
    /// This uid holds `max_connections_per_uid` connections.
    #[error("uid {uid} holds its limit of {limit} connections")]
    PerUid {
        /// The caller.
        uid: u32,
        /// The per-uid limit.
        limit: usize,
    },
}

impl Refusal {
    /// The error a refused client receives (HTTP 503).
    pub fn api_error(&self) -> ApiError {
        let (key, what) = match self {
            Refusal::Total(_) => ("max_connections", "connections"),
            Refusal::PerUid { .. } => ("max_connections_per_uid", "connections of one user"),
        };
        ApiError::new(ErrorCode::Unavailable, format!("{self}; try again later")).with_hint(
            format!("close idle clients, or raise {key} in the vmd config (the cap on {what})"),
        )
    }
}

/// Connections kept for root beyond what all other users together may hold.
const ROOT_SLOTS: usize = 16;

impl Admission {
    /// Caps of `max_total` connections and `max_per_uid` per non-root uid.
    pub fn new(max_total: usize, max_per_uid: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_uid,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A permit for one connection of `uid`, or why there is none.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<Permit, Refusal> {
        let mut counts = self.lock();
        if counts.total >= self.total_for(uid) {
            return Err(Refusal::Total(self.max_total));
        }
        let mine = counts.per_uid.entry(uid).or_default();
        if uid != 0 && *mine >= self.max_per_uid {
            return Err(Refusal::PerUid {
                uid,
                limit: self.max_per_uid,
            });
        }
        *mine += 1;
        counts.total += 1;
        Ok(Permit {
            admission: self.clone(),
            uid,
        })
    }

    /// The total cap as it applies to `uid`: the last [`ROOT_SLOTS`] (at most an eighth of the
    /// cap) are kept for root, so non-root users together can never lock the admin out.
    fn total_for(&self, uid: u32) -> usize {
        match uid {
            0 => self.max_total,
            _ => self.max_total - ROOT_SLOTS.min(self.max_total / 8),
        }
    }

    /// Connections currently admitted.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn release(&self, uid: u32) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_uid.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_uid.remove(&uid);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        self.counts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    uid: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release(self.uid);
    }
}

/// A socket that holds its connection's [`Permit`] until it is dropped.
#[derive(Debug)]
pub struct Admitted<S> {
    io: S,
    _permit: Permit,
}

impl<S> Admitted<S> {
    /// Ties `permit` to `io`.
    pub fn new(io: S, permit: Permit) -> Admitted<S> {
        Admitted {
            io,
            _permit: permit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_cap_applies_to_everyone() {
        let admission = Admission::new(2, 10);
        let a = admission.admit(0).expect("first");
        let _b = admission.admit(1000).expect("second");
        assert_eq!(admission.admit(0).err(), Some(Refusal::Total(2)));
        drop(a);
        assert!(
            admission.admit(0).is_ok(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn the_last_slots_are_kept_for_root() {
        let admission = Admission::new(64, 64);
        let users: Vec<Permit> = (0..56)
            .map(|i| admission.admit(1000 + i).expect("ok"))
            .collect();
        assert_eq!(admission.admit(2000).err(), Some(Refusal::Total(64)));
        let root: Vec<Permit> = (0..8).map(|_| admission.admit(0).expect("root")).collect();
        assert_eq!(admission.admit(0).err(), Some(Refusal::Total(64)));
        drop((users, root));
    }

    #[test]
    fn per_uid_cap_spares_root_and_other_users() {
        let admission = Admission::new(100, 2);
        let held: Vec<Permit> = (0..2).map(|_| admission.admit(1000).expect("ok")).collect();
        let refused = admission.admit(1000).err();
        assert_eq!(
            refused,
            Some(Refusal::PerUid {
                uid: 1000,
                limit: 2
            })
        );
        assert!(
            admission.admit(1001).is_ok(),
            "another uid has its own count"
        );
        let root: Vec<Permit> = (0..5).map(|_| admission.admit(0).expect("root")).collect();
        assert_eq!(
            admission.open(),
            2 + 5,
            "the permit of uid 1001 was dropped at once"
        );
        drop((held, root));
        assert_eq!(admission.open(), 0);
        assert!(admission.lock().per_uid.is_empty(), "no entry left behind");
    }

    #[test]
    fn refusal_names_the_limit_and_the_config_key() {
        let err = Refusal::PerUid { uid: 7, limit: 8 }.api_error();
        assert!(err.message().contains("limit of 8"), "{}", err.message());
        let data = serde_json::to_string(&err.data).expect("json");
        assert!(data.contains("max_connections_per_uid"), "{data}");
        let err = Refusal::Total(1024).api_error();
        assert!(err.message().contains("1024"), "{}", err.message());
    }
}
