//! The space ledger: disk space promised to work in flight on the state file system.
//!
//! A free-space check alone reserves nothing: several requests checked at the same moment all
//! see the same free space and together can promise it many times over. The ledger keeps the
//! sum of outstanding [`Reservation`]s and grants a new one only if `free now − reserved ≥
//! wanted`, both read under one lock. A reservation is an RAII guard: it is released when
//! dropped, and can shrink as the bytes it stood for land on disk (where `free` already counts
//! them). Uploads use it today (see `rpc::upload`); image creation may later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vm_proto::names::format_size;

/// Reads the free bytes of the file system holding a path.
type Probe = fn(&Path) -> u64;

/// Refusal: the space wanted is not free once other reservations are counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough space: {} wanted, {} free of which {} is reserved by work in flight",
    format_size(*.wanted), format_size(*.free), format_size(*.reserved)
)]
pub struct NotEnoughSpace {
    /// Bytes asked for.
    pub wanted: u64,
    /// Free bytes on the file system at the time.
    pub free: u64,
    /// Bytes already promised to others.
    pub reserved: u64,
}

/// The ledger of one file system (the state directory's), shared by all its reservations.
#[derive(Clone)]
pub struct SpaceLedger {
    ledger: Arc<Ledger>,
}

struct Ledger {
    dir: PathBuf,
    probe: Probe,
    // std Mutex: held for a statvfs and an addition, never across an await.
    reserved: Mutex<u64>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SpaceLedger {
    /// A ledger for the file system holding `dir`.
    pub fn new(dir: PathBuf) -> SpaceLedger {
        SpaceLedger::with_probe(dir, crate::storage::free_bytes)
    }

    pub(super) fn with_probe(dir: PathBuf, probe: Probe) -> SpaceLedger {
        let ledger = Ledger {
            dir,
            probe,
            reserved: Mutex::new(0),
        };
        SpaceLedger {
            ledger: Arc::new(ledger),
        }
    }

    /// Reserves `bytes`, or says how much is free and already reserved. Quick (one statvfs),
    /// so it is called from async code.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, NotEnoughSpace> {
        self.reserve_keeping(bytes, 0)
    }

    /// Reserves `bytes` only if `floor` bytes stay free beside it and every other reservation.
    pub fn reserve_keeping(&self, bytes: u64, floor: u64) -> Result<Reservation, NotEnoughSpace> {
        let mut reserved = self.ledger.lock();
        let free = (self.ledger.probe)(&self.ledger.dir);
        if free.saturating_sub(*reserved).saturating_sub(floor) < bytes {
            return Err(NotEnoughSpace {
                wanted: bytes,
                free,
                reserved: *reserved,
            });
        }
        *reserved += bytes;
        Ok(Reservation {
            ledger: self.ledger.clone(),
            bytes,
        })
    }

    /// Bytes currently reserved.
    pub fn reserved(&self) -> u64 {
        *self.ledger.lock()
    }
}

/// Space promised to one piece of work; released on drop.
pub struct Reservation {
    ledger: Arc<Ledger>,
    bytes: u64,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back all but `bytes` (no-op if it holds no more than that). Call it once the
    /// space is really used on disk, never before: then the ledger errs on the safe side.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let mut reserved = self.ledger.lock();
            *reserved = reserved.saturating_sub(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hundred(_: &Path) -> u64 {
        100
    }

    #[test]
    fn reservations_add_up_and_release_on_drop() {
        let space = SpaceLedger::with_probe(PathBuf::from("/"), hundred);
        let a = space.reserve(60).expect("first fits");
        let refused = space.reserve(60).expect_err("second does not");
        assert_eq!(
            refused,
            NotEnoughSpace {
                wanted: 60,
                free: 100,
                reserved: 60
            }
        );
        assert!(refused.to_string().contains("reserved"), "{refused}");
        drop(a);
        assert_eq!(space.reserved(), 0);
        assert!(space.reserve(60).is_ok(), "released space is granted again");
    }

    #[test]
    fn shrinking_gives_back_the_difference_once() {
        let space = SpaceLedger::with_probe(PathBuf::from("/"), hundred);
        let mut a = space.reserve(80).expect("fits");
        a.shrink_to(30);
        a.shrink_to(50);
        assert_eq!((a.bytes(), space.reserved()), (30, 30));
        let b = space.reserve(70).expect("the rest fits");
        drop(a);
        assert_eq!(space.reserved(), b.bytes());
    }
}
