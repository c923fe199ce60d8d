//! The Redis proxy (Envoy's `redis_proxy` semantics): clients pipeline commands and get
//! replies in order; each key is routed by prefix to a cluster, and within it to one
//! server by consistent hashing (PROXY mode) or to the primary of its slot (CLUSTER
//! mode, following MOVED and ASK); multi-key commands are split per key and their replies
//! merged; connection commands (AUTH, HELLO, SELECT, CLIENT, ...) are answered here.
//!
//! - [`upstream`]: a pipelined upstream connection (replies matched in order).
//! - [`slots`]: a Redis Cluster's slot map and redirections.
//! - [`route`]: one command: faults, routing, splitting, sending, merging, redirections.
//! - [`pending`]: a reply on its way, and the per-command metrics.
//! - [`frame`]: a reply as forwarded: the server's bytes, or a value.
//! - [`placement`]: the server of a key in PROXY mode (rendezvous hashing).
//! - [`redirect`]: CLUSTER mode's slot discovery and MOVED/ASK following.
//! - [`session`]: a client connection's state and the commands the gateway answers.
//! - [`downstream`]: a client connection: decode, dispatch in order, write replies.

pub mod downstream;
pub mod frame;
pub mod pending;
pub mod placement;
pub mod redirect;
pub mod route;
pub mod session;
pub mod slots;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::cluster::ClusterState;
use crate::model::redis::{ReadPolicy, RedisMode, RedisProxyConfig};
use crate::proxy::Shared;
use crate::telemetry::tcp::TcpMetrics;
use slots::SlotMap;
use upstream::{Pipelined, UpstreamError};

/// Shortest time between two full slot-map refreshes of a cluster triggered by MOVED
/// (Envoy's `redirect_refresh_interval` default).
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// What a Redis listener's connections share: its configuration, the snapshot, and one
/// pipelined connection per upstream server.
#[derive(Debug)]
pub struct RedisListener {
    /// Listener name.
    pub name: String,
    /// The filter's configuration.
    pub config: Arc<RedisProxyConfig>,
    /// Shared state (clusters, metrics).
    pub shared: Arc<Shared>,
    /// Per-command metrics.
    pub metrics: pending::CommandMetrics,
    /// `istio_tcp_*` of its client connections.
    pub tcp: TcpMetrics,
    /// Open connections, read without locking on every command.
    /// Looked up on every command, so hashed with foldhash rather than SipHash (the
    /// keys are upstream addresses from xDS, not attacker-chosen).
    open: DashMap<SocketAddr, Pipelined, foldhash::fast::RandomState>,
    /// One connect at a time per server.
    connecting: DashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>,
    slot_maps: DashMap<Arc<str>, Arc<SlotMap>>,
    /// When each cluster's slot map was last re-learnt after a MOVED.
    refreshed: DashMap<Arc<str>, std::time::Instant>,
}

impl RedisListener {
    /// A listener with no upstream connection yet, counting its connections in `tcp`.
    pub fn new(
        name: String,
        config: Arc<RedisProxyConfig>,
        shared: Arc<Shared>,
        tcp: TcpMetrics,
    ) -> RedisListener {
        let metrics = pending::CommandMetrics::new(&shared.metrics, &name);
        RedisListener {
            name,
            config,
            shared,
            metrics,
            tcp,
            open: DashMap::default(),
            connecting: DashMap::new(),
            slot_maps: DashMap::new(),
            refreshed: DashMap::new(),
        }
    }

    /// The pipelined connection to `addr`, opened (and authenticated with the cluster's
    /// upstream credentials) on first use; concurrent first users share one connect.
    pub async fn connection(
        &self,
        addr: SocketAddr,
        cluster: &ClusterState,
    ) -> Result<Pipelined, UpstreamError> {
        if let Some(c) = self.open.get(&addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let lock = self.connecting.entry(addr).or_default().clone();
        let _connecting = lock.lock().await;
        if let Some(c) = self.open.get(&addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let redis = &cluster.config.redis;
        let auth = redis
            .password
            .as_deref()
            .map(|p| (redis.username.as_deref(), p));
        // Reads may go to replicas: every Redis Cluster connection is READONLY (a no-op
        // on primaries, which the same node may become after a failover).
        let readonly =
            redis.mode == RedisMode::Cluster && self.config.read_policy != ReadPolicy::Master;
        let c = Pipelined::connect(addr, auth, readonly, cluster.config.connect_timeout).await?;
        self.open.insert(addr, c.clone());
        Ok(c)
    }

    /// The slot map of a CLUSTER-mode cluster, if learnt.
    pub fn slot_map(&self, cluster: &str) -> Option<Arc<SlotMap>> {
        self.slot_maps.get(cluster).map(|m| m.clone())
    }

    /// Whether a MOVED may trigger a full re-learning of `cluster`'s slots now: at most
    /// once per [`REFRESH_INTERVAL`], however many MOVED a resharding causes.
    pub fn may_refresh(&self, cluster: &Arc<str>) -> bool {
        let now = std::time::Instant::now();
        let mut last = self
            .refreshed
            .entry(cluster.clone())
            .or_insert(now - REFRESH_INTERVAL);
        if now.duration_since(*last) < REFRESH_INTERVAL {
            return false;
        }
        *last = now;
        true
    }

    /// Replaces a cluster's slot map.
    pub fn set_slot_map(&self, cluster: Arc<str>, map: SlotMap) {
        self.slot_maps.insert(cluster, Arc::new(map));
    }
}
