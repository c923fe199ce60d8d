//! The per-second time series: calls are put in the second they ended in, counted from
//! the end of the warm-up.
//!
//! The last point also takes the calls that end after the sending stopped (the drain),
//! and a run whose length is not a whole number of seconds has a last point longer or
//! shorter than a second (half a second at least): a short tail of a few stragglers
//! would otherwise plot as a bogus spike or dip in the rate.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::report::{histogram, micros};

/// One second of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// End of the interval, in seconds since the end of the warm-up.
    pub t_s: f64,
    /// Calls that ended in it, per second.
    pub rate: f64,
    /// Median latency of the calls answered in it; `None` when none was.
    pub p50_ms: Option<f64>,
    /// 99th percentile, likewise.
    pub p99_ms: Option<f64>,
    /// Calls that failed in it.
    pub errors: u64,
}

/// Puts calls into seconds. Calls must be added in the order they ended (the caller
/// takes the time under the lock it adds under).
#[derive(Debug)]
pub(crate) struct Seconds {
    /// Points of the run: the last one runs to the end.
    points: usize,
    /// The open second.
    index: usize,
    latency_us: Histogram<u64>,
    ended: u64,
    errors: u64,
    done: Vec<Point>,
}

impl Seconds {
    /// Seconds for a measured part of `duration`: one point per second, at least one.
    pub(crate) fn new(duration: Duration) -> Self {
        // Rounded, so the last point is at least half a second long.
        let points = (duration.as_secs_f64().round() as usize).max(1);
        Self {
            points,
            index: 0,
            latency_us: histogram(),
            ended: 0,
            errors: 0,
            done: Vec::new(),
        }
    }

    /// Adds a call that ended at `at` (since the end of the warm-up), answered after
    /// `latency` or not at all, failed or not.
    pub(crate) fn add(&mut self, at: Duration, latency: Option<Duration>, failed: bool) {
        let index = (at.as_secs() as usize).min(self.points - 1);
        while self.index < index {
            self.close(1.0);
        }
        self.ended += 1;
        self.errors += u64::from(failed);
        if let Some(l) = latency {
            self.latency_us.saturating_record(micros(l));
        }
    }

    /// The series of a run whose measured part lasted `elapsed`.
    pub(crate) fn finish(mut self, elapsed: Duration) -> Vec<Point> {
        while self.index + 1 < self.points && (self.index as f64 + 1.0) < elapsed.as_secs_f64() {
            self.close(1.0);
        }
        let rest = elapsed.as_secs_f64() - self.index as f64;
        if rest > 0.0 || self.ended > 0 {
            self.close(rest);
        }
        self.done
    }

    /// Ends the open second after `length` seconds of it.
    fn close(&mut self, length: f64) {
        let quantile = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        self.done.push(Point {
            t_s: self.index as f64 + length,
            rate: if length > 0.0 {
                self.ended as f64 / length
            } else {
                0.0
            },
            p50_ms: quantile(&self.latency_us, 0.5),
            p99_ms: quantile(&self.latency_us, 0.99),
            errors: self.errors,
        });
        self.latency_us.reset();
        self.ended = 0;
        self.errors = 0;
        self.index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn calls_land_in_the_second_they_ended_and_empty_seconds_are_kept() {
        let mut s = Seconds::new(Duration::from_secs(3));
        s.add(ms(100), Some(ms(2)), false);
        s.add(ms(900), Some(ms(4)), false);
        // Nothing ends in the second second: a stall.
        s.add(ms(2500), None, true);
        let points = s.finish(Duration::from_secs(3));
        assert_eq!(points.len(), 3, "{points:?}");
        assert_eq!(points[0].t_s, 1.0);
        assert_eq!(points[0].rate, 2.0);
        assert!((points[0].p50_ms.unwrap() - 2.0).abs() < 0.01);
        assert_eq!(points[1].rate, 0.0);
        assert_eq!(points[1].p50_ms, None);
        assert_eq!(points[2].errors, 1);
        assert_eq!(points[2].p99_ms, None);
    }

    #[test]
    fn the_drain_goes_to_the_last_point() {
        let mut s = Seconds::new(Duration::from_secs(2));
        for i in 0..10 {
            s.add(ms(i * 199), Some(ms(1)), false);
        }
        // Ends 100 ms after the sending stopped.
        s.add(ms(2100), Some(ms(300)), false);
        let points = s.finish(ms(2100));
        assert_eq!(points.len(), 2, "{points:?}");
        assert!((points[1].t_s - 2.1).abs() < 1e-9);
        assert_eq!(points[0].rate, 6.0, "0 to 995 ms");
        // 4 calls (1194 to 1791 ms) and the straggler, over 1.1 s.
        assert!((points[1].rate - 5.0 / 1.1).abs() < 1e-9, "{points:?}");
    }

    #[test]
    fn a_short_run_has_one_point() {
        let mut s = Seconds::new(ms(300));
        s.add(ms(100), Some(ms(1)), false);
        s.add(ms(200), Some(ms(1)), false);
        let points = s.finish(ms(300));
        assert_eq!(points.len(), 1);
        assert!((points[0].rate - 2.0 / 0.3).abs() < 1e-9);
    }

    #[test]
    fn seconds_with_nothing_until_the_end_are_still_points() {
        let s = Seconds::new(Duration::from_secs(3));
        let points = s.finish(Duration::from_secs(3));
        assert_eq!(points.len(), 3);
        assert!(points.iter().all(|p| p.rate == 0.0));
        assert_eq!(points[2].t_s, 3.0);
    }
}
