//! Rate-limited logging: a condition that can repeat thousands of times a second (accept
//! failures under descriptor exhaustion, a flooding client) is logged at most once per
//! interval, and the line carries how many repeats were suppressed since the last one.
//!
//! The limiter decides; the caller logs, so each call site keeps its own level, message and
//! structured fields:
//!
//! ```
//! # use std::time::{Duration, Instant};
//! # use vmd::log_limit::LogLimit;
//! let mut limit = LogLimit::new(Duration::from_secs(10));
//! if let Some(suppressed) = limit.allow(Instant::now()) {
//!     tracing::warn!(suppressed, "accept failed");
//! }
//! ```

use std::time::{Duration, Instant};

/// Allows one log line per interval and counts the ones it holds back.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// A limiter allowing one line per `interval`.
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written at `now`, else
    /// `None` (and the event is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_suppressed_count() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        for i in 1..=500 {
            assert_eq!(limit.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(500));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(25)), Some(1));
    }
}
