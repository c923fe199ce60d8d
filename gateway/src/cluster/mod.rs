//! Runtime clusters: the published configuration snapshot the data path reads, with
//! per-endpoint counters and connection pools that survive configuration pushes.

pub mod breaker;
pub mod hash;
pub mod lb;
pub mod locality;
pub mod outlier;
pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::model::cluster::{Cluster, EndpointLabels, EndpointSpec, Endpoints, Health, LbPolicy};
use crate::model::route::RouteConfig;
use hash::HashTable;
use locality::Zones;
use outlier::{Detector, OutlierState};
use pool::Pool;

/// One upstream endpoint with its counters and connections.
#[derive(Debug)]
pub struct Endpoint {
    /// Address.
    pub addr: SocketAddr,
    /// Requests in flight.
    pub active_rq: AtomicU64,
    /// Requests sent so far.
    pub total_rq: AtomicU64,
    /// Tries that failed (connect failure, reset, timeout, 5xx).
    pub failed_rq: AtomicU64,
    /// Connections.
    pub pool: Arc<Pool>,
    /// The shared connection of codec-based protocols (Dubbo, Thrift): one multiplexed
    /// connection per endpoint; the lock is held while connecting so concurrent calls
    /// share it.
    pub mux: tokio::sync::Mutex<Option<crate::proxy::meta::upstream::Multiplexed>>,
    /// Its zone (EDS locality), for zone-aware picks.
    pub zone: Arc<str>,
    /// The workload behind it, when the control plane says (destination labels).
    pub labels: Option<Arc<EndpointLabels>>,
    /// Consecutive failures and ejection.
    pub outlier: OutlierState,
    /// Its cluster's outlier detector (settings, ejected count).
    pub detector: Arc<Detector>,
}

impl Endpoint {
    fn new(spec: &EndpointSpec, http2: bool, detector: Arc<Detector>) -> Self {
        Endpoint {
            addr: spec.addr,
            active_rq: AtomicU64::new(0),
            total_rq: AtomicU64::new(0),
            failed_rq: AtomicU64::new(0),
            pool: Arc::new(Pool::new(spec.addr, http2)),
            mux: tokio::sync::Mutex::new(None),
            zone: Arc::from(spec.zone.as_str()),
            labels: spec.labels.clone(),
            outlier: OutlierState::default(),
            detector,
        }
    }

    /// Whether outlier detection has it ejected at `now` (ms, `outlier::now_ms`).
    pub fn is_ejected(&self, now: u64) -> bool {
        self.outlier.is_ejected(&self.detector, now)
    }

    /// Counts one try's outcome for outlier detection.
    pub fn report(&self, event: outlier::Event) {
        if !self.detector.enabled() {
            return;
        }
        if let Some(length) = self
            .outlier
            .report(&self.detector, event, outlier::now_ms())
        {
            tracing::info!(
                upstream = %self.addr,
                ?length,
                times = self.outlier.times_ejected(),
                "outlier detection ejected an endpoint"
            );
        }
    }
}

/// Cluster-wide counters, kept across pushes of the same cluster name.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Requests in flight (circuit breaker and retry budget input).
    pub active_rq: AtomicU64,
    /// Retries in flight.
    pub active_retries: AtomicU64,
    /// Round-robin cursor.
    pub rr: AtomicUsize,
    /// Requests so far.
    pub total_rq: AtomicU64,
    /// Requests refused by the circuit breaker.
    pub overflow_rq: AtomicU64,
    /// Retries so far.
    pub retries: AtomicU64,
    /// Retries refused by the budget.
    pub retry_overflow: AtomicU64,
    /// Connection slots (`max_connections`, `max_pending_requests`).
    pub slots: Arc<breaker::Slots>,
    /// Outlier detection's shared state.
    pub detector: Arc<Detector>,
}

/// A cluster as the data path sees it.
#[derive(Debug)]
pub struct ClusterState {
    /// Validated configuration.
    pub config: Arc<Cluster>,
    /// Its assignment, if received.
    pub assignment: Option<Arc<Endpoints>>,
    /// Every endpoint with its health.
    pub members: Vec<(Arc<Endpoint>, Health)>,
    /// The endpoints that take new requests.
    pub healthy: Vec<Arc<Endpoint>>,
    /// The healthy endpoints by zone.
    pub zones: Zones,
    /// The consistent-hash table over `healthy`, for ring hash and Maglev clusters.
    pub hash: Option<HashTable>,
    /// Counters shared across versions.
    pub counters: Arc<ClusterCounters>,
}

/// A map from resource names to what the data path reads. Looked up on every request,
/// so hashed with foldhash rather than SipHash: the names come from the control plane,
/// not from clients, so there is no flooding to defend against.
pub type NameMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The immutable configuration the data path reads, swapped atomically on each push.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Route configurations by name.
    pub routes: NameMap<Arc<RouteConfig>>,
    /// Clusters by name.
    pub clusters: NameMap<Arc<ClusterState>>,
    /// MetaProtocol (Dubbo, Thrift) route configurations by name.
    pub meta_routes: NameMap<Arc<crate::model::meta_route::MetaRouteConfig>>,
    /// The pod table: which workload a source IP belongs to (`policy::identity`).
    pub workloads: Arc<crate::policy::identity::PodTable>,
}

impl Snapshot {
    /// Builds the next snapshot from the accepted resources, reusing unchanged clusters,
    /// and the endpoints (counters, pools) of changed ones.
    pub fn build(
        routes: &BTreeMap<String, Arc<RouteConfig>>,
        clusters: &BTreeMap<String, Arc<Cluster>>,
        endpoints: &BTreeMap<String, Arc<Endpoints>>,
        prev: &Snapshot,
    ) -> Snapshot {
        let routes = routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = NameMap::with_capacity_and_hasher(clusters.len(), Default::default());
        for (name, config) in clusters {
            let assignment = endpoints
                .get(&config.eds_name)
                .cloned()
                .or_else(|| config.inline_endpoints.clone());
            let old = prev.clusters.get(name);
            if let Some(old) = old
                && Arc::ptr_eq(&old.config, config)
                && opt_ptr_eq(&old.assignment, &assignment)
            {
                out.insert(name.clone(), old.clone());
                continue;
            }
            out.insert(
                name.clone(),
                Arc::new(ClusterState::build(
                    config.clone(),
                    assignment,
                    old.map(|o| &**o),
                )),
            );
        }
        Snapshot {
            routes,
            clusters: out,
            meta_routes: NameMap::default(),
            workloads: prev.workloads.clone(),
        }
    }
}

fn opt_ptr_eq<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl ClusterState {
    /// Builds a cluster's runtime state, reusing endpoints of `prev` with the same
    /// address (and protocol), so counters and pooled connections carry over.
    pub fn build(
        config: Arc<Cluster>,
        assignment: Option<Arc<Endpoints>>,
        prev: Option<&ClusterState>,
    ) -> Self {
        let counters = prev.map(|p| p.counters.clone()).unwrap_or_default();
        let mut members = Vec::new();
        let mut healthy = Vec::new();
        if let Some(a) = &assignment {
            for spec in &a.endpoints {
                let reused = prev.and_then(|p| {
                    p.members
                        .iter()
                        .find(|(e, _)| {
                            e.addr == spec.addr
                                && e.pool.is_http2() == config.http2
                                && *e.zone == *spec.zone
                                && e.labels == spec.labels
                        })
                        .map(|(e, _)| e.clone())
                });
                let ep = reused.unwrap_or_else(|| {
                    Arc::new(Endpoint::new(spec, config.http2, counters.detector.clone()))
                });
                if spec.health == Health::Healthy
                    && !healthy.iter().any(|e: &Arc<Endpoint>| e.addr == spec.addr)
                {
                    healthy.push(ep.clone());
                }
                members.push((ep, spec.health));
            }
        }
        counters
            .detector
            .configure(config.outlier.as_ref(), healthy.len());
        let addrs: Vec<SocketAddr> = healthy.iter().map(|e| e.addr).collect();
        let hash = match config.lb {
            LbPolicy::RingHash { minimum_ring_size } => {
                Some(HashTable::ring(&addrs, minimum_ring_size))
            }
            LbPolicy::Maglev { table_size } => Some(HashTable::maglev(&addrs, table_size)),
            _ => None,
        };
        ClusterState {
            zones: Zones::new(&healthy),
            hash,
            config,
            assignment,
            members,
            healthy,
            counters,
        }
    }

    /// Whether the circuit breaker lets one more request in.
    pub fn admits_request(&self) -> bool {
        self.counters.active_rq.load(Ordering::Relaxed) < u64::from(self.config.max_requests)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::cluster::{EndpointSpec, LbPolicy};
    use std::time::Duration;

    pub(crate) fn cluster(lb: LbPolicy) -> Cluster {
        Cluster {
            name: "c".into(),
            eds_name: "c".into(),
            lb,
            http2: false,
            connect_timeout: Duration::from_secs(1),
            max_requests: 1024,
            max_connections: 1024,
            max_pending: 1024,
            outlier: None,
            zone_aware: false,
            max_retries: 3,
            retry_budget: None,
            service: String::new(),
            inline_endpoints: None,
            redis: Default::default(),
        }
    }

    /// A cluster with `n` healthy endpoints on ports 1..=n.
    pub(crate) fn state(lb: LbPolicy, n: u16) -> ClusterState {
        let eps = Endpoints {
            name: "c".into(),
            endpoints: (1..=n)
                .map(|p| EndpointSpec {
                    addr: SocketAddr::from(([127, 0, 0, 1], p)),
                    health: Health::Healthy,
                    zone: String::new(),
                    labels: None,
                })
                .collect(),
        };
        ClusterState::build(Arc::new(cluster(lb)), Some(Arc::new(eps)), None)
    }

    #[test]
    fn endpoints_and_counters_survive_a_push() {
        let a = state(LbPolicy::RoundRobin, 2);
        a.healthy[0].total_rq.store(5, Ordering::Relaxed);
        a.counters.total_rq.store(9, Ordering::Relaxed);
        let mut eps = (**a.assignment.as_ref().unwrap()).clone();
        eps.endpoints[1].health = Health::Draining;
        let b = ClusterState::build(a.config.clone(), Some(Arc::new(eps)), Some(&a));
        assert_eq!(b.healthy.len(), 1);
        assert_eq!(b.members.len(), 2);
        assert!(Arc::ptr_eq(&a.healthy[0], &b.healthy[0]));
        assert_eq!(b.counters.total_rq.load(Ordering::Relaxed), 9);
    }
}
