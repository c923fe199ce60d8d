//! The open loop's clock: one thread that sleeps until each call is due and hands it,
//! with the time it was due, to whichever lane is free.
//!
//! Why a thread: tokio's timer fires on a 1 ms grid, so a lane sleeping until its next
//! call sends it up to a millisecond late, which is charged to every call's latency and
//! bunches the calls into bursts at 1,000/s and more. A thread sleeping with the
//! kernel's high-resolution timer, its timer slack cut to a nanosecond (Linux), wakes
//! some tens of microseconds after the due time.
//!
//! Handing a call over is not instant either: the pacer oversleeps a little, and a lane
//! parked while it waits takes a while to wake (on a virtual machine often 100 µs or
//! more: its idle CPU was descheduled). So the pacer hands each call over that long
//! *before* it is due, and the lane holds it until due, spinning for the few
//! microseconds left: the call leaves on time. That [`Lead`] is learned as the run
//! goes, as the median of how late idle lanes would take calls; it settles where half
//! the calls are taken a little early (and held) and half a little late. The spinning is
//! bounded by the lead (a few tens of µs per call on average, at most 300 µs), and
//! disappears when the lanes are busy: a call that waited for a free lane is late anyway.
//! Measured on a loaded 2-core VM: calls leave 1–5 µs late at the median instead of
//! ~150 µs, and a 2 ms server reads 2.13 ms at p50 instead of 2.30 ms.
//!
//! Calls are due at `start + i / rate` (whole nanoseconds, so the schedule never
//! drifts). When the pacer wakes late it hands over every call due by then, each with
//! its own due time, so a late wake-up costs latency (measured) but never calls.
//! Calls that find no free lane wait in the queue, and their wait counts: latency is
//! timed from when a call was due (no coordinated omission). How late calls actually
//! left is measured by the lanes and reported.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A call the pacer found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// When it was due: its latency is timed from here.
    pub intended: Instant,
    /// Whether it is measured (due after the warm-up).
    pub counted: bool,
    /// When the pacer handed it over.
    pub handed: Instant,
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
            handed: intended,
        })
    }
}

/// A running pacer.
#[derive(Debug)]
pub(crate) struct Pacer {
    thread: JoinHandle<()>,
}

impl Pacer {
    /// Starts pacing `schedule`; due calls arrive on the receiver, which closes after
    /// the last one. Each is handed over `lead` before it is due.
    pub(crate) fn spawn(
        schedule: Schedule,
        lead: Arc<Lead>,
    ) -> io::Result<(Self, UnboundedReceiver<Due>)> {
        let (tx, rx) = unbounded_channel();
        let thread = thread::Builder::new()
            .name("corridor-load-pacer".into())
            .spawn(move || pace(schedule, &lead, &tx))?;
        Ok((Self { thread }, rx))
    }

    /// Waits for the pacer to end (it has once its receiver closed).
    pub(crate) fn join(self) {
        // It cannot panic: it only sleeps and sends.
        let _ = self.thread.join();
    }
}

/// Hands over every call of `schedule` `lead` before it is due.
fn pace(schedule: Schedule, lead: &Lead, tx: &UnboundedSender<Due>) {
    precise_sleep();
    let mut i = 0;
    while let Some(mut due) = schedule.due(i) {
        let hand_at = due.intended.checked_sub(lead.get()).unwrap_or(due.intended);
        let now = Instant::now();
        if hand_at > now {
            thread::sleep(hand_at - now);
        }
        due.handed = Instant::now();
        if tx.send(due).is_err() {
            // The run ended (its lanes are gone): nobody takes calls any more.
            break;
        }
        i += 1;
    }
}

/// How long before a call is due the pacer hands it over, learned as the run goes: the
/// median of the pacer's own oversleeping plus the time a waiting lane takes to wake
/// up and take the call.
#[derive(Debug, Default)]
pub(crate) struct Lead {
    nanos: AtomicU64,
}

/// Each call taken moves the lead this much: from nothing to a typical 150 µs in 150
/// calls, and steady within a few microseconds.
const LEAD_STEP: u64 = 1_000;
/// The lead never exceeds this: a lane holds a call at most this long. Beyond a wake-up
/// (100–200 µs on a busy virtual machine), a longer wait means lanes are busy, which
/// no lead fixes.
const MAX_LEAD: u64 = 300_000;

impl Lead {
    /// The lead now.
    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// A lane that was waiting for a call took it after it was due (`late`) or
    /// before. A step up when late and down when early settles the lead where half the
    /// calls are taken early: at the median of the hand-over's delay (a streaming
    /// quantile estimate).
    pub(crate) fn observe(&self, late: bool) {
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |lead| {
                Some(if late {
                    (lead + LEAD_STEP).min(MAX_LEAD)
                } else {
                    lead.saturating_sub(LEAD_STEP)
                })
            });
    }
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
        let (pacer, mut rx) = Pacer::spawn(s, Arc::default()).unwrap();
        let mut got = Vec::new();
        while let Some(d) = rx.blocking_recv() {
            got.push(d);
        }
        assert_eq!(got.len(), 100);
        assert!(got.windows(2).all(|w| w[0].intended < w[1].intended));
        pacer.join();
    }

    #[test]
    fn the_lead_settles_at_the_median_wake_up() {
        let lead = Lead::default();
        // Hand-overs taking 100, 150 and 200 µs in turn: the median is 150 µs.
        for i in 0..3000u64 {
            let delay = Duration::from_micros(100 + 50 * (i % 3));
            lead.observe(delay > lead.get());
        }
        let got = lead.get().as_micros();
        assert!((145..=155).contains(&got), "{got}");
        for _ in 0..3000 {
            lead.observe(true);
        }
        assert_eq!(lead.get(), Duration::from_nanos(MAX_LEAD));
        for _ in 0..3000 {
            lead.observe(false);
        }
        assert_eq!(lead.get(), Duration::ZERO);
    }

    #[test]
    fn calls_are_handed_over_ahead_by_the_lead() {
        let mut s = schedule(1000, 0, 20);
        // The first call is due well after the pacer starts.
        s.start += Duration::from_millis(50);
        s.end += Duration::from_millis(50);
        let lead = Arc::new(Lead::default());
        for _ in 0..500 {
            lead.observe(true);
        }
        let (pacer, mut rx) = Pacer::spawn(s, lead).unwrap();
        let first = rx.blocking_recv().unwrap();
        // Handed over about the lead (300 µs) early: a sleep never ends early.
        assert!(first.handed < first.intended, "{first:?}");
        while rx.blocking_recv().is_some() {}
        pacer.join();
    }

    #[test]
    fn the_pacer_stops_when_nobody_listens() {
        let s = schedule(1000, 0, 3_600_000);
        let (pacer, rx) = Pacer::spawn(s, Arc::default()).unwrap();
        drop(rx);
        // Ends at its next call instead of pacing for an hour.
        pacer.join();
    }
}
