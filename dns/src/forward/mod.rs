//! Forwarding of names outside the zone to upstream resolvers, through a TTL-honouring
//! cache.
//!
//! INTERFACE STUB: filled in by the forwarding work; the signatures below are the
//! contract the server relies on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, Record, RecordType};

use crate::metrics::Metrics;

/// Upstreams and limits.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Upstream resolvers, tried in order of health.
    pub upstreams: Vec<SocketAddr>,
    /// Budget for one client query across every attempt and upstream.
    pub timeout: Duration,
    /// Most cached answers (success and denial together).
    pub cache_capacity: usize,
    /// `server` label of the cache metrics (`dns://:53`).
    pub server_label: String,
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

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolver is configured")]
    NoUpstreams,
    /// Every upstream failed or the budget ran out.
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
}

/// Resolves names through the upstreams.
#[derive(Debug)]
pub struct Forwarder {
    config: ForwardConfig,
    _metrics: Arc<Metrics>,
}

impl Forwarder {
    /// A forwarder over `config.upstreams`.
    pub fn new(config: ForwardConfig, metrics: Arc<Metrics>) -> Self {
        Forwarder {
            config,
            _metrics: metrics,
        }
    }

    /// Resolves one question (class IN).
    pub async fn resolve(&self, _name: &Name, _qtype: RecordType) -> Result<Forwarded, ForwardError> {
        Err(ForwardError::Timeout(self.config.timeout))
    }
}
