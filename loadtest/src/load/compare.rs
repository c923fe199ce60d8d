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
