//! Summary statistics of repeated measurements.
//!
//! The median of an even number of samples is the mean of the two middle ones. Percentiles use
//! the nearest-rank method (the smallest sample with at least `p`% of the samples at or below
//! it), so with fewer than 100 samples p99 is the maximum: the tables say how many samples
//! there were.

use serde::Serialize;

/// Median, p99 and range of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

/// Summarises `samples`; `None` when there are none (or any is NaN).
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        n: sorted.len(),
        median: median(&sorted),
        p90: percentile(&sorted, 90.0),
        p99: percentile(&sorted, 99.0),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    })
}

/// The median of sorted, non-empty samples.
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The nearest-rank `p`th percentile of sorted, non-empty samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan_have_no_summary() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn one_sample_is_everything() {
        let s = summarize(&[4.0]).expect("summary");
        assert_eq!(
            (s.n, s.median, s.p99, s.min, s.max),
            (1, 4.0, 4.0, 4.0, 4.0)
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(summarize(&[3.0, 1.0, 2.0]).expect("odd").median, 2.0);
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]).expect("even").median, 2.5);
    }

    #[test]
    fn p99_is_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summarize(&hundred).expect("100").p99, 99.0);
        let two_hundred: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(summarize(&two_hundred).expect("200").p99, 198.0);
        // Fewer than 100 samples: p99 is the maximum.
        assert_eq!(summarize(&[5.0, 1.0, 9.0]).expect("3").p99, 9.0);
    }

    #[test]
    fn order_does_not_matter() {
        let a = summarize(&[5.0, 3.0, 8.0, 1.0]).expect("a");
        let b = summarize(&[1.0, 8.0, 3.0, 5.0]).expect("b");
        assert_eq!(a, b);
        assert_eq!((a.min, a.max), (1.0, 8.0));
    }
}
