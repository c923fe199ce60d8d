//! `--compare DIRECT_ADDR`: the same load straight at the backend and through the
//! gateway, in alternating rounds (direct, gateway, direct, ...), so a drift of the
//! machine over time (another job, thermal throttling, a cache warming up) falls on
//! both sides alike. Each side's rounds are merged into one summary.

use serde::Serialize;

use super::{
    LoadError, RunResult,
    plan::{Plan, run_once},
    summary::Summary,
};

/// The schema id of [`CompareJson`].
pub const SCHEMA: &str = "corridor-load/compare/v1";

/// Both sides of a comparison.
#[derive(Debug)]
pub struct Comparison {
    /// Rounds per side.
    pub rounds: usize,
    /// Straight at the backend, rounds merged.
    pub direct: RunResult,
    /// Through the gateway (the plan's own target), rounds merged.
    pub gateway: RunResult,
}

/// A comparison, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareJson {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Rounds per side.
    pub rounds: usize,
    /// Straight at the backend.
    pub direct: Summary,
    /// Through the gateway.
    pub gateway: Summary,
    /// Gateway over direct.
    pub ratios: Ratios,
}

/// Gateway over direct; `None` where direct measured nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    /// Achieved rate.
    pub rate: Option<f64>,
    /// Median latency.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Runs `plan` against `direct` and its own target in `rounds` alternating rounds.
pub async fn run<P: Plan>(plan: &P, direct: &str, rounds: usize) -> Result<Comparison, LoadError> {
    let rounds = rounds.max(1);
    let mut straight = plan.clone();
    straight.retarget(direct);
    let label = |side: &str, round: usize| Some(format!("{side} {round}/{rounds} "));
    let mut direct = run_once(&straight, label("direct", 1)).await?;
    let mut gateway = run_once(plan, label("gateway", 1)).await?;
    for round in 2..=rounds {
        direct.merge(run_once(&straight, label("direct", round)).await?);
        gateway.merge(run_once(plan, label("gateway", round)).await?);
    }
    Ok(Comparison {
        rounds,
        direct,
        gateway,
    })
}

impl Comparison {
    /// Gateway over direct.
    pub fn ratios(&self) -> Ratios {
        let ratio = |g: f64, d: f64| (d > 0.0).then(|| g / d);
        let (d, g) = (Summary::of(&self.direct), Summary::of(&self.gateway));
        Ratios {
            rate: ratio(g.achieved_rate, d.achieved_rate),
            p50: ratio(g.latency_ms.p50, d.latency_ms.p50),
            p99: ratio(g.latency_ms.p99, d.latency_ms.p99),
        }
    }

    /// The JSON object.
    pub fn json(&self) -> CompareJson {
        CompareJson {
            schema: SCHEMA,
            rounds: self.rounds,
            direct: Summary::of(&self.direct),
            gateway: Summary::of(&self.gateway),
            ratios: self.ratios(),
        }
    }

    /// Both summaries and the ratios, as text.
    pub fn text(&self) -> String {
        let show = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let ratios = self.ratios();
        format!(
            "direct ({rounds} rounds)\n{}\ngateway ({rounds} rounds)\n{}\ngateway/direct: rate {}  p50 {}  p99 {}",
            Summary::of(&self.direct).text(),
            Summary::of(&self.gateway).text(),
            show(ratios.rate),
            show(ratios.p50),
            show(ratios.p99),
            rounds = self.rounds,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::report::{Answer, RunSettings, Status};

    fn side(calls: u64, latency_ms: u64) -> RunResult {
        let mut r = RunResult::new(RunSettings {
            protocol: "thrift",
            target: "a:1".into(),
            rate: 0,
            connections: 1,
            concurrency: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
        });
        let ok = Answer {
            status: Status::Name("reply"),
            failed: false,
        };
        for _ in 0..calls {
            r.record(&ok, Duration::from_millis(latency_ms));
        }
        r.elapsed = Duration::from_secs(1);
        r
    }

    #[test]
    fn ratios_are_gateway_over_direct() {
        let c = Comparison {
            rounds: 3,
            direct: side(1000, 2),
            gateway: side(800, 3),
        };
        let r = c.ratios();
        assert!((r.rate.unwrap() - 0.8).abs() < 1e-9);
        assert!((r.p50.unwrap() - 1.5).abs() < 0.01);
        assert!(
            c.text()
                .ends_with("gateway/direct: rate 0.80x  p50 1.50x  p99 1.50x")
        );
        assert_eq!(c.json().schema, SCHEMA);
    }

    #[test]
    fn a_direct_side_without_answers_has_no_ratios() {
        let c = Comparison {
            rounds: 1,
            direct: side(0, 1),
            gateway: side(10, 1),
        };
        assert_eq!(
            c.ratios(),
            Ratios {
                rate: None,
                p50: None,
                p99: None
            }
        );
        assert!(c.text().ends_with("rate -  p50 -  p99 -"));
    }
}
