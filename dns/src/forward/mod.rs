//! Forwarding of names outside the zone to upstream resolvers, through a TTL-honouring
//! cache: CoreDNS's `forward` and `cache` plugins in one.
//!
//! A question first meets the cache (`cache.rs`); on a miss, identical questions in
//! flight share one upstream exchange (`flight.rs`); the exchange tries the upstreams in
//! order of health (`upstream.rs`), UDP first and TCP when the answer is truncated
//! (`exchange.rs`), and the whole thing stays within one time budget per client query.

mod cache;
mod exchange;
mod flight;
mod resolv;
mod upstream;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, Record, RecordType};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::{FORWARD_BROKEN, FORWARD_MAX_CONCURRENT_REJECTS, Metrics};

use cache::{Cache, Key};
use exchange::Question;
use flight::{Flights, Role};
use upstream::Pool;

pub use resolv::{system_upstreams, upstreams_from_resolv_conf};

/// CoreDNS's `forward` gives up on a query after 5 s; a stub resolver retries at about the
/// same time, so a slower answer would be thrown away anyway.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// CoreDNS's default cache capacity (9984 entries, rounded): enough for a node's working
/// set of external names without letting a scan of random names grow memory unbounded.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Upstream queries allowed in flight at once. Beyond this a flood of uncached names gets
/// SERVFAIL instead of exhausting sockets and memory (CoreDNS's `max_concurrent`, which
/// its documentation suggests at 1000).
pub const DEFAULT_MAX_CONCURRENT: usize = 1000;

/// Upstreams and limits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardConfig {
    /// Upstream resolvers, tried in order of health.
    pub upstreams: Vec<SocketAddr>,
    /// Budget for one client query across every attempt and upstream.
    pub timeout: Duration,
    /// Most cached answers (success and denial together); 0 disables the cache.
    pub cache_capacity: usize,
    /// `server` label of the cache metrics (`dns://:53`).
    pub server_label: String,
    /// Most upstream exchanges in flight at once; 0 means no limit.
    pub max_concurrent: usize,
}

impl ForwardConfig {
    /// Forwarding to `upstreams` with the default limits.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        ForwardConfig {
            upstreams,
            ..ForwardConfig::default()
        }
    }
}

impl Default for ForwardConfig {
    /// No upstreams, [`DEFAULT_TIMEOUT`], [`DEFAULT_CACHE_CAPACITY`],
    /// [`DEFAULT_MAX_CONCURRENT`], server label `dns://:53`.
    fn default() -> Self {
        ForwardConfig {
            upstreams: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            server_label: "dns://:53".to_string(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }
}

/// An upstream's answer (possibly from the cache, TTLs aged).
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// The upstream's response code.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
    /// Additional section (without the OPT record).
    pub additionals: Vec<Record>,
}

/// Why no upstream answered. The server answers SERVFAIL for every variant; the client may
/// retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolver is configured (is /etc/resolv.conf empty? pass --upstream)")]
    NoUpstreams,
    /// The budget ran out before any upstream answered.
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    /// Every attempt failed before the budget ran out (refused, reset, malformed answers).
    #[error("every upstream failed ({attempts} attempts), last: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: usize,
        /// The last attempt's failure.
        last: String,
    },
    /// The question cannot be encoded for the upstream (not the upstream's fault).
    #[error("{0}")]
    BadQuestion(String),
    /// Too many upstream exchanges in flight; refused without trying.
    #[error("{0} upstream queries already in flight")]
    Overloaded(usize),
}

/// Resolves names through the upstreams. Shared between tasks behind an `Arc`; no lock is
/// held across an await.
#[derive(Debug)]
pub struct Forwarder {
    config: ForwardConfig,
    metrics: Arc<Metrics>,
    cache: Cache,
    flights: Flights,
    pool: Pool,
    /// `None` when unlimited.
    limiter: Option<Semaphore>,
}

impl Forwarder {
    /// A forwarder over `config.upstreams`.
    pub fn new(config: ForwardConfig, metrics: Arc<Metrics>) -> Self {
        let cache = Cache::new(config.cache_capacity, &config.server_label, &metrics);
        let pool = Pool::new(&config.upstreams, &metrics);
        let limiter = (config.max_concurrent > 0)
            .then(|| Semaphore::new(config.max_concurrent.min(Semaphore::MAX_PERMITS)));
        Forwarder {
            config,
            metrics,
            cache,
            flights: Flights::default(),
            pool,
            limiter,
        }
    }

    /// The configuration this forwarder runs with.
    pub fn config(&self) -> &ForwardConfig {
        &self.config
    }

    /// Resolves one question (class IN), from the cache when it can.
    pub async fn resolve(&self, name: &Name, qtype: RecordType) -> Result<Forwarded, ForwardError> {
        let key = Key::new(name, qtype);
        if let Some(hit) = self.cache.get(&key, std::time::Instant::now()) {
            return Ok(hit);
        }
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.flights.join(&key) {
                Role::Leader(leader) => {
                    let mut outcome = self.forward(name, qtype, deadline).await;
                    if let Ok(answer) = &mut outcome {
                        cache::clamp_ttls(answer);
                        self.cache.insert(key, answer, std::time::Instant::now());
                    }
                    leader.finish(&outcome);
                    return outcome;
                }
                Role::Follower(waiting) => {
                    match tokio::time::timeout_at(deadline, waiting.outcome()).await {
                        Ok(Some(outcome)) => return outcome,
                        // The leader's client went away mid-exchange: lead in its place.
                        Ok(None) => continue,
                        Err(_) => return Err(ForwardError::Timeout(self.config.timeout)),
                    }
                }
            }
        }
    }

    /// One upstream exchange for the question, failing over across upstreams until one
    /// answers or `deadline` passes.
    async fn forward(
        &self,
        name: &Name,
        qtype: RecordType,
        deadline: Instant,
    ) -> Result<Forwarded, ForwardError> {
        if self.pool.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let question = Question::new(name, qtype)
            .map_err(|error| ForwardError::BadQuestion(error.to_string()))?;
        let _permit = match &self.limiter {
            None => None,
            Some(limiter) => match limiter.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.metrics
                        .counter(FORWARD_MAX_CONCURRENT_REJECTS, Vec::new())
                        .increment(1);
                    return Err(ForwardError::Overloaded(self.config.max_concurrent));
                }
            },
        };
        let result = self.pool.exchange(&question, deadline).await;
        if result.is_err() {
            // CoreDNS counts a query for which every upstream failed as a broken health
            // check: the signal that the node has lost its resolvers.
            self.metrics
                .counter(FORWARD_BROKEN, Vec::new())
                .increment(1);
        }
        result.map_err(|failure| failure.into_error(self.config.timeout))
    }
}
