//! Precise waits for the echo backends' injected delays.
//!
//! tokio's timer fires on a 1 ms grid, so `--delay 2ms` answered after 2–3 ms (p50 about
//! 2.3 ms measured), and a load test against it could not tell its own error from the
//! server's. Here one thread keeps the pending deadlines in a heap and sleeps on a
//! condition variable until the earliest (the kernel's high-resolution timer, with this
//! thread's timer slack cut to a nanosecond, as the load driver's pacer does); each due
//! wait is woken through a oneshot. Long waits (a stall) spend all but their last
//! milliseconds on tokio's timer, which is precise enough for them.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Condvar, Mutex, OnceLock},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

/// Waits longer than this spend all but [`TOKIO_MARGIN`] on tokio's timer.
const LONG_WAIT: Duration = Duration::from_millis(20);
/// What is left to the precise thread of a long wait: more than tokio's timer error.
const TOKIO_MARGIN: Duration = Duration::from_millis(3);

/// Sleeps until `deadline`, waking within some tens of microseconds of it.
pub(crate) async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    if deadline - now > LONG_WAIT {
        tokio::time::sleep_until(deadline - TOKIO_MARGIN).await;
    }
    let (tx, rx) = oneshot::channel();
    let timers = timers();
    let queued = match timers.pending.lock() {
        Ok(mut heap) => {
            let seq = heap.len() as u64;
            heap.push(Reverse(Entry {
                at: deadline.into_std(),
                seq,
                wake: Some(tx),
            }));
            true
        }
        Err(_) => false,
    };
    if !queued {
        // The timer thread died: the coarse timer still keeps the answer coming.
        return tokio::time::sleep_until(deadline).await;
    }
    timers.changed.notify_one();
    if rx.await.is_err() {
        tokio::time::sleep_until(deadline).await;
    }
}

struct Timers {
    pending: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

struct Entry {
    at: std::time::Instant,
    seq: u64,
    wake: Option<oneshot::Sender<()>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The timer thread, started on first use.
fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers = Box::leak(Box::new(Timers {
            pending: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("serve-clock".into())
            .spawn(move || run(timers));
        if let Err(e) = spawned {
            // Waits then fall back to tokio's timer (their oneshot is dropped unanswered).
            tracing::warn!(error = %e, "no precise clock thread; delays use tokio's 1 ms timer");
        }
        timers
    })
}

fn run(timers: &Timers) {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let Ok(mut heap) = timers.pending.lock() else {
        return;
    };
    loop {
        let now = std::time::Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(mut e)) = heap.pop()
                && let Some(wake) = e.wake.take()
            {
                let _ = wake.send(());
            }
        }
        let next = heap
            .peek()
            .map(|Reverse(e)| e.at.saturating_duration_since(now));
        heap = match next {
            None => match timers.changed.wait(heap) {
                Ok(h) => h,
                Err(_) => return,
            },
            Some(wait) => match timers.changed.wait_timeout(heap, wait) {
                Ok((h, _)) => h,
                Err(_) => return,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_end_after_their_deadline_in_deadline_order() {
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for ms in [30u64, 2, 9, 1] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let deadline = start + Duration::from_millis(ms);
                sleep_until(deadline).await;
                assert!(Instant::now() >= deadline, "woke before {ms} ms");
                let _ = tx.send(ms);
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(ms) = rx.recv().await {
            order.push(ms);
        }
        assert_eq!(order, [1, 2, 9, 30]);
        // A deadline already past returns at once.
        sleep_until(start).await;
    }
}
