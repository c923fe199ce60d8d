//! What the lanes record into while a run goes, and what the progress line reads: the
//! result so far and the open second of the time series, under one lock.
//!
//! Calls of the warm-up are not recorded. The lock is held for a histogram update only
//! (no await), and the time of a call's end is taken under it, so the time series sees
//! the calls in the order they ended.

use std::{
    fmt,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use super::{
    report::{Answer, ErrorKind, Lateness, RunResult, RunSettings, histogram, micros},
    timeseries::Seconds,
};

/// The run so far.
#[derive(Debug)]
pub(crate) struct Tally {
    /// The end of the warm-up: counted calls are timed from here.
    measured: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    result: RunResult,
    seconds: Seconds,
    /// When the last counted call ended.
    last_end: Option<Instant>,
    /// How late open-loop calls left, in microseconds.
    late_us: Option<Histogram<u64>>,
}

/// The figures the progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snapshot {
    /// Calls ended.
    pub completed: u64,
    /// Calls failed.
    pub errors: u64,
    /// Median latency so far.
    pub p50: Duration,
    /// 99th percentile so far.
    pub p99: Duration,
}

impl Tally {
    /// An empty tally of a run with `settings` whose warm-up ends at `measured`.
    pub(crate) fn new(settings: RunSettings, measured: Instant) -> Self {
        Self {
            measured,
            inner: Mutex::new(Inner::new(settings)),
        }
    }

    /// The end of the warm-up.
    pub(crate) fn measured(&self) -> Instant {
        self.measured
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A lane that panicked mid-update leaves counts that are still counts.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call was issued; `counted` is false in the warm-up.
    pub(crate) fn sent(&self, counted: bool) {
        if counted {
            self.lock().result.sent += 1;
        }
    }

    /// An open-loop call was issued `late` after it was due.
    pub(crate) fn sent_late(&self, counted: bool, late: Duration) {
        if counted {
            let mut inner = self.lock();
            inner.result.sent += 1;
            inner
                .late_us
                .get_or_insert_with(histogram)
                .saturating_record(micros(late));
        }
    }

    /// A call was answered `latency` after it was due.
    pub(crate) fn answered(&self, counted: bool, answer: &Answer, latency: Duration) {
        if !counted {
            return;
        }
        let mut inner = self.lock();
        let now = Instant::now();
        let failed = inner.result.record(answer, latency);
        inner.end(now - self.measured.min(now), Some(latency), failed);
        inner.last_end = Some(now);
    }

    /// A call ended without an answer.
    pub(crate) fn failed(&self, counted: bool, kind: ErrorKind, why: &dyn fmt::Display) {
        if !counted {
            return;
        }
        let mut inner = self.lock();
        let now = Instant::now();
        inner.result.fail(kind, why);
        inner.end(now - self.measured.min(now), None, true);
        inner.last_end = Some(now);
    }

    /// The figures so far.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let r = &inner.result;
        Snapshot {
            completed: r.completed(),
            errors: r.errors,
            p50: r.percentile(50.0),
            p99: r.percentile(99.0),
        }
    }

    /// Keeps `why` as the first error without counting a call: the run itself failed.
    pub(crate) fn note(&self, why: &dyn fmt::Display) {
        self.lock()
            .result
            .first_error
            .get_or_insert_with(|| why.to_string());
    }

    /// Takes the result of the run whose sending stopped at `stopped` (the end of the
    /// measured part; the run lasts longer if its last calls ended after it). Calls
    /// recorded afterwards start a new, empty result.
    pub(crate) fn finish(&self, stopped: Instant) -> RunResult {
        let mut inner = self.lock();
        let end = inner.last_end.map_or(stopped, |e| e.max(stopped));
        let elapsed = end.saturating_duration_since(self.measured);
        let settings = inner.result.settings.clone();
        let fresh = Inner::new(settings);
        let Inner {
            mut result,
            seconds,
            late_us,
            ..
        } = std::mem::replace(&mut *inner, fresh);
        result.elapsed = elapsed;
        result.timeseries = seconds.finish(elapsed);
        result.lateness = late_us.as_ref().map(Lateness::of);
        result
    }
}

impl Inner {
    fn new(settings: RunSettings) -> Self {
        Self {
            seconds: Seconds::new(settings.duration),
            result: RunResult::new(settings),
            last_end: None,
            late_us: None,
        }
    }

    fn end(&mut self, at: Duration, latency: Option<Duration>, failed: bool) {
        self.seconds.add(at, latency, failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::Status;

    fn settings() -> RunSettings {
        RunSettings {
            protocol: "dubbo",
            target: "127.0.0.1:1".into(),
            rate: 0,
            connections: 1,
            concurrency: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
        }
    }

    #[test]
    fn warm_up_calls_are_not_counted() {
        let measured = Instant::now();
        let tally = Tally::new(settings(), measured);
        let ok = Answer {
            status: Status::Code(20),
            failed: false,
        };
        tally.sent(false);
        tally.answered(false, &ok, Duration::from_millis(1));
        tally.failed(false, ErrorKind::Connect, &"refused");
        tally.sent(true);
        tally.answered(true, &ok, Duration::from_millis(3));
        let snap = tally.snapshot();
        assert_eq!(snap.completed, 1);
        assert_eq!(snap.errors, 0);
        let r = tally.finish(measured + Duration::from_secs(1));
        assert_eq!(r.sent, 1);
        assert!(r.lateness.is_none(), "closed loop");
        assert_eq!(r.completed(), 1);
        assert!(r.elapsed >= Duration::from_secs(1));
        assert_eq!(r.timeseries.len(), 1);
        assert!(r.first_error.is_none());
    }

    #[test]
    fn the_run_lasts_until_its_last_call_ended() {
        let measured = Instant::now() - Duration::from_secs(2);
        let tally = Tally::new(settings(), measured);
        tally.sent(true);
        tally.failed(true, ErrorKind::Timeout, &"slow");
        // The sending stopped a second before the timed-out call ended.
        let r = tally.finish(measured + Duration::from_secs(1));
        assert!(r.elapsed >= Duration::from_secs(2), "{:?}", r.elapsed);
        assert_eq!(r.errors_of(ErrorKind::Timeout), 1);
        assert_eq!(r.timeseries.last().map(|p| p.errors), Some(1));
    }
}
