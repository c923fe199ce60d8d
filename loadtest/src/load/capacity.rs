//! `corridor-load capacity --slo 'p99<5ms' <protocol> ...`: the highest open-loop rate
//! whose latency meets an objective.
//!
//! The search multiplies the rate by `--factor` from `--start-rate` until a step misses
//! the objective (or `--max-rate` meets it), then bisects between the best rate met and
//! the lowest missed until they are within `--precision` of each other. Every step is a
//! whole run (warm-up included) at a fixed rate. Latency is timed from each call's
//! intended send time, so a rate the target cannot keep up with misses the objective by
//! itself: its queue grows and so does every latency.

mod slo;
mod steps;

use std::time::Duration;

use serde::Serialize;

pub use self::slo::Slo;
use self::steps::Search;
use super::{
    LoadError, RunResult,
    plan::{Plan, run_once},
    summary::Summary,
};

/// The schema id of [`CapacityJson`].
pub const SCHEMA: &str = "corridor-load/capacity/v1";
/// A step whose achieved rate falls short of its rate by more than this share did not
/// carry its rate (the generator or the connections could not), whatever its latency.
const RATE_SHORTFALL: f64 = 0.05;

/// Flags of `corridor-load capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// The objective: a percentile under a latency, e.g. p99<5ms, p50<2ms, p99.9<20ms.
    #[arg(long)]
    pub slo: Slo,
    /// The first rate tried (calls/s); it should meet the objective.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub start_rate: u64,
    /// The highest rate tried.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rate: u64,
    /// Each step multiplies the rate by this until one misses the objective.
    #[arg(long, default_value_t = 2.0, value_parser = parse_factor)]
    pub factor: f64,
    /// Stop bisecting once the highest rate met and the lowest missed are this share
    /// of the former apart.
    #[arg(long, default_value_t = 0.05, value_parser = parse_share)]
    pub precision: f64,
    /// Measured time of each step [default: --duration].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub step_duration: Option<Duration>,
    /// Share of failed calls (0.0 to 1.0) a step may have and still meet the objective.
    #[arg(long, default_value_t = 0.001, value_parser = parse_share)]
    pub max_error_ratio: f64,
}

fn parse_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 1.0 && f.is_finite() => Ok(f),
        Ok(f) => Err(format!("{f} is not above 1")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        Ok(f) => Err(format!("{f} is outside 0.0 to 1.0")),
        Err(e) => Err(e.to_string()),
    }
}

/// One step of the search.
#[derive(Debug)]
pub struct Step {
    /// Its run.
    pub result: RunResult,
    /// `None` when it met the objective, else why not.
    pub missed: Option<String>,
}

/// The search and its outcome.
#[derive(Debug)]
pub struct Capacity {
    /// The objective.
    pub slo: Slo,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The highest rate that met the objective; `None` when even the start rate missed.
    pub max_rate_meeting_slo: Option<u64>,
}

/// The search, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityJson {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The objective.
    pub slo: SloJson,
    /// Every step's summary, in the order run.
    pub steps: Vec<Summary>,
    /// The highest rate that met the objective.
    pub max_rate_meeting_slo: Option<u64>,
}

/// The objective in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SloJson {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency bound, in milliseconds.
    pub max_ms: f64,
}

/// Runs the search `args` describes with the load of `plan` (its `--rate` is replaced
/// at every step).
pub async fn search<P: Plan>(plan: &P, args: &SearchArgs) -> Result<Capacity, LoadError> {
    if args.start_rate > args.max_rate {
        return Err(LoadError::Request(format!(
            "--start-rate {} is above --max-rate {}",
            args.start_rate, args.max_rate
        )));
    }
    let mut plan = plan.clone();
    if let Some(d) = args.step_duration {
        plan.load_mut().duration = d;
    }
    let mut search = Search::new(args.start_rate, args.max_rate, args.factor, args.precision);
    let mut steps = Vec::new();
    let mut rate = Some(args.start_rate);
    while let Some(r) = rate {
        plan.load_mut().rate = r;
        let label = format!("step {} at {r}/s ", steps.len() + 1);
        let result = run_once(&plan, Some(label)).await?;
        let missed = judge(&args.slo, args.max_error_ratio, &result);
        rate = search.next(missed.is_none());
        steps.push(Step { result, missed });
    }
    Ok(Capacity {
        slo: args.slo,
        steps,
        max_rate_meeting_slo: search.best(),
    })
}

/// `None` when `r` meets `slo` with at most `max_error_ratio` of its calls failed and
/// its rate carried, else why not.
fn judge(slo: &Slo, max_error_ratio: f64, r: &RunResult) -> Option<String> {
    let completed = r.completed();
    if completed == 0 {
        return Some("no call ended".to_owned());
    }
    let latency = r.percentile(slo.percentile);
    if latency >= slo.max {
        return Some(format!("{} was {latency:?}", slo.name()));
    }
    let errors = r.errors as f64 / completed as f64;
    if errors > max_error_ratio {
        return Some(format!("{:.2}% of calls failed", errors * 100.0));
    }
    let rate = r.settings.rate as f64;
    if r.achieved_rate() < rate * (1.0 - RATE_SHORTFALL) {
        return Some(format!("achieved {:.0}/s of {rate}/s", r.achieved_rate()));
    }
    None
}

impl Capacity {
    /// The JSON object.
    pub fn json(&self) -> CapacityJson {
        CapacityJson {
            schema: SCHEMA,
            slo: SloJson {
                percentile: self.slo.percentile,
                max_ms: self.slo.max.as_secs_f64() * 1000.0,
            },
            steps: self.steps.iter().map(|s| Summary::of(&s.result)).collect(),
            max_rate_meeting_slo: self.max_rate_meeting_slo,
        }
    }

    /// One line per step and the outcome, as text.
    pub fn text(&self) -> String {
        let mut lines = vec![format!(
            "{:>10} {:>11} {:>9} {:>9} {:>7}  objective {}",
            "rate/s", "achieved/s", "p50 ms", "p99 ms", "errors", self.slo
        )];
        for step in &self.steps {
            let s = Summary::of(&step.result);
            lines.push(format!(
                "{:>10} {:>11.1} {:>9.3} {:>9.3} {:>7}  {}",
                s.rate_requested.unwrap_or_default(),
                s.achieved_rate,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.requests.errors,
                step.missed
                    .as_deref()
                    .map_or_else(|| "met".to_owned(), |why| format!("missed: {why}")),
            ));
        }
        lines.push(match self.max_rate_meeting_slo {
            Some(rate) => format!("highest rate meeting {}: {rate}/s", self.slo),
            None => format!("no rate met {} (try a lower --start-rate)", self.slo),
        });
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::{Answer, ErrorKind, RunSettings, Status};

    /// A step at `rate` that answered `calls` calls in a second, one of them after
    /// `slowest` and the rest after 1 ms, with `errors` more failed.
    fn step(rate: u64, calls: u64, slowest: Duration, errors: u64) -> RunResult {
        let mut r = RunResult::new(RunSettings {
            protocol: "http",
            target: "gw:80".into(),
            rate,
            connections: 10,
            concurrency: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
        });
        let ok = Answer {
            status: Status::Code(200),
            failed: false,
        };
        for i in 0..calls {
            let latency = if i == 0 {
                slowest
            } else {
                Duration::from_millis(1)
            };
            r.record(&ok, latency);
        }
        for _ in 0..errors {
            r.fail(ErrorKind::Protocol, &"reset");
        }
        r.elapsed = Duration::from_secs(1);
        r
    }

    fn slo(text: &str) -> Slo {
        text.parse().unwrap()
    }

    #[test]
    fn a_step_meets_the_objective_under_its_bound() {
        let r = step(1000, 1000, Duration::from_millis(30), 0);
        assert_eq!(judge(&slo("p99<5ms"), 0.001, &r), None);
        // The one slow call is the maximum: p100 sees it.
        let why = judge(&slo("p100<5ms"), 0.001, &r).unwrap();
        assert!(why.contains("p100 was 30"), "{why}");
    }

    #[test]
    fn too_many_errors_or_a_rate_not_carried_miss_it() {
        let errors = step(1000, 990, Duration::from_millis(1), 10);
        let why = judge(&slo("p99<5ms"), 0.001, &errors).unwrap();
        assert!(why.contains("1.00% of calls failed"), "{why}");
        assert_eq!(judge(&slo("p99<5ms"), 0.02, &errors), None);

        let short = step(1000, 900, Duration::from_millis(1), 0);
        let why = judge(&slo("p99<5ms"), 0.001, &short).unwrap();
        assert!(why.contains("achieved 900/s of 1000/s"), "{why}");

        let nothing = step(1000, 0, Duration::ZERO, 0);
        assert!(judge(&slo("p99<5ms"), 0.001, &nothing).is_some());
    }

    #[test]
    fn the_report_names_the_objective_and_the_best_rate() {
        let capacity = Capacity {
            slo: slo("p99<5ms"),
            steps: vec![
                Step {
                    result: step(100, 100, Duration::from_millis(1), 0),
                    missed: None,
                },
                Step {
                    result: step(200, 200, Duration::from_millis(9), 0),
                    missed: Some("p99 was 9ms".into()),
                },
            ],
            max_rate_meeting_slo: Some(100),
        };
        let json = capacity.json();
        assert_eq!(json.schema, SCHEMA);
        assert_eq!(json.slo.max_ms, 5.0);
        assert_eq!(json.steps.len(), 2);
        let text = capacity.text();
        assert!(text.contains("missed: p99 was 9ms"), "{text}");
        assert!(
            text.ends_with("highest rate meeting p99<5ms: 100/s"),
            "{text}"
        );
    }
}
