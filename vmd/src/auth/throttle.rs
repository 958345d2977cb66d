//! Failed-login rate limiting, per account name (known or not, so that the answer does not
//! tell which names exist). After [`FREE_FAILURES`] failures in a row a name is locked for a
//! delay that doubles with every further failure, up to [`MAX_LOCK`]; a success clears it.
//! The table is bounded: when full, the entry locked the least is forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// First lock.
const FIRST_LOCK: Duration = Duration::from_secs(30);
/// Longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Names tracked at most.
const MAX_NAMES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Option<Instant>,
}

/// The failure table.
#[derive(Debug, Default)]
pub struct Throttle {
    // std Mutex: map updates only, never held across an await.
    names: Mutex<HashMap<String, Record>>,
}

impl Throttle {
    /// `Err(wait)` while `name` is locked.
    pub fn check(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        match names.get(name).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock it caused, if any.
    pub fn failed(&self, name: &str, now: Instant) -> Option<Duration> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(name) {
            evict(&mut names, now);
        }
        let record = names.entry(name.to_string()).or_insert(Record {
            failures: 0,
            locked_until: None,
        });
        record.failures = record.failures.saturating_add(1);
        let lock = lock_for(record.failures)?;
        record.locked_until = Some(now + lock);
        Some(lock)
    }

    /// Clears `name` after a successful login.
    pub fn succeeded(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// The lock after `failures` failures in a row.
fn lock_for(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    let factor = 1u32.checked_shl(over.min(16)).unwrap_or(u32::MAX);
    Some(FIRST_LOCK.saturating_mul(factor).min(MAX_LOCK))
}

fn evict(names: &mut HashMap<String, Record>, now: Instant) {
    let victim = names
        .iter()
        .min_by_key(|(_, r)| r.locked_until.unwrap_or(now))
        .map(|(n, _)| n.clone());
    if let Some(v) = victim {
        names.remove(&v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_free_failures_and_doubles() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(t.failed("ann", now), None);
        }
        assert_eq!(t.failed("ann", now), Some(FIRST_LOCK));
        assert!(t.check("ann", now).is_err());
        assert!(t.check("bob", now).is_ok(), "per name");
        assert!(t.check("ann", now + FIRST_LOCK).is_ok(), "lock ends");
        assert_eq!(t.failed("ann", now), Some(FIRST_LOCK * 2));
        t.succeeded("ann");
        assert!(t.check("ann", now).is_ok());
        assert_eq!(lock_for(100), Some(MAX_LOCK));
    }
}
