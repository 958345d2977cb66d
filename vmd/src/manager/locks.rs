//! Per-object serialisation: operations on one image or VM run one at a time, different
//! objects proceed in parallel. A lock lives only as long as its guard (it dies with its holder),
//! and a waiter can learn which operation holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// Named async locks, created on demand and dropped when unused.
#[derive(Default)]
pub struct NameLocks {
    // std Mutex: held only to look up / insert an entry, never across an await.
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<&'static str>>>>,
}

/// Holds the lock on one name; the operation name is visible to others while held.
pub struct NameGuard {
    _guard: OwnedMutexGuard<&'static str>,
}

impl NameLocks {
    /// Waits for and takes the lock on `key` for `operation`.
    pub async fn lock(&self, key: String, operation: &'static str) -> NameGuard {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1 || l.try_lock().is_err());
            map.entry(key).or_default().clone()
        };
        let mut guard = lock.lock_owned().await;
        *guard = operation;
        NameGuard { _guard: guard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_name_serialises_other_names_do_not() {
        let locks = NameLocks::default();
        let first = locks.lock("vm:a".into(), "create").await;
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            locks.lock("vm:b".into(), "rm"),
        )
        .await;
        assert!(other.is_ok(), "a different name must not wait");
        let same = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.lock("vm:a".into(), "rm"),
        )
        .await;
        assert!(same.is_err(), "the same name must wait while held");
        drop(first);
        let again = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            locks.lock("vm:a".into(), "rm"),
        )
        .await;
        assert!(again.is_ok());
    }
}
