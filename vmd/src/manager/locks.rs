//! Per-object serialisation: operations on one image or VM run one at a time, different
//! objects proceed in parallel. A lock lives only as long as its guard (it dies with its
//! holder). A waiter waits briefly ([`WAIT`]); past that it gets a `busy` error naming the
//! operation that holds the object, instead of hanging behind, say, a 30 s graceful stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

/// How long an operation waits for another one on the same object.
pub const WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    // std Mutex: read/written only briefly, never across an await.
    holder: Mutex<&'static str>,
}

/// Named async locks, created on demand and dropped when unused.
#[derive(Default)]
pub struct NameLocks {
    // std Mutex: held only to look up / insert an entry, never across an await.
    map: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Holds the lock on one name.
pub struct NameGuard {
    _guard: OwnedMutexGuard<()>,
}

impl NameLocks {
    /// Takes the lock on `key` for `operation`, waiting at most [`WAIT`]; on timeout returns
    /// the operation that holds it.
    pub async fn lock(
        &self,
        key: String,
        operation: &'static str,
    ) -> Result<NameGuard, &'static str> {
        let slot = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, s| Arc::strong_count(s) > 1 || s.lock.try_lock().is_err());
            map.entry(key).or_default().clone()
        };
        let guard = match tokio::time::timeout(WAIT, slot.lock.clone().lock_owned()).await {
            Ok(g) => g,
            Err(_) => return Err(*slot.holder.lock().unwrap_or_else(|p| p.into_inner())),
        };
        *slot.holder.lock().unwrap_or_else(|p| p.into_inner()) = operation;
        Ok(NameGuard { _guard: guard })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_name_serialises_other_names_do_not() {
        let locks = NameLocks::default();
        let first = locks.lock("vm:a".into(), "stop").await.expect("free");
        assert!(
            locks.lock("vm:b".into(), "rm").await.is_ok(),
            "a different name must not wait"
        );
        let busy = locks.lock("vm:a".into(), "start").await.err();
        assert_eq!(busy, Some("stop"), "the holder is named");
        drop(first);
        assert!(locks.lock("vm:a".into(), "start").await.is_ok());
    }
}
