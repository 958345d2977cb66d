//! Failed-login rate limiting, per account name (known or not, so that the answer does not
//! tell which names exist). After [`FREE_FAILURES`] failures in a row a name is locked for a
//! delay that doubles with every further failure, up to [`MAX_LOCK`]; a success clears it.
//! The table is bounded: when it is full, records untouched for [`MAX_LOCK`] are forgotten,
//! and if that frees nothing a name not yet in it is refused for [`FULL_WAIT`] (a flood of
//! made-up names must not push out, and so reset, a victim's count).

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
/// How long a name not in a full table waits.
const FULL_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
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
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if !names.contains_key(name) && !has_room(&mut names, now) {
            return Err(FULL_WAIT);
        }
        match names.get(name).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the lock it caused, if any.
    pub fn failed(&self, name: &str, now: Instant) -> Option<Duration> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if !names.contains_key(name) && !has_room(&mut names, now) {
            return None;
        }
        let record = names.entry(name.to_string()).or_insert(Record {
            failures: 0,
            locked_until: None,
            last: now,
        });
        record.failures = record.failures.saturating_add(1);
        record.last = now;
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

/// Whether a new name fits, after forgetting records untouched for [`MAX_LOCK`] (their
/// locks, at most that long, are over).
fn has_room(names: &mut HashMap<String, Record>, now: Instant) -> bool {
    if names.len() >= MAX_NAMES {
        names.retain(|_, r| now.saturating_duration_since(r.last) < MAX_LOCK);
    }
    names.len() < MAX_NAMES
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

    #[test]
    fn a_flood_of_names_cannot_push_a_victim_out() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed("victim", now);
        }
        for i in 0..MAX_NAMES {
            t.failed(&format!("junk{i}"), now);
        }
        assert_eq!(
            t.check("newcomer", now),
            Err(FULL_WAIT),
            "a full table refuses new names"
        );
        assert_eq!(
            t.failed("victim", now),
            Some(FIRST_LOCK),
            "the victim's count was kept"
        );
        let later = now + MAX_LOCK;
        assert!(
            t.check("newcomer", later).is_ok(),
            "stale records are forgotten"
        );
    }
}
