//! The driver against in-memory targets: what is counted, and how failures are kinded.
//! (Timing figures are measured in tests/driver_timing.rs.)

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::load::{ProgressMode, report::Status};

/// A target answering at once (or failing as told), counting the calls it got.
#[derive(Default)]
struct Fake {
    calls: AtomicU64,
    refuse: bool,
    hang: bool,
    reset: bool,
}

impl Target for Fake {
    const PROTOCOL: &'static str = "fake";
    type Conn = ();

    async fn connect(&self) -> Result<(), CallError> {
        if self.refuse {
            return Err(CallError::Connect {
                addr: ([127, 0, 0, 1], 1).into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            });
        }
        Ok(())
    }

    async fn call(&self, _: &()) -> Result<Answer, CallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if self.reset {
            return Err(CallError::Closed);
        }
        Ok(Answer {
            status: Status::Name("ok"),
            failed: false,
        })
    }
}

fn args(rate: u64, warmup_ms: u64, duration_ms: u64) -> LoadArgs {
    LoadArgs {
        rate,
        connections: 2,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
        progress: ProgressMode::Never,
        ..LoadArgs::default()
    }
}

#[tokio::test]
async fn warm_up_calls_are_sent_but_not_counted() {
    let fake = Arc::new(Fake::default());
    let r = run(fake.clone(), &args(100, 100, 200), 1).await;
    assert_eq!(r.sent, 20);
    assert_eq!(r.completed(), 20);
    assert_eq!(r.count(Status::Name("ok")), 20);
    assert_eq!(fake.calls.load(Ordering::Relaxed), 30);
    assert_eq!(r.settings.warmup, Duration::from_millis(100));
    assert!(
        r.lateness.is_some(),
        "open loop measures how late calls left"
    );
}

#[tokio::test]
async fn a_slow_open_loop_lasts_its_duration() {
    let r = run(Arc::new(Fake::default()), &args(2, 0, 1000), 1).await;
    assert_eq!(r.sent, 2);
    // The last call left at 0.5 s; the run still spans its second.
    assert!(r.elapsed >= Duration::from_secs(1), "{:?}", r.elapsed);
    assert_eq!(r.timeseries.len(), 1);
}

#[tokio::test]
async fn failures_are_counted_by_kind() {
    let refused = Fake {
        refuse: true,
        ..Fake::default()
    };
    let r = run(Arc::new(refused), &args(100, 0, 100), 1).await;
    assert_eq!(r.errors_of(ErrorKind::Connect), 10);
    assert_eq!(r.answered(), 0);
    assert!(r.first_error.as_deref().unwrap().contains("cannot connect"));

    let reset = Fake {
        reset: true,
        ..Fake::default()
    };
    let r = run(Arc::new(reset), &args(100, 0, 100), 1).await;
    assert_eq!(r.errors_of(ErrorKind::Protocol), 10);
}

#[tokio::test]
async fn a_call_unanswered_within_the_timeout_is_a_timeout() {
    let hung = Fake {
        hang: true,
        ..Fake::default()
    };
    let args = LoadArgs {
        timeout: Duration::from_millis(50),
        ..args(100, 0, 100)
    };
    let r = run(Arc::new(hung), &args, 1).await;
    // Every call due got its answer or its timeout: none is left out.
    assert_eq!(r.sent, 10);
    assert_eq!(r.errors_of(ErrorKind::Timeout), 10);
    assert_eq!(r.errors, 10);
}

#[tokio::test]
async fn a_closed_loop_counts_only_calls_sent_after_the_warm_up() {
    let fake = Arc::new(Fake::default());
    let r = run(fake.clone(), &args(0, 50, 50), 3).await;
    assert!(r.sent > 0);
    assert_eq!(r.sent, r.completed());
    assert!(fake.calls.load(Ordering::Relaxed) > r.sent);
    assert_eq!(r.settings.connections, 2);
    assert_eq!(r.settings.concurrency, 3);
    assert!(r.lateness.is_none());
}
