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

/// `x` rounded to 6 decimals: microseconds of a time in seconds or nanoseconds of one in
/// milliseconds, beyond what any figure here measures.
fn micro(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
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
            mean: micro(h.mean() / 1000.0),
            stddev: micro(h.stdev() / 1000.0),
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
            elapsed_s: micro(r.elapsed.as_secs_f64()),
            requests: Requests {
                sent: r.sent,
                completed,
                ok: completed.saturating_sub(r.errors),
                errors: r.errors,
            },
            achieved_rate: micro(r.achieved_rate()),
            errors: Errors {
                connect: r.errors_of(ErrorKind::Connect),
                timeout: r.errors_of(ErrorKind::Timeout),
                protocol: r.errors_of(ErrorKind::Protocol),
                status: r.errors_of(ErrorKind::Status),
            },
            statuses: r.statuses().map(|(s, n)| (s.to_string(), n)).collect(),
            latency_ms: latency,
            percentiles,
            timeseries: r
                .timeseries
                .iter()
                .map(|p| Point {
                    t_s: micro(p.t_s),
                    rate: micro(p.rate),
                    ..*p
                })
                .collect(),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::report::{Answer, RunSettings, Status};

    fn result(rate: u64) -> RunResult {
        let mut r = RunResult::new(RunSettings {
            protocol: "dubbo",
            target: "gw:20880".into(),
            rate,
            connections: 4,
            concurrency: 2,
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
        });
        for ms in 1..=100 {
            let answer = Answer {
                status: Status::Code(if ms == 100 { 70 } else { 20 }),
                failed: ms == 100,
            };
            r.record(&answer, Duration::from_millis(ms));
        }
        r.fail(ErrorKind::Timeout, &"no answer within 5s");
        r.sent = 101;
        r.elapsed = Duration::from_secs(2);
        r
    }

    #[test]
    fn the_json_has_the_v1_fields_in_order() {
        let line = serde_json::to_string(&Summary::of(&result(50))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys = [
            "schema",
            "protocol",
            "target",
            "mode",
            "rate_requested",
            "connections",
            "concurrency",
            "duration_s",
            "warmup_s",
            "elapsed_s",
            "requests",
            "achieved_rate",
            "errors",
            "statuses",
            "latency_ms",
            "percentiles",
            "timeseries",
            "first_error",
        ];
        let mut at = 0;
        for key in keys {
            let found = line[at..]
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} missing or out of order in {line}"));
            at += found;
        }
        assert_eq!(v.as_object().unwrap().len(), keys.len());
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["mode"], "open");
        assert_eq!(v["rate_requested"], 50);
        assert_eq!(v["requests"]["sent"], 101);
        assert_eq!(v["requests"]["completed"], 101);
        assert_eq!(v["requests"]["ok"], 99);
        assert_eq!(v["requests"]["errors"], 2);
        assert_eq!(v["errors"]["status"], 1);
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["statuses"]["20"], 99);
        assert_eq!(v["statuses"]["70"], 1);
        assert_eq!(v["achieved_rate"], 50.5);
        assert_eq!(v["first_error"], "answer with status 70");
    }

    #[test]
    fn latency_is_in_milliseconds_and_the_distribution_reaches_every_call() {
        let s = Summary::of(&result(0));
        assert_eq!(s.mode, "closed");
        assert_eq!(s.rate_requested, None);
        assert!((s.latency_ms.p50 - 50.0).abs() < 0.1, "{:?}", s.latency_ms);
        assert!((s.latency_ms.max - 100.0).abs() < 0.1);
        assert!((s.latency_ms.min - 1.0).abs() < 0.01);
        let last = s.percentiles.last().unwrap();
        assert_eq!(last.percentile, 100.0);
        assert_eq!(last.count, 100);
        assert!(
            s.percentiles
                .windows(2)
                .all(|w| w[0].percentile <= w[1].percentile && w[0].count <= w[1].count)
        );
    }

    #[test]
    fn the_text_shows_the_load_the_calls_and_the_errors() {
        let text = Summary::of(&result(50)).text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "dubbo gw:20880: open loop at 50/s, 4 connections x 2, 2.0s after 0.5s warm-up"
        );
        assert_eq!(
            lines[1],
            "  calls     101 sent, 101 completed, 99 ok, 2 errors; 50.5/s"
        );
        assert!(lines[2].starts_with("  latency   p50 50."), "{text}");
        assert!(
            text.contains("connect 0  timeout 1  protocol 0  status 1"),
            "{text}"
        );
        assert!(text.contains("statuses  20: 99, 70: 1"), "{text}");
        assert!(
            text.ends_with("first error: answer with status 70"),
            "{text}"
        );
    }
}
