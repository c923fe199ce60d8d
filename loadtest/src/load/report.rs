//! What a run measured: the latency histogram, the calls by outcome, the time series, and
//! how late the pacer was. The JSON and text forms are in [`super::summary`].

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;

use super::timeseries::Point;

/// Longest latency the histograms hold (an hour); longer ones are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant digits of every histogram: 0.1 % resolution, HdrHistogram's usual.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram in microseconds, 1 µs to an hour.
#[allow(clippy::expect_used)] // constant bounds, within hdrhistogram's limits: cannot fail
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
        .expect("valid histogram bounds")
}

/// `d` in whole microseconds for a histogram (at least 1, at most an hour).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// An answer's status as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// A numeric status: HTTP's, or Dubbo's status byte (20 OK, 70 service error, ...).
    Code(u16),
    /// A named outcome: Thrift `reply` or `exception`, a gRPC code, a DNS rcode, ...
    Name(&'static str),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "{c}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// One call's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Its status.
    pub status: Status,
    /// Whether it reports a failure: counted as a `status` error. The protocol decides
    /// (Dubbo status other than 20, a Thrift exception, HTTP 4xx/5xx, ...).
    pub failed: bool,
}

/// Why a call counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be opened.
    Connect,
    /// No answer within `--timeout` (open loop: of the call's intended send time).
    Timeout,
    /// Bytes that could not be read, a codec error, a reset or closed connection.
    Protocol,
    /// An answer that reports a failure ([`Answer::failed`]).
    Status,
}

impl ErrorKind {
    /// Every kind, in the order of the report.
    pub const ALL: [Self; 4] = [Self::Connect, Self::Timeout, Self::Protocol, Self::Status];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::Status => "status",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How late open-loop calls left after they were due: the generator's own delay (a
/// starved pacer or lanes), or no free lane (all connections busy), charged to every
/// call it touched. Large figures with free lanes mean the load generator was starved
/// of CPU, and the run measured the generator rather than the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lateness {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Latest.
    pub max: Duration,
}

impl Lateness {
    /// The figures of a histogram of lateness in microseconds.
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
        }
    }
}

/// The settings a run was made with, as the report shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// `http`, `dubbo`, ...
    pub protocol: &'static str,
    /// Where the calls went, as given.
    pub target: String,
    /// Calls per second asked; 0 = closed loop.
    pub rate: u64,
    /// Connections.
    pub connections: usize,
    /// Calls in flight per connection.
    pub concurrency: usize,
    /// Measured time asked.
    pub duration: Duration,
    /// Warm-up before it.
    pub warmup: Duration,
}

/// The whole run, or several runs merged.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What was asked.
    pub settings: RunSettings,
    /// Wall time of the measured part: from the end of the warm-up until the last
    /// counted call ended (summed over merged runs).
    pub elapsed: Duration,
    /// Calls issued in the measured part (open loop: the calls due in it).
    pub sent: u64,
    /// Calls that failed, of any kind.
    pub errors: u64,
    /// The first failure, to say why.
    pub first_error: Option<String>,
    /// One point per second of the measured part.
    pub timeseries: Vec<Point>,
    /// How late calls left (open loop).
    pub lateness: Option<Lateness>,
    latency_us: Histogram<u64>,
    statuses: BTreeMap<Status, u64>,
    by_kind: [u64; ErrorKind::ALL.len()],
    failed_unanswered: u64,
}

impl RunResult {
    /// An empty result of a run with `settings`.
    pub fn new(settings: RunSettings) -> Self {
        Self {
            settings,
            elapsed: Duration::ZERO,
            sent: 0,
            errors: 0,
            first_error: None,
            timeseries: Vec::new(),
            lateness: None,
            latency_us: histogram(),
            statuses: BTreeMap::new(),
            by_kind: [0; ErrorKind::ALL.len()],
            failed_unanswered: 0,
        }
    }

    /// Records one answer timed at `latency`; says whether it counts as an error.
    pub fn record(&mut self, answer: &Answer, latency: Duration) -> bool {
        self.latency_us.saturating_record(micros(latency));
        *self.statuses.entry(answer.status).or_default() += 1;
        if answer.failed {
            self.count_error(
                ErrorKind::Status,
                &format_args!("answer with status {}", answer.status),
            );
        }
        answer.failed
    }

    /// Records a call that ended without an answer.
    pub fn fail(&mut self, kind: ErrorKind, why: &dyn fmt::Display) {
        self.failed_unanswered += 1;
        self.count_error(kind, why);
    }

    fn count_error(&mut self, kind: ErrorKind, why: &dyn fmt::Display) {
        self.errors += 1;
        self.by_kind[kind.index()] += 1;
        self.first_error.get_or_insert_with(|| why.to_string());
    }

    /// Adds another run's counts (a later round of the same load): histograms and
    /// counts add up, wall times add, and its time series follows this one's.
    pub fn merge(&mut self, other: Self) {
        // Both histograms have the same bounds: adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        for (mine, theirs) in self.by_kind.iter_mut().zip(other.by_kind) {
            *mine += theirs;
        }
        let offset = self.elapsed.as_secs_f64();
        self.timeseries
            .extend(other.timeseries.into_iter().map(|p| Point {
                t_s: p.t_s + offset,
                ..p
            }));
        self.elapsed += other.elapsed;
        self.sent += other.sent;
        self.errors += other.errors;
        self.failed_unanswered += other.failed_unanswered;
        self.first_error = self.first_error.take().or(other.first_error);
        self.lateness = match (self.lateness, other.lateness) {
            (Some(a), Some(b)) => Some(Lateness {
                p50: a.p50.max(b.p50),
                p99: a.p99.max(b.p99),
                max: a.max.max(b.max),
            }),
            (a, b) => a.or(b),
        };
    }

    /// Calls answered (whatever the answer said).
    pub fn answered(&self) -> u64 {
        self.latency_us.len()
    }

    /// Calls that ended: answered, or failed without an answer.
    pub fn completed(&self) -> u64 {
        self.answered() + self.failed_unanswered
    }

    /// How many answers had `status`.
    pub fn count(&self, status: Status) -> u64 {
        self.statuses.get(&status).copied().unwrap_or_default()
    }

    /// Answers by status.
    pub fn statuses(&self) -> impl Iterator<Item = (Status, u64)> + '_ {
        self.statuses.iter().map(|(s, n)| (*s, *n))
    }

    /// Errors of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.by_kind[kind.index()]
    }

    /// The latency of answered calls, in microseconds (open loop: from each call's
    /// intended send time).
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency_us
    }

    /// Ended calls per second of measured wall time.
    pub fn achieved_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed() as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at `percentile` (0 to 100).
    pub fn percentile(&self, percentile: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_percentile(percentile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RunSettings {
        RunSettings {
            protocol: "http",
            target: "127.0.0.1:1".into(),
            rate: 100,
            connections: 2,
            concurrency: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
        }
    }

    const OK: Answer = Answer {
        status: Status::Code(200),
        failed: false,
    };
    const FAILED: Answer = Answer {
        status: Status::Code(503),
        failed: true,
    };

    #[test]
    fn errors_are_counted_by_kind_and_the_first_is_kept() {
        let mut r = RunResult::new(settings());
        assert!(!r.record(&OK, Duration::from_millis(2)));
        assert!(r.record(&FAILED, Duration::from_millis(4)));
        r.fail(ErrorKind::Connect, &"refused");
        r.fail(ErrorKind::Timeout, &"slow");
        assert_eq!(r.answered(), 2);
        assert_eq!(r.completed(), 4);
        assert_eq!(r.errors, 3);
        assert_eq!(r.errors_of(ErrorKind::Status), 1);
        assert_eq!(r.errors_of(ErrorKind::Connect), 1);
        assert_eq!(r.errors_of(ErrorKind::Timeout), 1);
        assert_eq!(r.errors_of(ErrorKind::Protocol), 0);
        assert_eq!(r.count(Status::Code(503)), 1);
        assert_eq!(r.first_error.as_deref(), Some("answer with status 503"));
    }

    #[test]
    fn merging_adds_counts_and_appends_the_time_series() {
        let point = |t_s| Point {
            t_s,
            rate: 10.0,
            p50_ms: Some(1.0),
            p99_ms: Some(2.0),
            errors: 0,
        };
        let mut a = RunResult::new(settings());
        a.record(&OK, Duration::from_millis(1));
        a.sent = 1;
        a.elapsed = Duration::from_secs(2);
        a.timeseries = vec![point(1.0), point(2.0)];
        let mut b = RunResult::new(settings());
        b.record(&OK, Duration::from_millis(9));
        b.fail(ErrorKind::Protocol, &"reset");
        b.sent = 2;
        b.elapsed = Duration::from_secs(1);
        b.timeseries = vec![point(1.0)];
        a.merge(b);
        assert_eq!(a.answered(), 2);
        assert_eq!(a.completed(), 3);
        assert_eq!(a.sent, 3);
        assert_eq!(a.errors_of(ErrorKind::Protocol), 1);
        assert_eq!(a.elapsed, Duration::from_secs(3));
        let ts: Vec<f64> = a.timeseries.iter().map(|p| p.t_s).collect();
        assert_eq!(ts, [1.0, 2.0, 3.0]);
        assert!((a.achieved_rate() - 1.0).abs() < 1e-9);
        assert_eq!(a.first_error.as_deref(), Some("reset"));
    }

    #[test]
    fn latencies_beyond_an_hour_are_kept_as_an_hour() {
        let mut r = RunResult::new(settings());
        r.record(&OK, Duration::from_secs(7200));
        r.record(&OK, Duration::ZERO);
        assert_eq!(r.answered(), 2);
        assert!(r.latency().max() >= MAX_LATENCY_US);
        assert_eq!(r.latency().min(), 1);
    }
}
