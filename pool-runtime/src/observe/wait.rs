//! Acquire wait times in log-scale buckets: cheap to record under the pool
//! lock, good enough for p50/p99 in status and health.

use std::time::Duration;

/// Bucket `i` holds waits below `2^i` microseconds; the last is open-ended.
const BUCKETS: usize = 32;

#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS],
    total: u64,
    max: Duration,
}

impl Histogram {
    fn record(&mut self, wait: Duration) {
        let micros = wait.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max = self.max.max(wait);
    }

    fn merge(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (a, b) in out.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        out.total += other.total;
        out.max = out.max.max(other.max);
        out
    }

    /// Upper bound of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper = if i == 0 { 1 } else { 1u64 << i };
                return Duration::from_micros(upper).min(self.max.max(Duration::from_micros(1)));
            }
        }
        self.max
    }
}

/// Waits of the current and the previous window, so "recent" means the
/// last one to two windows (rotated by the pool's maintenance task).
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitStats {
    /// Acquires that did not wait, not yet published to the metrics
    /// histogram (published in one batch per maintenance tick).
    unpublished_zero_waits: u64,
    current: Histogram,
    previous: Histogram,
    all_time_max: Duration,
    recent_timeouts: u64,
    previous_timeouts: u64,
}

/// Wait-time figures for [`Status`](crate::Status).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct WaitSummary {
    /// Median acquire wait over the recent window, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile acquire wait over the recent window, milliseconds.
    pub p99_ms: f64,
    /// Longest acquire wait since the pool started, milliseconds.
    pub max_ms: f64,
    /// Acquires that timed out in the recent window.
    pub recent_timeouts: u64,
}

impl WaitStats {
    pub(crate) fn record(&mut self, wait: Duration) {
        if wait.is_zero() {
            self.unpublished_zero_waits += 1;
        }
        self.current.record(wait);
        self.all_time_max = self.all_time_max.max(wait);
    }

    pub(crate) fn record_timeout(&mut self, wait: Duration) {
        self.record(wait);
        self.recent_timeouts += 1;
    }

    /// Zero waits recorded since the last call, for the metrics histogram.
    pub(crate) fn take_zero_waits(&mut self) -> u64 {
        std::mem::take(&mut self.unpublished_zero_waits)
    }

    pub(crate) fn rotate(&mut self) {
        self.previous = std::mem::take(&mut self.current);
        self.previous_timeouts = std::mem::take(&mut self.recent_timeouts);
    }

    pub(crate) fn summary(&self) -> WaitSummary {
        let recent = self.current.merge(&self.previous);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        WaitSummary {
            p50_ms: ms(recent.quantile(0.50)),
            p99_ms: ms(recent.quantile(0.99)),
            max_ms: ms(self.all_time_max),
            recent_timeouts: self.recent_timeouts + self.previous_timeouts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_recorded_waits() {
        let mut stats = WaitStats::default();
        for _ in 0..98 {
            stats.record(Duration::from_micros(3));
        }
        stats.record(Duration::from_millis(40));
        stats.record(Duration::from_millis(40));
        let s = stats.summary();
        assert!(s.p50_ms <= 0.004, "{s:?}");
        assert!(s.p99_ms >= 32.0 && s.p99_ms <= 40.0, "{s:?}");
        assert_eq!(s.max_ms, 40.0);
    }

    #[test]
    fn rotation_forgets_after_two_windows_but_keeps_the_max() {
        let mut stats = WaitStats::default();
        stats.record_timeout(Duration::from_secs(1));
        stats.rotate();
        assert_eq!(stats.summary().recent_timeouts, 1);
        stats.rotate();
        let s = stats.summary();
        assert_eq!(s.recent_timeouts, 0);
        assert_eq!(s.p99_ms, 0.0);
        assert_eq!(s.max_ms, 1000.0);
    }
}
