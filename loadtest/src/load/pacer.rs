//! The open loop's clock: one thread that sleeps until each call is due and hands it,
//! with the time it was due, to whichever lane is free.
//!
//! Why a thread: tokio's timer fires on a 1 ms grid, so a lane sleeping until its next
//! call sends it up to a millisecond late, which is charged to every call's latency and
//! bunches the calls into bursts at 1,000/s and more. A thread sleeping with the
//! kernel's high-resolution timer, its timer slack cut to a nanosecond (Linux), wakes
//! some tens of microseconds after the due time; the lateness is measured and reported.
//!
//! Calls are due at `start + i / rate` (whole nanoseconds, so the schedule never
//! drifts). When the pacer wakes late it hands over every call due by then, each with
//! its own due time, so a late wake-up costs latency (measured) but never calls.
//! Calls that find no free lane wait in the queue, and their wait counts: latency is
//! timed from when a call was due (no coordinated omission).

use std::{
    io,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::report::{Lateness, histogram, micros};

/// A call the pacer found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// When it was due: its latency is timed from here.
    pub intended: Instant,
    /// Whether it is measured (due after the warm-up).
    pub counted: bool,
}

/// When calls are due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// The first call.
    pub start: Instant,
    /// Calls due from here on are counted (the end of the warm-up).
    pub measured: Instant,
    /// No call is due from here on.
    pub end: Instant,
    /// Calls per second.
    pub rate: u64,
}

impl Schedule {
    /// When call `i` is due, or `None` past the end.
    pub(crate) fn due(&self, i: u64) -> Option<Due> {
        let nanos = u128::from(i) * 1_000_000_000 / u128::from(self.rate.max(1));
        let offset = Duration::from_nanos(u64::try_from(nanos).ok()?);
        let intended = self.start.checked_add(offset)?;
        (intended < self.end).then_some(Due {
            intended,
            counted: intended >= self.measured,
        })
    }
}

/// A running pacer.
#[derive(Debug)]
pub(crate) struct Pacer {
    thread: JoinHandle<Histogram<u64>>,
}

impl Pacer {
    /// Starts pacing `schedule`; due calls arrive on the receiver, which closes after
    /// the last one.
    pub(crate) fn spawn(schedule: Schedule) -> io::Result<(Self, UnboundedReceiver<Due>)> {
        let (tx, rx) = unbounded_channel();
        let thread = thread::Builder::new()
            .name("corridor-load-pacer".into())
            .spawn(move || pace(schedule, &tx))?;
        Ok((Self { thread }, rx))
    }

    /// Waits for the pacer to end (it has once its receiver closed) and says how late
    /// it was.
    pub(crate) fn join(self) -> Option<Lateness> {
        self.thread.join().ok().map(|h| Lateness::of(&h))
    }
}

/// Hands over every call of `schedule` when it is due; returns how late it was, in
/// microseconds.
fn pace(schedule: Schedule, tx: &UnboundedSender<Due>) -> Histogram<u64> {
    precise_sleep();
    let mut late = histogram();
    let mut i = 0;
    while let Some(due) = schedule.due(i) {
        let now = Instant::now();
        if due.intended > now {
            thread::sleep(due.intended - now);
        }
        late.saturating_record(micros(due.intended.elapsed()));
        if tx.send(due).is_err() {
            // The run ended (its lanes are gone): nobody takes calls any more.
            break;
        }
        i += 1;
    }
    late
}

/// Cuts this thread's timer slack to a nanosecond, so its sleeps end when asked rather
/// than up to 50 µs later (the kernel's default slack, which lets it batch wake-ups).
#[cfg(target_os = "linux")]
fn precise_sleep() {
    // Without it the pacer is merely less precise, and its lateness says so.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}

#[cfg(not(target_os = "linux"))]
fn precise_sleep() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: u64, warmup_ms: u64, end_ms: u64) -> Schedule {
        let start = Instant::now();
        Schedule {
            start,
            measured: start + Duration::from_millis(warmup_ms),
            end: start + Duration::from_millis(end_ms),
            rate,
        }
    }

    #[test]
    fn calls_are_due_at_whole_fractions_of_a_second_until_the_end() {
        let s = schedule(3, 0, 1000);
        let offsets: Vec<u128> = (0..)
            .map_while(|i| s.due(i))
            .map(|d| (d.intended - s.start).as_nanos())
            .collect();
        assert_eq!(offsets, [0, 333_333_333, 666_666_666]);
    }

    #[test]
    fn the_schedule_does_not_drift_over_a_long_run() {
        let s = schedule(7, 0, 3_600_000);
        let last = (0..).map_while(|i| s.due(i)).count() as u64;
        assert_eq!(last, 7 * 3600);
        let d = s.due(7 * 3599).unwrap();
        assert_eq!(d.intended - s.start, Duration::from_secs(3599));
    }

    #[test]
    fn calls_due_in_the_warm_up_are_not_counted() {
        let s = schedule(10, 250, 1000);
        let counted: Vec<bool> = (0..).map_while(|i| s.due(i)).map(|d| d.counted).collect();
        assert_eq!(counted.len(), 10);
        assert_eq!(counted.iter().filter(|c| !**c).count(), 3);
    }

    #[test]
    fn the_pacer_hands_over_every_call_and_closes() {
        let s = schedule(2000, 0, 50);
        let (pacer, mut rx) = Pacer::spawn(s).unwrap();
        let mut got = Vec::new();
        while let Some(d) = rx.blocking_recv() {
            got.push(d);
        }
        assert_eq!(got.len(), 100);
        assert!(got.windows(2).all(|w| w[0].intended < w[1].intended));
        assert!(pacer.join().is_some());
    }

    #[test]
    fn the_pacer_stops_when_nobody_listens() {
        let s = schedule(1000, 0, 3_600_000);
        let (pacer, rx) = Pacer::spawn(s).unwrap();
        drop(rx);
        // Ends at its next call instead of pacing for an hour.
        assert!(pacer.join().is_some());
    }
}
