//! What an echo backend does to each call before answering: a fixed delay, random
//! jitter, one stall of the whole server, and a share of calls answered with the
//! protocol's error. Every protocol asks [`Faults::plan`] once per call.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use super::EchoConfig;

/// One stall of the whole backend, as a garbage-collection pause or a blocked event loop
/// looks from outside: once `after` calls have arrived, the next call starts a window of
/// `duration` in which every call (on every connection) waits until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stall {
    /// Calls answered normally before the stall.
    pub after: u64,
    /// How long the backend stalls.
    pub duration: Duration,
}

/// How one call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// How long to wait before answering.
    pub(crate) wait: Duration,
    /// Whether to answer with the protocol's error.
    pub(crate) fail: bool,
}

/// The fault state of one backend, shared by all its connections.
#[derive(Debug)]
pub(crate) struct Faults {
    delay: Duration,
    jitter: Duration,
    error_rate: f64,
    stall: Option<Stall>,
    /// Calls seen so far.
    calls: AtomicU64,
    /// When the stall ends, once it started.
    stall_end: OnceLock<Instant>,
}

impl Faults {
    /// The faults `config` asks for.
    pub(crate) fn new(config: &EchoConfig) -> Self {
        Self {
            delay: config.delay,
            jitter: config.jitter,
            error_rate: config.error_rate,
            stall: config.stall,
            calls: AtomicU64::new(0),
            stall_end: OnceLock::new(),
        }
    }

    /// Counts one call arriving now and says how to answer it.
    pub(crate) fn plan(&self) -> Plan {
        let mut rng = rand::rng();
        self.plan_at(Instant::now(), rng.random(), rng.random())
    }

    /// [`Faults::plan`] at `now`, with `jitter` and `dice` drawn from [0, 1).
    fn plan_at(&self, now: Instant, jitter: f64, dice: f64) -> Plan {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(stall) = self.stall
            && n == stall.after
        {
            let _ = self.stall_end.set(now + stall.duration);
        }
        let mut wait = self.delay + self.jitter.mul_f64(jitter);
        // Calls arriving during the stall are held until it ends, then served as usual.
        if let Some(end) = self.stall_end.get() {
            wait += end.saturating_duration_since(now);
        }
        Plan {
            wait,
            fail: dice < self.error_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::Protocol;

    fn faults(delay_ms: u64, stall: Option<Stall>, error_rate: f64) -> Faults {
        Faults::new(&EchoConfig {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(10),
            stall,
            error_rate,
            ..EchoConfig::new(Protocol::Http)
        })
    }

    #[test]
    fn delay_and_jitter_add_up() {
        let f = faults(2, None, 0.0);
        let now = Instant::now();
        assert_eq!(f.plan_at(now, 0.0, 0.5).wait, Duration::from_millis(2));
        assert_eq!(f.plan_at(now, 0.5, 0.5).wait, Duration::from_millis(7));
    }

    #[test]
    fn the_stall_starts_after_n_calls_and_holds_every_call_until_it_ends() {
        let stall = Stall {
            after: 2,
            duration: Duration::from_secs(1),
        };
        let f = faults(1, Some(stall), 0.0);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(f.plan_at(t0, 0.0, 0.5).wait, ms(1));
        assert_eq!(f.plan_at(t0, 0.0, 0.5).wait, ms(1));
        // The third call starts the stall and waits all of it.
        assert_eq!(f.plan_at(t0, 0.0, 0.5).wait, ms(1001));
        // A call 400 ms into the stall waits for the rest.
        assert_eq!(f.plan_at(t0 + ms(400), 0.0, 0.5).wait, ms(601));
        // After the stall: never again.
        assert_eq!(f.plan_at(t0 + ms(1000), 0.0, 0.5).wait, ms(1));
        assert_eq!(f.plan_at(t0 + ms(5000), 0.0, 0.5).wait, ms(1));
    }

    #[test]
    fn the_error_rate_is_the_share_of_failed_calls() {
        let f = faults(0, None, 0.3);
        let now = Instant::now();
        assert!(f.plan_at(now, 0.0, 0.29).fail);
        assert!(!f.plan_at(now, 0.0, 0.3).fail);
        let never = faults(0, None, 0.0);
        assert!(!never.plan_at(now, 0.0, 0.0).fail);
        let always = faults(0, None, 1.0);
        assert!(always.plan_at(now, 0.0, 0.999).fail);
    }
}
