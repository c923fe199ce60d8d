//! A cluster's resilience and balancing beyond its circuit breakers: DestinationRule
//! `outlierDetection` → `Cluster.outlier_detection`, `consistentHash` → RING_HASH or
//! MAGLEV with their table sizes (the routes to the cluster get the matching
//! `hash_policy`, see [`hash_policy`] and [`meta_hash_policy`]), and zone-aware
//! balancing for `localityLbSetting.enabled` or a Service with
//! `trafficDistribution: PreferClose`.

use corridor_proto::{
    envoy::{
        config::{
            cluster::v3::{
                Cluster, OutlierDetection,
                cluster::{
                    CommonLbConfig, LbConfig, LbPolicy, MaglevLbConfig, RingHashLbConfig,
                    common_lb_config::{LocalityConfigSpecifier, ZoneAwareLbConfig},
                },
            },
            route::v3::route_action::{
                HashPolicy,
                hash_policy::{
                    ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter,
                },
            },
        },
        r#type::v3::Percent,
    },
    google::protobuf::{UInt32Value, UInt64Value},
};

use super::{Context, ServiceInfo, pb_duration};
use crate::resources::{
    duration::parse_duration,
    istio::{ConsistentHashLb, LoadBalancerSettings, TrafficPolicy},
};

/// Istio's default ring size when `consistentHash` names none.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
/// Enforcement of an outlier check the rule sets: always, as Istio.
const ENFORCE_ALWAYS: u32 = 100;
/// The attribute MetaProtocol hash policies use for the caller's address.
pub const META_SOURCE_IP: &str = ":source_ip";

/// Adds outlier detection, the hashing policy and zone awareness to `cluster`.
pub(super) fn shape(
    cluster: &mut Cluster,
    policy: Option<&TrafficPolicy>,
    balancer: Option<&LoadBalancerSettings>,
    info: &ServiceInfo,
) {
    if let Some(o) = policy.and_then(|p| p.outlier_detection.as_ref()) {
        cluster.outlier_detection = Some(outlier_detection(o));
    }
    if let Some(h) = balancer.and_then(|b| b.consistent_hash.as_ref()) {
        if let Some(m) = &h.maglev {
            cluster.lb_policy = LbPolicy::Maglev as i32;
            cluster.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: m.table_size.map(|value| UInt64Value { value }),
            }));
        } else {
            cluster.lb_policy = LbPolicy::RingHash as i32;
            let size = h
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(h.minimum_ring_size)
                .unwrap_or(DEFAULT_MINIMUM_RING_SIZE);
            cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: size }),
                ..Default::default()
            }));
        }
    }
    let locality = balancer
        .and_then(|b| b.locality_lb_setting.as_ref())
        .and_then(|l| l.enabled);
    // The rule's explicit setting wins; else the Service's traffic distribution.
    if locality.unwrap_or(info.prefer_close) {
        let lb = cluster
            .common_lb_config
            .get_or_insert_with(CommonLbConfig::default);
        lb.locality_config_specifier = Some(LocalityConfigSpecifier::ZoneAwareLbConfig(
            ZoneAwareLbConfig {
                routing_enabled: Some(Percent { value: 100.0 }),
                // Prefer the zone however small the cluster: the gateway, not Envoy's
                // default of 6 endpoints, decides when a zone has too few.
                min_cluster_size: Some(UInt64Value { value: 1 }),
                ..Default::default()
            },
        ));
    }
}

/// Istio's translation of `outlierDetection`: every check the rule sets is enforced;
/// success-rate ejection (which Istio has no field for) is off.
fn outlier_detection(o: &crate::resources::istio::OutlierDetection) -> OutlierDetection {
    let count = |v: Option<i64>| v.map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
    let enforce = |v: Option<u32>| {
        v.map(|n| UInt32Value {
            value: if n > 0 { ENFORCE_ALWAYS } else { 0 },
        })
    };
    let time = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| parse_duration(t).ok())
            .map(pb_duration)
    };
    let c5xx = count(o.consecutive_5xx_errors);
    let gateway = count(o.consecutive_gateway_errors);
    let local = count(o.consecutive_local_origin_failures);
    OutlierDetection {
        consecutive_5xx: c5xx.map(|value| UInt32Value { value }),
        enforcing_consecutive_5xx: enforce(c5xx),
        consecutive_gateway_failure: gateway.map(|value| UInt32Value { value }),
        enforcing_consecutive_gateway_failure: enforce(gateway),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin_failure: local
            .filter(|_| o.split_external_local_origin_errors)
            .map(|value| UInt32Value { value }),
        enforcing_consecutive_local_origin_failure: enforce(local)
            .filter(|_| o.split_external_local_origin_errors),
        interval: time(&o.interval),
        base_ejection_time: time(&o.base_ejection_time),
        max_ejection_percent: count(o.max_ejection_percent).map(|value| UInt32Value { value }),
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    }
}

/// The consistent-hash settings of the cluster a route sends to (`outbound|port|subset|
/// host`), if its DestinationRule hashes.
fn hashing(ctx: &Context<'_>, cluster: &str) -> Option<ConsistentHashLb> {
    let mut parts = cluster.splitn(4, '|');
    let (_, port, subset, host) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let port: u32 = port.parse().ok()?;
    let info = ctx.services.values().find(|s| s.host == host)?;
    let rule = ctx.rules.get(&info.key).copied()?;
    let (_, policy) = super::cluster::subsets(Some(rule))
        .into_iter()
        .find(|(s, _)| s.map_or("", |s| s.name.as_str()) == subset)?;
    policy?.at_port(port).load_balancer?.consistent_hash
}

/// The one hash setting every cluster of a route agrees on, if any (a route splitting
/// traffic over clusters that hash differently gets none).
fn agreed<'a>(
    ctx: &Context<'_>,
    clusters: impl IntoIterator<Item = &'a str>,
) -> Option<ConsistentHashLb> {
    let mut found: Option<ConsistentHashLb> = None;
    for c in clusters {
        let h = hashing(ctx, c)?;
        match &found {
            Some(f) if *f != h => return None,
            _ => found = Some(h),
        }
    }
    found
}

/// The HTTP `hash_policy` of a route to `clusters`.
pub(super) fn hash_policy<'a>(
    ctx: &Context<'_>,
    clusters: impl IntoIterator<Item = &'a str>,
) -> Vec<HashPolicy> {
    let Some(h) = agreed(ctx, clusters) else {
        return Vec::new();
    };
    let specifier = if let Some(name) = h.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: name,
            ..Default::default()
        })
    } else if let Some(c) = h.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: c.name,
            path: c.path.unwrap_or_default(),
            ttl: c
                .ttl
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .map(pb_duration),
            ..Default::default()
        })
    } else if let Some(name) = h.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name })
    } else if h.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else {
        return Vec::new();
    };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }]
}

/// The MetaProtocol `hash_policy` (attribute names) of a route to `clusters`:
/// `httpHeaderName` names a Dubbo attachment or Thrift THeader header, `useSourceIp`
/// the caller's address; cookies and query parameters have no meaning there.
pub(super) fn meta_hash_policy<'a>(
    ctx: &Context<'_>,
    clusters: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let Some(h) = agreed(ctx, clusters) else {
        return Vec::new();
    };
    if let Some(name) = h.http_header_name {
        vec![name]
    } else if h.use_source_ip == Some(true) {
        vec![META_SOURCE_IP.to_string()]
    } else {
        Vec::new()
    }
}

/// Gives every HTTP route the hash policy of the clusters it sends to.
pub(super) fn hash_routes(
    ctx: &Context<'_>,
    routes: &mut [corridor_proto::envoy::config::route::v3::Route],
) {
    use corridor_proto::envoy::config::route::v3::{route::Action, route_action::ClusterSpecifier};
    for r in routes {
        let Some(Action::Route(a)) = &mut r.action else {
            continue;
        };
        let clusters: Vec<&str> = match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => vec![c.as_str()],
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                w.clusters.iter().map(|c| c.name.as_str()).collect()
            }
            _ => continue,
        };
        let policy = hash_policy(ctx, clusters);
        a.hash_policy = policy;
    }
}

/// Gives every MetaProtocol (Dubbo, Thrift) route the hash policy of its clusters.
pub(super) fn hash_meta_routes(
    ctx: &Context<'_>,
    routes: &mut [corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::Route],
) {
    use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::route_action::ClusterSpecifier;
    for r in routes {
        let Some(a) = &mut r.route else { continue };
        let clusters: Vec<&str> = match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => vec![c.as_str()],
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                w.clusters.iter().map(|c| c.name.as_str()).collect()
            }
            None => continue,
        };
        let policy = meta_hash_policy(ctx, clusters);
        a.hash_policy = policy;
    }
}

#[cfg(test)]
mod tests;
