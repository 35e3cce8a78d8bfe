//! Acquire wait times in log-scale buckets: cheap to record under the pool
//! lock, good enough for p50/p99 in status and health.

use std::time::{Duration, Instant};

/// One window of wait statistics: quantiles cover the last 5 to 10 s.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);

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
                // Bucket 0 holds waits under 1 µs: no wait. Reporting its
                // 1 µs bound showed "p50 0.001 ms" next to "max 0.0 ms".
                let upper = if i == 0 { 0 } else { 1u64 << i };
                return Duration::from_micros(upper).min(self.max);
            }
        }
        self.max
    }
}

/// Waits of the current and the previous window, so "recent" means the
/// last 5 to 10 s. Windows roll by the clock passed in, not by a timer, so
/// nothing older than 10 s is ever counted (with a timer, a tick late
/// stretched it).
#[derive(Clone, Debug, Default)]
pub(crate) struct WaitStats {
    /// Start of the current window; `None` before the first wait.
    window_start: Option<Instant>,
    /// Acquires that did not wait, not yet published to the metrics
    /// histogram (published in one batch per maintenance tick).
    unpublished_zero_waits: u64,
    current: Histogram,
    previous: Histogram,
    all_time_max: Duration,
}

/// Wait-time figures for [`Status`](crate::Status).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct WaitSummary {
    /// Median acquire wait over the last 5 to 10 s, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile acquire wait over the last 5 to 10 s, milliseconds.
    pub p99_ms: f64,
    /// Longest acquire wait over the last 5 to 10 s, milliseconds.
    pub recent_max_ms: f64,
    /// Longest acquire wait since the pool started, milliseconds.
    pub max_ms: f64,
    /// Acquires that timed out in the last 10 s.
    pub recent_timeouts: u64,
}

impl WaitStats {
    pub(crate) fn record(&mut self, wait: Duration, now: Instant) {
        self.roll(now);
        if wait.is_zero() {
            self.unpublished_zero_waits += 1;
        }
        self.current.record(wait);
        self.all_time_max = self.all_time_max.max(wait);
    }

    /// Zero waits recorded since the last call, for the metrics histogram.
    pub(crate) fn take_zero_waits(&mut self) -> u64 {
        std::mem::take(&mut self.unpublished_zero_waits)
    }

    /// Moves to the window `now` falls in.
    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let age = now.saturating_duration_since(start);
        if age >= WINDOW * 2 {
            self.previous = Histogram::default();
            self.current = Histogram::default();
            self.window_start = Some(now);
        } else if age >= WINDOW {
            self.previous = std::mem::take(&mut self.current);
            self.window_start = Some(start + WINDOW);
        }
    }

    /// Figures of the waits of the last 5 to 10 s; timeouts are counted
    /// elsewhere (by time, in the pool's signals) and passed in.
    pub(crate) fn summary(&self, now: Instant, recent_timeouts: u64) -> WaitSummary {
        let age = self
            .window_start
            .map_or(Duration::ZERO, |start| now.saturating_duration_since(start));
        let recent = if age >= WINDOW * 2 {
            Histogram::default()
        } else if age >= WINDOW {
            // The current window is now the previous one.
            self.current.clone()
        } else {
            self.current.merge(&self.previous)
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        WaitSummary {
            p50_ms: ms(recent.quantile(0.50)),
            p99_ms: ms(recent.quantile(0.99)),
            recent_max_ms: ms(recent.max),
            max_ms: ms(self.all_time_max),
            recent_timeouts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_recorded_waits() {
        let now = Instant::now();
        let mut stats = WaitStats::default();
        for _ in 0..98 {
            stats.record(Duration::from_micros(3), now);
        }
        stats.record(Duration::from_millis(40), now);
        stats.record(Duration::from_millis(40), now);
        let s = stats.summary(now, 0);
        assert!(s.p50_ms <= 0.004, "{s:?}");
        assert!(s.p99_ms >= 32.0 && s.p99_ms <= 40.0, "{s:?}");
        assert_eq!(s.max_ms, 40.0);
    }

    #[test]
    fn waits_are_forgotten_after_ten_seconds_but_the_max_is_kept() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut stats = WaitStats::default();
        stats.record(Duration::from_secs(1), t0);
        assert_eq!(stats.summary(at(4), 0).recent_max_ms, 1000.0);
        assert_eq!(stats.summary(at(9), 0).recent_max_ms, 1000.0);
        stats.record(Duration::ZERO, at(6));
        assert_eq!(stats.summary(at(9), 0).recent_max_ms, 1000.0);
        let s = stats.summary(at(10), 0);
        assert_eq!((s.p99_ms, s.recent_max_ms), (0.0, 0.0), "{s:?}");
        assert_eq!(s.max_ms, 1000.0);
        stats.record(Duration::ZERO, at(30));
        assert_eq!(stats.summary(at(30), 0).recent_max_ms, 0.0);
    }

    /// The status once showed "p50 0.001 ms, max 0.0 ms" when every
    /// checkout was immediate.
    #[test]
    fn no_wait_reads_as_zero_everywhere() {
        let now = Instant::now();
        let mut stats = WaitStats::default();
        for _ in 0..10 {
            stats.record(Duration::ZERO, now);
        }
        stats.record(Duration::from_millis(5), now);
        let s = stats.summary(now, 0);
        assert_eq!(s.p50_ms, 0.0, "{s:?}");
        assert!(s.p99_ms > 0.0, "{s:?}");
    }
}
