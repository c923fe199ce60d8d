//! Outlier detection (Envoy's consecutive-error ejection): every try's outcome is
//! reported to its endpoint; an endpoint with too many failures in a row is ejected
//! (skipped by every pick) for `base_ejection_time × times ejected`, capped by
//! `max_ejection_time`, unless `max_ejection_percent` of the cluster is ejected already.
//!
//! Everything is atomics on the endpoint and one shared [`Detector`] per cluster name;
//! no lock, so reporting and picking never wait. Ejections end lazily: the first pick
//! (or report) after the deadline un-ejects, so an ejection lasts exactly its time
//! rather than until the next `interval` sweep.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use corridor_proto::envoy::config::cluster::v3::OutlierDetection;

use crate::model::{ModelError, duration};

/// Envoy's default for `consecutive_5xx` and `consecutive_gateway_failure` and
/// `consecutive_local_origin_failure`.
const DEFAULT_CONSECUTIVE: u32 = 5;
/// Envoy's default `interval`: how often ejection multipliers decay.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Envoy's default `base_ejection_time`.
const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
/// Envoy's default `max_ejection_time`.
const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
/// Envoy's default `max_ejection_percent`.
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Envoy's default of `enforcing_consecutive_5xx` and `_local_origin_failure` (percent).
const ENFORCED: u32 = 100;

/// A cluster's outlier detection settings (Envoy's `Cluster.outlier_detection`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutlierConfig {
    /// 5xx answers in a row that eject; `None`: not enforced.
    pub consecutive_5xx: Option<u32>,
    /// 502/503/504 answers (and, unless split, connect failures, resets and timeouts)
    /// in a row that eject; `None`: not enforced.
    pub consecutive_gateway: Option<u32>,
    /// Count local-origin failures (connect failures, resets, timeouts) on their own
    /// rather than as 503/504 answers.
    pub split_local_origin: bool,
    /// Local-origin failures in a row that eject, when split.
    pub consecutive_local_origin: Option<u32>,
    /// How often an endpoint's ejection multiplier decays by one while it is healthy.
    pub interval: Duration,
    /// The first ejection's length; the n-th lasts n times this.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// Most endpoints of the cluster ejected at once, in percent.
    pub max_ejection_percent: u32,
}

impl OutlierConfig {
    /// From Envoy's message; a check whose `enforcing_*` is 0 (or whose threshold is 0)
    /// is off, as in Envoy.
    pub fn from_proto(o: &OutlierDetection) -> Result<Self, ModelError> {
        let threshold = |v: &Option<corridor_proto::google::protobuf::UInt32Value>,
                         enforcing: &Option<corridor_proto::google::protobuf::UInt32Value>,
                         default_enforcing: u32| {
            let n = v.as_ref().map_or(DEFAULT_CONSECUTIVE, |v| v.value);
            let e = enforcing.as_ref().map_or(default_enforcing, |v| v.value);
            (n > 0 && e > 0).then_some(n)
        };
        let time = |d: &Option<corridor_proto::google::protobuf::Duration>,
                    field: &'static str,
                    default: Duration| {
            d.as_ref().map_or(Ok(default), |d| duration(d, field))
        };
        let max_ejection_percent = o
            .max_ejection_percent
            .as_ref()
            .map_or(DEFAULT_MAX_EJECTION_PERCENT, |v| v.value);
        if max_ejection_percent > 100 {
            return Err(ModelError::invalid(
                "outlier_detection.max_ejection_percent",
                max_ejection_percent.to_string(),
            ));
        }
        let base_ejection = time(
            &o.base_ejection_time,
            "outlier_detection.base_ejection_time",
            DEFAULT_BASE_EJECTION,
        )?;
        Ok(OutlierConfig {
            consecutive_5xx: threshold(&o.consecutive_5xx, &o.enforcing_consecutive_5xx, ENFORCED),
            // Envoy enforces gateway failures only when asked to.
            consecutive_gateway: threshold(
                &o.consecutive_gateway_failure,
                &o.enforcing_consecutive_gateway_failure,
                0,
            ),
            split_local_origin: o.split_external_local_origin_errors,
            consecutive_local_origin: threshold(
                &o.consecutive_local_origin_failure,
                &o.enforcing_consecutive_local_origin_failure,
                ENFORCED,
            ),
            interval: time(&o.interval, "outlier_detection.interval", DEFAULT_INTERVAL)?,
            base_ejection,
            max_ejection: time(
                &o.max_ejection_time,
                "outlier_detection.max_ejection_time",
                DEFAULT_MAX_EJECTION,
            )?
            .max(base_ejection),
            max_ejection_percent,
        })
    }
}

/// What a try told about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The upstream answered, with this status in HTTP's terms (Dubbo and Thrift through
    /// their codec's `http_status`).
    Answer(u16),
    /// No answer, by the gateway's own observation: connect failure, reset or timeout;
    /// the status is the one Envoy maps it to (503 for connect failures and resets, 504
    /// for timeouts) when local-origin errors are not split.
    LocalFailure(u16),
}

/// The outlier state shared by every endpoint of one cluster name (kept across pushes):
/// its settings and how many of its endpoints are ejected.
#[derive(Debug, Default)]
pub struct Detector {
    config: ArcSwapOption<OutlierConfig>,
    /// Whether `config` is set: read on every pick, so a plain flag.
    enabled: AtomicBool,
    ejected: AtomicUsize,
    hosts: AtomicUsize,
    /// Ejections so far (`/clusters`: `outlier_detection.ejections_enforced_total`).
    pub ejections: AtomicU64,
}

impl Detector {
    /// Takes a push's settings and endpoint count.
    pub fn configure(&self, config: Option<&OutlierConfig>, hosts: usize) {
        let current = self.config.load();
        if current.as_deref() != config {
            self.config.store(config.map(|c| Arc::new(c.clone())));
        }
        self.enabled.store(config.is_some(), Ordering::Relaxed);
        self.hosts.store(hosts, Ordering::Relaxed);
    }

    /// Whether outlier detection is on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Endpoints ejected right now (as far as lazy expiry has noticed).
    pub fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Relaxed)
    }
}

/// One endpoint's outlier state.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Milliseconds since [`epoch`] when the ejection ends; 0: not ejected.
    ejected_until: AtomicU64,
    /// When the last ejection ended (ms since [`epoch`]), for the multiplier's decay.
    unejected_at: AtomicU64,
    times_ejected: AtomicU32,
}

/// The process's time origin for ejection deadlines (monotonic).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Now, in milliseconds since the process's time origin (never 0).
pub fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl OutlierState {
    /// Whether the endpoint is ejected at `now`; an ejection past its end is lifted
    /// here (once, whoever notices first).
    pub fn is_ejected(&self, detector: &Detector, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if now < until {
            return true;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.unejected_at.store(now, Ordering::Relaxed);
            let _ = detector
                .ejected
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
            tracing::info!("outlier ejection ended");
        }
        false
    }

    /// How many times the endpoint has been ejected (the multiplier of the next one).
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Ordering::Relaxed)
    }

    /// When the current ejection ends (ms since the time origin), if ejected.
    pub fn ejected_until(&self) -> Option<u64> {
        Some(self.ejected_until.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// Counts one try's outcome; `Some(length)` when it ejects the endpoint.
    pub fn report(&self, detector: &Detector, event: Event, now: u64) -> Option<Duration> {
        let config = detector.config.load();
        let config = config.as_deref()?;
        if self.is_ejected(detector, now) {
            // A try that started before the ejection: nothing more to learn.
            return None;
        }
        let bump = |c: &AtomicU32| c.fetch_add(1, Ordering::Relaxed) + 1;
        let reached = |count: u32, limit: Option<u32>| limit.is_some_and(|l| count >= l);
        let status = match event {
            Event::Answer(status) => {
                self.consecutive_local.store(0, Ordering::Relaxed);
                status
            }
            Event::LocalFailure(_) if config.split_local_origin => {
                let n = bump(&self.consecutive_local);
                return reached(n, config.consecutive_local_origin)
                    .then(|| self.eject(detector, config, now))
                    .flatten();
            }
            Event::LocalFailure(status) => status,
        };
        if status < 500 {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return None;
        }
        let n5xx = bump(&self.consecutive_5xx);
        let gateway = if matches!(status, 502..=504) {
            bump(&self.consecutive_gateway)
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        if reached(n5xx, config.consecutive_5xx) || reached(gateway, config.consecutive_gateway) {
            return self.eject(detector, config, now);
        }
        None
    }

    /// Ejects unless the cluster's ejection cap is reached (Envoy's check: the share
    /// ejected before this one is below `max_ejection_percent`).
    fn eject(&self, detector: &Detector, config: &OutlierConfig, now: u64) -> Option<Duration> {
        let hosts = detector.hosts.load(Ordering::Relaxed).max(1);
        let admitted = detector
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n * 100 / hosts < config.max_ejection_percent as usize).then_some(n + 1)
            })
            .is_ok();
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
        if !admitted {
            return None;
        }
        let times = self.decayed_times(config, now) + 1;
        self.times_ejected.store(times, Ordering::Relaxed);
        let length = ejection_length(config, times);
        self.ejected_until
            .store(now.saturating_add(ms(length)).max(1), Ordering::Relaxed);
        detector.ejections.fetch_add(1, Ordering::Relaxed);
        Some(length)
    }

    /// The ejection count after decay: one less per `interval` the endpoint has been
    /// back in since its last ejection ended.
    fn decayed_times(&self, config: &OutlierConfig, now: u64) -> u32 {
        let times = self.times_ejected.load(Ordering::Relaxed);
        let back_since = self.unejected_at.load(Ordering::Relaxed);
        if times == 0 || back_since == 0 {
            return times;
        }
        let steps = now.saturating_sub(back_since) / ms(config.interval).max(1);
        times.saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
    }
}

/// The n-th ejection's length: `base × n`, at most `max_ejection`.
pub fn ejection_length(config: &OutlierConfig, n: u32) -> Duration {
    config
        .base_ejection
        .saturating_mul(n.max(1))
        .min(config.max_ejection)
}

#[cfg(test)]
mod tests;
