//! Clusters and their endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use corridor_proto::envoy::config::cluster::v3::{
    Cluster as PbCluster,
    cluster::{
        ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy as PbLbPolicy,
        common_lb_config::LocalityConfigSpecifier,
    },
};
use corridor_proto::envoy::config::core::v3::HealthStatus;
use corridor_proto::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use corridor_proto::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};

use corridor_proto::envoy::extensions::filters::network::redis_proxy::v3::RedisProtocolOptions;

use super::listener::socket_addr;
use crate::cluster::hash::{DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MIN_RING_SIZE};

/// Envoy's largest Maglev table.
const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;
use super::redis::{REDIS_CLUSTER_TYPE, REDIS_PROXY_FILTER, RedisMode, RedisUpstream};
use super::{ModelError, decode_any, duration, metadata_string};

/// Key of the upstream HTTP protocol options in `typed_extension_protocol_options`.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default circuit-breaker limit on concurrent requests per cluster.
const DEFAULT_MAX_REQUESTS: u32 = 1024;
/// Envoy's default limit on concurrent retries per cluster (when no retry budget is set).
const DEFAULT_MAX_RETRIES: u32 = 3;
/// Envoy's default limit on connections per cluster.
const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Envoy's default limit on requests waiting for a connection per cluster.
const DEFAULT_MAX_PENDING: u32 = 1024;

/// Load-balancing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LbPolicy {
    /// Round robin over healthy endpoints.
    RoundRobin,
    /// Power of two choices on active requests.
    LeastRequest,
    /// Uniform random.
    Random,
    /// Consistent hashing on a ring of at least this many points (requests without a
    /// hash key pick at random).
    RingHash {
        /// `ring_hash_lb_config.minimum_ring_size`.
        minimum_ring_size: u64,
    },
    /// Consistent hashing on a Maglev table of this size.
    Maglev {
        /// `maglev_lb_config.table_size`.
        table_size: u64,
    },
}

/// Retry budget from the circuit breakers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Percentage of active requests that may be retries.
    pub percent: f64,
    /// Retries always allowed regardless of the percentage.
    pub min_concurrency: u32,
}

/// A validated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Resource name.
    pub name: String,
    /// The EDS resource holding its endpoints.
    pub eds_name: String,
    /// Load-balancing policy.
    pub lb: LbPolicy,
    /// Talk HTTP/2 (prior knowledge) upstream.
    pub http2: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Circuit breaker: concurrent requests.
    pub max_requests: u32,
    /// Circuit breaker: connections (requests holding one, see `cluster::breaker`).
    pub max_connections: u32,
    /// Circuit breaker: requests waiting for a connection.
    pub max_pending: u32,
    /// Outlier detection, when configured.
    pub outlier: Option<crate::cluster::outlier::OutlierConfig>,
    /// Prefer endpoints in the gateway's own zone (`common_lb_config.zone_aware_lb_config`
    /// with routing enabled).
    pub zone_aware: bool,
    /// Circuit breaker: concurrent retries (when no budget is configured).
    pub max_retries: u32,
    /// Retry budget, preferred over `max_retries` when present.
    pub retry_budget: Option<RetryBudget>,
    /// The service this cluster belongs to (metadata), for telemetry.
    pub service: String,
    /// Endpoints given inline (`load_assignment`), for cluster types that take no EDS
    /// (a Redis Cluster's seeds).
    pub inline_endpoints: Option<std::sync::Arc<Endpoints>>,
    /// How a Redis proxy uses it: PROXY or CLUSTER mode, upstream AUTH.
    pub redis: RedisUpstream,
}

impl TryFrom<&PbCluster> for Cluster {
    type Error = ModelError;

    fn try_from(c: &PbCluster) -> Result<Self, ModelError> {
        if c.name.is_empty() {
            return Err(ModelError::Missing("name"));
        }
        let mode = match &c.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) if *t == DiscoveryType::Eds as i32 => {
                RedisMode::Proxy
            }
            Some(ClusterDiscoveryType::ClusterType(t)) if t.name == REDIS_CLUSTER_TYPE => {
                RedisMode::Cluster
            }
            _ => {
                return Err(ModelError::Unsupported(
                    "cluster type other than EDS or envoy.clusters.redis".into(),
                ));
            }
        };
        let inline_endpoints = match (&c.load_assignment, mode) {
            (Some(la), RedisMode::Cluster) => {
                let mut la = la.clone();
                if la.cluster_name.is_empty() {
                    la.cluster_name = c.name.clone();
                }
                Some(std::sync::Arc::new(Endpoints::try_from(&la)?))
            }
            (None, RedisMode::Cluster) => {
                return Err(ModelError::Missing("load_assignment (Redis Cluster seeds)"));
            }
            _ => None,
        };
        let redis_options = c
            .typed_extension_protocol_options
            .get(REDIS_PROXY_FILTER)
            .map(decode_any::<RedisProtocolOptions>)
            .transpose()?;
        let redis = RedisUpstream::new(mode, redis_options.as_ref())?;
        let eds_name = c
            .eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| c.name.clone());
        let lb = match PbLbPolicy::try_from(c.lb_policy) {
            Ok(PbLbPolicy::RoundRobin) => LbPolicy::RoundRobin,
            Ok(PbLbPolicy::LeastRequest) => LbPolicy::LeastRequest,
            Ok(PbLbPolicy::Random) => LbPolicy::Random,
            // The Redis proxy hashes each command's key its own way; other protocols
            // hash the key their routes' hash policies name.
            Ok(PbLbPolicy::RingHash) => LbPolicy::RingHash {
                minimum_ring_size: match &c.lb_config {
                    Some(LbConfig::RingHashLbConfig(r)) => r
                        .minimum_ring_size
                        .as_ref()
                        .map_or(DEFAULT_MIN_RING_SIZE, |v| v.value),
                    _ => DEFAULT_MIN_RING_SIZE,
                },
            },
            Ok(PbLbPolicy::Maglev) => LbPolicy::Maglev {
                table_size: match &c.lb_config {
                    Some(LbConfig::MaglevLbConfig(m)) => m
                        .table_size
                        .as_ref()
                        .map_or(DEFAULT_MAGLEV_TABLE_SIZE, |v| v.value),
                    _ => DEFAULT_MAGLEV_TABLE_SIZE,
                },
            },
            // A Redis Cluster picks its node by slot.
            Ok(PbLbPolicy::ClusterProvided) => LbPolicy::Random,
            Ok(other) => return Err(ModelError::Unsupported(format!("lb_policy {other:?}"))),
            Err(_) => return Err(ModelError::invalid("lb_policy", c.lb_policy.to_string())),
        };
        let connect_timeout = match &c.connect_timeout {
            Some(d) => duration(d, "connect_timeout")?,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        #[allow(deprecated)]
        let mut http2 = c.http2_protocol_options.is_some();
        if let Some(any) = c
            .typed_extension_protocol_options
            .get(HTTP_PROTOCOL_OPTIONS)
        {
            let opts: HttpProtocolOptions = decode_any(any)?;
            if let Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) =
                opts.upstream_protocol_options
            {
                http2 = matches!(
                    e.protocol_config,
                    Some(ProtocolConfig::Http2ProtocolOptions(_))
                );
            }
        }
        if let LbPolicy::Maglev { table_size } = lb
            && (table_size == 0 || table_size > MAX_MAGLEV_TABLE_SIZE)
        {
            return Err(ModelError::invalid(
                "maglev_lb_config.table_size",
                table_size.to_string(),
            ));
        }
        let mut max_requests = DEFAULT_MAX_REQUESTS;
        let mut max_connections = DEFAULT_MAX_CONNECTIONS;
        let mut max_pending = DEFAULT_MAX_PENDING;
        let mut max_retries = DEFAULT_MAX_RETRIES;
        let mut retry_budget = None;
        // Only the default-priority thresholds apply: the gateway has no priorities.
        if let Some(t) = c
            .circuit_breakers
            .as_ref()
            .and_then(|cb| cb.thresholds.iter().find(|t| t.priority == 0))
        {
            if let Some(v) = &t.max_requests {
                max_requests = v.value;
            }
            if let Some(v) = &t.max_retries {
                max_retries = v.value;
            }
            if let Some(v) = &t.max_connections {
                max_connections = v.value;
            }
            if let Some(v) = &t.max_pending_requests {
                max_pending = v.value;
            }
            if let Some(b) = &t.retry_budget {
                // Envoy's defaults: 20 % and 3.
                let percent = b.budget_percent.as_ref().map_or(20.0, |p| p.value);
                if !(0.0..=100.0).contains(&percent) {
                    return Err(ModelError::invalid(
                        "retry_budget.budget_percent",
                        percent.to_string(),
                    ));
                }
                let min_concurrency = b.min_retry_concurrency.as_ref().map_or(3, |v| v.value);
                retry_budget = Some(RetryBudget {
                    percent,
                    min_concurrency,
                });
            }
        }
        let outlier = c
            .outlier_detection
            .as_ref()
            .map(crate::cluster::outlier::OutlierConfig::from_proto)
            .transpose()?;
        let zone_aware = c
            .common_lb_config
            .as_ref()
            .and_then(|l| l.locality_config_specifier.as_ref())
            .is_some_and(|l| match l {
                LocalityConfigSpecifier::ZoneAwareLbConfig(z) => {
                    z.routing_enabled.as_ref().is_none_or(|p| p.value > 0.0)
                }
                LocalityConfigSpecifier::LocalityWeightedLbConfig(_) => false,
            });
        Ok(Cluster {
            name: c.name.clone(),
            eds_name,
            lb,
            http2,
            connect_timeout,
            max_requests,
            max_connections,
            max_pending,
            outlier,
            zone_aware,
            max_retries,
            retry_budget,
            service: metadata_string(c.metadata.as_ref(), "corridor", "service")
                .unwrap_or_default(),
            inline_endpoints,
            redis,
        })
    }
}

/// Health of an endpoint as the control plane reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Health {
    /// Takes new requests (`HEALTHY`, or `UNKNOWN` as Envoy treats it).
    Healthy,
    /// Finishing its work, no new requests.
    Draining,
    /// No requests.
    Unhealthy,
}

impl Health {
    /// Envoy's name of the state, for `/clusters`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Draining => "draining",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One endpoint of an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Whether it takes requests.
    pub health: Health,
    /// Zone of its locality.
    pub zone: String,
    /// Who serves behind it (the controller's `corridor` endpoint metadata), for
    /// destination labels in telemetry.
    pub labels: Option<std::sync::Arc<EndpointLabels>>,
}

/// The workload behind an endpoint, from EDS `metadata.filter_metadata["corridor"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointLabels {
    /// Workload name (Deployment, StatefulSet, ... or the Pod).
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// `app` label (or `app.kubernetes.io/name`).
    pub app: String,
    /// `version` label (or `app.kubernetes.io/version`).
    pub version: String,
    /// Service account.
    pub service_account: String,
}

impl EndpointLabels {
    /// From an LbEndpoint's metadata; `None` when it carries no `corridor` entry.
    pub fn from_metadata(
        md: Option<&corridor_proto::envoy::config::core::v3::Metadata>,
    ) -> Option<EndpointLabels> {
        md?.filter_metadata.get(ENDPOINT_METADATA)?;
        let field = |f| metadata_string(md, ENDPOINT_METADATA, f).unwrap_or_default();
        Some(EndpointLabels {
            workload: field("workload"),
            namespace: field("namespace"),
            app: field("app"),
            version: field("version"),
            service_account: field("sa"),
        })
    }
}

/// The filter metadata key of the controller's endpoint labels.
pub const ENDPOINT_METADATA: &str = "corridor";

/// A validated ClusterLoadAssignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Resource name.
    pub name: String,
    /// All endpoints, in order.
    pub endpoints: Vec<EndpointSpec>,
}

impl TryFrom<&ClusterLoadAssignment> for Endpoints {
    type Error = ModelError;

    fn try_from(cla: &ClusterLoadAssignment) -> Result<Self, ModelError> {
        if cla.cluster_name.is_empty() {
            return Err(ModelError::Missing("cluster_name"));
        }
        let mut endpoints = Vec::new();
        for loc in &cla.endpoints {
            let zone = loc
                .locality
                .as_ref()
                .map(|l| l.zone.clone())
                .unwrap_or_default();
            for lbe in &loc.lb_endpoints {
                let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &lbe.host_identifier else {
                    return Err(ModelError::Missing("lb_endpoints.endpoint"));
                };
                let addr = socket_addr(ep.address.as_ref())?;
                let health = match HealthStatus::try_from(lbe.health_status) {
                    Ok(HealthStatus::Healthy | HealthStatus::Unknown) => Health::Healthy,
                    Ok(HealthStatus::Draining) => Health::Draining,
                    _ => Health::Unhealthy,
                };
                endpoints.push(EndpointSpec {
                    addr,
                    health,
                    zone: zone.clone(),
                    labels: EndpointLabels::from_metadata(lbe.metadata.as_ref())
                        .map(std::sync::Arc::new),
                });
            }
        }
        Ok(Endpoints {
            name: cla.cluster_name.clone(),
            endpoints,
        })
    }
}

#[cfg(test)]
mod tests;
