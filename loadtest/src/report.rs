//! Latency histograms and the text/JSON report.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one connection saw.
#[derive(Debug)]
pub struct Outcome {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (connect error, reset, protocol error).
    pub errors: u64,
}

impl Outcome {
    /// An empty outcome (1 µs to 60 s, 3 significant digits).
    pub fn new() -> Self {
        Self { latency_us: new_histogram(), statuses: BTreeMap::new(), errors: 0 }
    }

    /// Records one response.
    pub fn record(&mut self, status: u16, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        let _ = self.latency_us.record(us);
        *self.statuses.entry(status).or_default() += 1;
    }
}

#[allow(clippy::expect_used)] // constant bounds, within hdrhistogram's limits: cannot fail
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The whole run.
#[derive(Debug)]
pub struct RunResult {
    rate: u64,
    connections: usize,
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no response.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl RunResult {
    /// An empty result for a run at `rate` (0 = closed loop) over `connections`.
    pub fn new(rate: u64, connections: usize) -> Self {
        Self { rate, connections, latency_us: new_histogram(), statuses: BTreeMap::new(), errors: 0, elapsed: Duration::ZERO }
    }

    /// Adds one connection's outcome.
    pub fn merge(&mut self, o: Outcome) {
        let _ = self.latency_us.add(&o.latency_us);
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += o.errors;
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    mode: &'static str,
    target_rate: u64,
    connections: usize,
    requests: u64,
    errors: u64,
    non_2xx: u64,
    achieved_rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    statuses: BTreeMap<u16, u64>,
}

/// Prints the summary as text or JSON.
pub fn print(r: &RunResult, json: bool) -> anyhow::Result<()> {
    let q = |p: f64| r.latency_us.value_at_quantile(p) as f64 / 1000.0;
    let requests = r.latency_us.len();
    let s = Summary {
        mode: if r.rate > 0 { "open-loop" } else { "closed-loop" },
        target_rate: r.rate,
        connections: r.connections,
        requests,
        errors: r.errors,
        non_2xx: r.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum(),
        achieved_rps: requests as f64 / r.elapsed.as_secs_f64().max(1e-9),
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: r.latency_us.max() as f64 / 1000.0,
        statuses: r.statuses.clone(),
    };
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "{} rate={} conns={} requests={} errors={} non2xx={} rps={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
            s.mode, s.target_rate, s.connections, s.requests, s.errors, s.non_2xx, s.achieved_rps, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
        );
    }
    Ok(())
}
