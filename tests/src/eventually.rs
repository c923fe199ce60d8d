//! Polling with a bounded patience: the only way tests wait for something to happen.

use std::future::Future;
use std::time::{Duration, Instant};

/// Default patience for things that should happen "soon" (config pushes, listeners binding).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often a condition is re-checked.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Ok`, and returns that value. Panics with `what` and the
/// last error once `patience` is exhausted.
pub async fn eventually<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        let attempt = tokio::time::timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(POLL_EVERY),
            check(),
        )
        .await;
        let err = match attempt {
            Ok(Ok(value)) => return value,
            Ok(Err(err)) => format!("{err:#}"),
            Err(_) => "the check itself did not finish in time".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("gave up after {patience:?} waiting for {what}: last error: {err}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
