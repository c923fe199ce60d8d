//! The summary of a run as JSON (`corridor-load/summary/v1`, documented in docs/load.md,
//! schema in loadtest/schema/summary.schema.json) and as text.

use std::{collections::BTreeMap, fmt::Write};

use serde::Serialize;

use super::{
    report::{ErrorKind, Lateness, RunResult},
    timeseries::Point,
};

/// The schema id of [`Summary`].
pub const SCHEMA: &str = "corridor-load/summary/v1";
/// Steps per halving of the distance to 100 % in the percentile distribution: what
/// HdrHistogram's own percentile output uses; about 100 points for a million calls.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A run, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// `http`, `grpc`, `dubbo`, `thrift`, `redis` or `dns`.
    pub protocol: &'static str,
    /// Where the calls went, as given.
    pub target: String,
    /// `open` (fixed rate) or `closed` (as fast as answers come).
    pub mode: &'static str,
    /// `--rate` in open loop; `None` in closed loop.
    pub rate_requested: Option<u64>,
    /// Connections.
    pub connections: usize,
    /// Calls in flight per connection.
    pub concurrency: usize,
    /// Measured time asked (`--duration`), in seconds.
    pub duration_s: f64,
    /// Warm-up before it (`--warmup`), in seconds.
    pub warmup_s: f64,
    /// Wall time of the measured part, in seconds: until the last call ended.
    pub elapsed_s: f64,
    /// Calls by outcome.
    pub requests: Requests,
    /// `requests.completed / elapsed_s`.
    pub achieved_rate: f64,
    /// Failed calls by kind.
    pub errors: Errors,
    /// Answers by status (HTTP status, Dubbo status byte, gRPC code, ...).
    pub statuses: BTreeMap<String, u64>,
    /// Latency of answered calls, in milliseconds.
    pub latency_ms: Latency,
    /// The latency distribution, HdrHistogram's percentile steps.
    pub percentiles: Vec<PercentilePoint>,
    /// One point per second.
    pub timeseries: Vec<Point>,
    /// The first failure.
    pub first_error: Option<String>,
    /// How late calls left: shown in the text, left out of the JSON (a figure about the
    /// generator, not the target).
    #[serde(skip)]
    pub lateness: Option<Lateness>,
}

/// Calls by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// Issued in the measured part.
    pub sent: u64,
    /// Ended: answered or failed.
    pub completed: u64,
    /// Ended without error.
    pub ok: u64,
    /// Ended with an error.
    pub errors: u64,
}

/// Failed calls by kind (see [`ErrorKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// The connection could not be opened.
    pub connect: u64,
    /// No answer within `--timeout`.
    pub timeout: u64,
    /// Unreadable bytes, codec errors, resets.
    pub protocol: u64,
    /// Answers reporting a failure.
    pub status: u64,
}

/// Latency figures, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// One step of the percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentilePoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency at it.
    pub latency_ms: f64,
    /// Answered calls at or below that latency.
    pub count: u64,
}

impl Summary {
    /// The summary of `r`.
    pub fn of(r: &RunResult) -> Self {
        let s = &r.settings;
        let h = r.latency();
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| ms(h.value_at_quantile(q));
        let latency = Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            stddev: h.stdev() / 1000.0,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: ms(h.max()),
        };
        let mut percentiles = Vec::new();
        let mut count = 0;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            count += v.count_since_last_iteration();
            percentiles.push(PercentilePoint {
                percentile: v.percentile(),
                latency_ms: ms(v.value_iterated_to()),
                count,
            });
        }
        let completed = r.completed();
        Self {
            schema: SCHEMA,
            protocol: s.protocol,
            target: s.target.clone(),
            mode: if s.rate > 0 { "open" } else { "closed" },
            rate_requested: (s.rate > 0).then_some(s.rate),
            connections: s.connections,
            concurrency: s.concurrency,
            duration_s: s.duration.as_secs_f64(),
            warmup_s: s.warmup.as_secs_f64(),
            elapsed_s: r.elapsed.as_secs_f64(),
            requests: Requests {
                sent: r.sent,
                completed,
                ok: completed.saturating_sub(r.errors),
                errors: r.errors,
            },
            achieved_rate: r.achieved_rate(),
            errors: Errors {
                connect: r.errors_of(ErrorKind::Connect),
                timeout: r.errors_of(ErrorKind::Timeout),
                protocol: r.errors_of(ErrorKind::Protocol),
                status: r.errors_of(ErrorKind::Status),
            },
            statuses: r.statuses().map(|(s, n)| (s.to_string(), n)).collect(),
            latency_ms: latency,
            percentiles,
            timeseries: r.timeseries.clone(),
            first_error: r.first_error.clone(),
            lateness: r.lateness,
        }
    }

    /// The summary as a few lines of text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let load = match self.rate_requested {
            Some(rate) => format!("open loop at {rate}/s"),
            None => "closed loop".to_owned(),
        };
        let warmup = if self.warmup_s > 0.0 {
            format!(" after {:.1}s warm-up", self.warmup_s)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} {}: {load}, {} connections x {}, {:.1}s{warmup}",
            self.protocol, self.target, self.connections, self.concurrency, self.elapsed_s
        );
        let q = &self.requests;
        let _ = writeln!(
            out,
            "  calls     {} sent, {} completed, {} ok, {} errors; {:.1}/s",
            q.sent, q.completed, q.ok, q.errors, self.achieved_rate
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "  latency   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}  (ms)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if let Some(late) = self.lateness {
            let _ = writeln!(
                out,
                "  sending   late by p50 {}us  p99 {}us  max {}us",
                late.p50.as_micros(),
                late.p99.as_micros(),
                late.max.as_micros()
            );
        }
        let e = &self.errors;
        if q.errors > 0 {
            let _ = writeln!(
                out,
                "  errors    connect {}  timeout {}  protocol {}  status {}",
                e.connect, e.timeout, e.protocol, e.status
            );
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        if !statuses.is_empty() {
            let _ = writeln!(out, "  statuses  {}", statuses.join(", "));
        }
        if let Some(why) = &self.first_error {
            let _ = writeln!(out, "  first error: {why}");
        }
        out.truncate(out.trim_end().len());
        out
    }
}
