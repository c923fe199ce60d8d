//! The live progress line: one line on stderr, rewritten in place while a run goes
//! (elapsed, achieved rate, p50/p99 so far, errors), and erased at the end so the
//! summary stands alone. Shown on a terminal only, unless `--progress always`.

use std::{
    io::{IsTerminal, Write},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use super::{LoadArgs, tally::Snapshot, tally::Tally};

/// How often the line is rewritten: often enough to look live, rarely enough that
/// reading the histogram costs the run nothing.
const REFRESH: Duration = Duration::from_millis(500);
/// Erases the terminal line the cursor is on and goes to its start.
const ERASE_LINE: &str = "\r\x1b[2K";

/// When to show the progress line (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always (a log gets one line per refresh).
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    fn shown(self) -> bool {
        match self {
            Self::Auto => std::io::stderr().is_terminal(),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// A progress line being kept up to date.
#[derive(Debug)]
pub(crate) struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing the progress of the run `tally` records, as `args` says.
    pub(crate) fn start(args: &LoadArgs, tally: Arc<Tally>) -> Self {
        if !args.progress.shown() {
            return Self { task: None };
        }
        let label = args.label.clone().unwrap_or_default();
        let (warmup, duration) = (args.warmup, args.duration);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let now = Instant::now();
                let measured = tally.measured();
                let text = if now < measured {
                    let done = warmup.saturating_sub(measured - now);
                    format!(
                        "{label}warm-up {:.1}s/{:.1}s",
                        done.as_secs_f64(),
                        warmup.as_secs_f64()
                    )
                } else {
                    line(&label, &tally.snapshot(), now - measured, duration)
                };
                // A closed stderr only loses the progress line.
                let _ = write!(std::io::stderr().lock(), "{ERASE_LINE}{text}");
            }
        });
        Self { task: Some(task) }
    }

    /// Stops and erases the line.
    pub(crate) async fn stop(self) {
        if let Some(task) = self.task {
            task.abort();
            // Its Tally clone is dropped once the task is.
            let _ = task.await;
            let _ = write!(std::io::stderr().lock(), "{ERASE_LINE}");
        }
    }
}

/// The line for `snap`, `elapsed` into a measured part of `duration`.
fn line(label: &str, snap: &Snapshot, elapsed: Duration, duration: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        snap.completed as f64 / secs
    } else {
        0.0
    };
    format!(
        "{label}{secs:.1}s/{:.1}s  {rate:.0}/s  p50 {:.3}ms  p99 {:.3}ms  errors {}",
        duration.as_secs_f64(),
        snap.p50.as_secs_f64() * 1000.0,
        snap.p99.as_secs_f64() * 1000.0,
        snap.errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_time_rate_percentiles_and_errors() {
        let snap = Snapshot {
            completed: 2500,
            errors: 3,
            p50: Duration::from_micros(1250),
            p99: Duration::from_millis(12),
        };
        let text = line(
            "gateway 1/3 ",
            &snap,
            Duration::from_millis(2500),
            Duration::from_secs(10),
        );
        assert_eq!(
            text,
            "gateway 1/3 2.5s/10.0s  1000/s  p50 1.250ms  p99 12.000ms  errors 3"
        );
    }

    #[test]
    fn never_is_never_shown() {
        assert!(!ProgressMode::Never.shown());
        assert!(ProgressMode::Always.shown());
    }
}
