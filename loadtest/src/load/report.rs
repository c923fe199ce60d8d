//! Latency histograms and the text/JSON report.

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// An answer's status as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// A numeric status: HTTP's, or Dubbo's status byte (20 OK, 70 service error, ...).
    Code(u16),
    /// A named outcome: Thrift `reply` or `exception`.
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
    /// Whether it reports a failure (Dubbo status other than 20 or an exception,
    /// Thrift exception). HTTP answers never do: non-2xx are counted on their own.
    pub failed: bool,
}

/// What one lane saw.
#[derive(Debug)]
pub struct Outcome {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<Status, u64>,
    /// Calls that failed: no answer, or an answer reporting a failure.
    pub errors: u64,
    /// The first failure, to say why.
    first_error: Option<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Self::new()
    }
}

impl Outcome {
    /// An empty outcome (1 µs to 60 s, 3 significant digits).
    pub fn new() -> Self {
        Self {
            latency_us: new_histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            first_error: None,
        }
    }

    /// An outcome standing for a lane whose counts were lost.
    pub fn lost(why: &str) -> Self {
        let mut out = Self::new();
        out.fail(&format!("a load task failed: {why}"));
        out
    }

    /// Records one answer and its latency.
    pub fn record(&mut self, answer: &Answer, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 60_000_000);
        let _ = self.latency_us.record(us);
        *self.statuses.entry(answer.status).or_default() += 1;
        if answer.failed {
            self.errors += 1;
            self.first_error
                .get_or_insert_with(|| format!("answer with status {}", answer.status));
        }
    }

    /// Records a call that got no answer.
    pub fn fail(&mut self, why: &dyn fmt::Display) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| why.to_string());
    }
}

#[allow(clippy::expect_used)] // constant bounds, within hdrhistogram's limits: cannot fail
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The whole run.
#[derive(Debug)]
pub struct RunResult {
    protocol: &'static str,
    rate: u64,
    connections: usize,
    concurrency: usize,
    latency_us: Histogram<u64>,
    statuses: BTreeMap<Status, u64>,
    /// Calls that failed (see [`Outcome::errors`]).
    pub errors: u64,
    /// The first failure seen, to say why.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl RunResult {
    /// An empty result for a `protocol` run at `rate` (0 = closed loop) over
    /// `connections` with `concurrency` calls in flight on each.
    pub fn new(protocol: &'static str, rate: u64, connections: usize, concurrency: usize) -> Self {
        Self {
            protocol,
            rate,
            connections,
            concurrency,
            latency_us: new_histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Adds one lane's outcome.
    pub fn merge(&mut self, o: Outcome) {
        let _ = self.latency_us.add(&o.latency_us);
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// Calls answered (whatever the answer said).
    pub fn answered(&self) -> u64 {
        self.latency_us.len()
    }

    /// How many answers had `status`.
    pub fn count(&self, status: Status) -> u64 {
        self.statuses.get(&status).copied().unwrap_or_default()
    }

    fn summary(&self) -> Summary {
        let q = |p: f64| self.latency_us.value_at_quantile(p) as f64 / 1000.0;
        let requests = self.latency_us.len();
        let non_2xx = if self.protocol == "http" {
            self.statuses
                .iter()
                .filter(|(s, _)| !matches!(s, Status::Code(200..=299)))
                .map(|(_, n)| n)
                .sum()
        } else {
            0
        };
        Summary {
            protocol: self.protocol,
            mode: if self.rate > 0 {
                "open-loop"
            } else {
                "closed-loop"
            },
            target_rate: self.rate,
            connections: self.connections,
            concurrency: self.concurrency,
            requests,
            errors: self.errors,
            non_2xx,
            achieved_rps: requests as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: self.latency_us.max() as f64 / 1000.0,
            statuses: self
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    protocol: &'static str,
    mode: &'static str,
    target_rate: u64,
    connections: usize,
    concurrency: usize,
    requests: u64,
    errors: u64,
    non_2xx: u64,
    achieved_rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    statuses: BTreeMap<String, u64>,
}

/// The summary as one line of text or one JSON object.
pub fn render(r: &RunResult, json: bool) -> Result<String, serde_json::Error> {
    let s = r.summary();
    if json {
        return serde_json::to_string(&s);
    }
    Ok(format!(
        "{} rate={} conns={} requests={} errors={} non2xx={} rps={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        s.mode,
        s.target_rate,
        s.connections,
        s.requests,
        s.errors,
        s.non_2xx,
        s.achieved_rps,
        s.p50_ms,
        s.p90_ms,
        s.p99_ms,
        s.p999_ms,
        s.max_ms
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_keeps_its_json_fields_and_counts_non_2xx_apart() {
        let mut o = Outcome::new();
        let ok = Answer {
            status: Status::Code(200),
            failed: false,
        };
        let missing = Answer {
            status: Status::Code(404),
            failed: false,
        };
        o.record(&ok, Duration::from_millis(2));
        o.record(&missing, Duration::from_millis(4));
        o.fail(&"refused");
        let mut r = RunResult::new("http", 100, 2, 1);
        r.merge(o);
        r.elapsed = Duration::from_secs(1);
        let v: serde_json::Value = serde_json::from_str(&render(&r, true).unwrap()).unwrap();
        // The fields loadtest/bench-http.sh reads.
        assert_eq!(v["errors"], 1);
        assert_eq!(v["non_2xx"], 1);
        assert_eq!(v["requests"], 2);
        assert!(v["p50_ms"].as_f64().unwrap() > 1.0);
        assert!(v["p99_ms"].as_f64().unwrap() > 3.0);
        assert_eq!(v["statuses"]["200"], 1);
        assert_eq!(v["mode"], "open-loop");
        assert_eq!(r.first_error.as_deref(), Some("refused"));
        let text = render(&r, false).unwrap();
        assert!(
            text.starts_with("open-loop rate=100 conns=2 requests=2 errors=1 non2xx=1 "),
            "{text}"
        );
    }

    #[test]
    fn failed_answers_are_errors_with_their_status() {
        let mut o = Outcome::new();
        o.record(
            &Answer {
                status: Status::Code(20),
                failed: false,
            },
            Duration::from_millis(1),
        );
        o.record(
            &Answer {
                status: Status::Name("exception"),
                failed: true,
            },
            Duration::from_millis(1),
        );
        let mut r = RunResult::new("thrift", 0, 1, 1);
        r.merge(o);
        let v: serde_json::Value = serde_json::from_str(&render(&r, true).unwrap()).unwrap();
        assert_eq!(v["errors"], 1);
        assert_eq!(v["non_2xx"], 0);
        assert_eq!(v["requests"], 2);
        assert_eq!(v["statuses"]["exception"], 1);
        assert_eq!(v["protocol"], "thrift");
        assert_eq!(
            r.first_error.as_deref(),
            Some("answer with status exception")
        );
    }
}
