//! Clusters: one per (service, port) and one per (service, port, DestinationRule subset).

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use corridor_proto::{
    envoy::{
        config::{
            cluster::v3::{
                CircuitBreakers, Cluster,
                circuit_breakers::{Thresholds, thresholds::RetryBudget},
                cluster::{
                    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, EdsClusterConfig, LbPolicy,
                },
            },
            core::v3::{Http2ProtocolOptions, RoutingPriority},
        },
        extensions::upstreams::http::v3::{
            HttpProtocolOptions,
            http_protocol_options::{
                ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
            },
        },
        r#type::v3::Percent,
    },
    google::protobuf::UInt32Value,
    pack_any,
};

use super::{MetaValue, PortInfo, ServiceInfo, ads_config_source, corridor_metadata, pb_duration};
use crate::{
    resources::{
        DestinationRule,
        duration::parse_duration,
        istio::{ConnectionPoolSettings, PortSelector, PortTrafficPolicy, Subset, TrafficPolicy},
    },
    xds::snapshot::Resource,
};

/// Connect timeout when the DestinationRule sets none: Istio's default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Share of active requests that may be retries when no `maxRetries` is set: a budget
/// scales with load where a fixed count does not.
pub const DEFAULT_RETRY_BUDGET_PERCENT: f64 = 20.0;
/// Retries always allowed regardless of the budget, so a quiet service can still retry.
pub const DEFAULT_MIN_RETRY_CONCURRENCY: u32 = 3;
/// Limit used when the DestinationRule sets none: as Istio, effectively unlimited, so that
/// meshing a service never introduces a limit the user did not ask for.
pub const UNLIMITED: u32 = u32::MAX;
/// Key of the upstream HTTP protocol options extension.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The clusters a service port gets: the default one (no subset) and one per subset, each
/// with its effective traffic policy (the subset's fields over the rule's).
pub(super) fn subsets(
    rule: Option<&DestinationRule>,
) -> Vec<(Option<&Subset>, Option<TrafficPolicy>)> {
    let top = rule.and_then(|r| r.spec.traffic_policy.clone());
    let mut out = vec![(None, top.clone())];
    for subset in rule.iter().flat_map(|r| &r.spec.subsets) {
        out.push((
            Some(subset),
            merge(top.as_ref(), subset.traffic_policy.as_ref()),
        ));
    }
    out
}

fn merge(base: Option<&TrafficPolicy>, over: Option<&TrafficPolicy>) -> Option<TrafficPolicy> {
    match (base, over) {
        (None, None) => None,
        (Some(b), None) => Some(b.clone()),
        (None, Some(o)) => Some(o.clone()),
        (Some(b), Some(o)) => Some(TrafficPolicy {
            load_balancer: o.load_balancer.clone().or_else(|| b.load_balancer.clone()),
            connection_pool: match (&b.connection_pool, &o.connection_pool) {
                (Some(bp), Some(op)) => Some(ConnectionPoolSettings {
                    tcp: op.tcp.clone().or_else(|| bp.tcp.clone()),
                    http: op.http.clone().or_else(|| bp.http.clone()),
                }),
                (bp, op) => op.clone().or_else(|| bp.clone()),
            },
            outlier_detection: o
                .outlier_detection
                .clone()
                .or_else(|| b.outlier_detection.clone()),
            // As Istio: each side's port-level entry for a port first, then the subset's
            // fields over the rule's; one merged entry per port either side names.
            port_level_settings: ports_of(b)
                .chain(ports_of(o))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter_map(|n| {
                    let merged = merge(Some(&b.at_port(n)), Some(&o.at_port(n)))?;
                    Some(PortTrafficPolicy {
                        port: Some(PortSelector { number: Some(n) }),
                        load_balancer: merged.load_balancer,
                        connection_pool: merged.connection_pool,
                        outlier_detection: merged.outlier_detection,
                    })
                })
                .collect(),
        }),
    }
}

fn ports_of(p: &TrafficPolicy) -> impl Iterator<Item = u32> + '_ {
    p.port_level_settings
        .iter()
        .filter_map(|s| s.port.as_ref().and_then(|s| s.number))
}

fn lb_policy(simple: Option<&str>) -> Option<LbPolicy> {
    Some(match simple.unwrap_or("ROUND_ROBIN") {
        "ROUND_ROBIN" | "UNSPECIFIED" => LbPolicy::RoundRobin,
        "LEAST_REQUEST" | "LEAST_CONN" => LbPolicy::LeastRequest,
        "RANDOM" => LbPolicy::Random,
        _ => return None,
    })
}

fn limit(value: Option<i64>) -> Option<UInt32Value> {
    let v = value.map_or(UNLIMITED, |v| u32::try_from(v).unwrap_or(UNLIMITED));
    Some(UInt32Value { value: v })
}

pub(super) fn build(
    name: &str,
    info: &ServiceInfo,
    port: &PortInfo,
    subset: Option<&Subset>,
    policy: Option<&TrafficPolicy>,
    redis: Option<&super::redis::Upstream>,
) -> Resource {
    // This port's entry of `portLevelSettings`, if any, over the rule's fields.
    let at_port = policy.map(|p| p.at_port(u32::from(port.number)));
    let policy = at_port.as_ref();
    let pool = policy.and_then(|p| p.connection_pool.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let connect_timeout = tcp
        .and_then(|t| t.connect_timeout.as_deref())
        .and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let balancer = policy.and_then(|p| p.load_balancer.as_ref());
    let simple = balancer.and_then(|l| l.simple.as_deref());
    let max_retries = http.and_then(|h| h.max_retries);
    let thresholds = Thresholds {
        priority: RoutingPriority::Default as i32,
        max_connections: limit(tcp.and_then(|t| t.max_connections)),
        max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
        max_requests: limit(http.and_then(|h| h.http2_max_requests)),
        max_retries: limit(max_retries),
        retry_budget: max_retries.is_none().then(|| RetryBudget {
            budget_percent: Some(Percent {
                value: DEFAULT_RETRY_BUDGET_PERCENT,
            }),
            min_retry_concurrency: Some(UInt32Value {
                value: DEFAULT_MIN_RETRY_CONCURRENCY,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut cluster = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(pb_duration(connect_timeout)),
        lb_policy: lb_policy(simple).unwrap_or(LbPolicy::RoundRobin) as i32,
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![thresholds],
            ..Default::default()
        }),
        // No panic mode: not-ready endpoints never take traffic, however few are ready
        // (corridor-gateway has no panic mode; this makes a stock Envoy agree).
        common_lb_config: Some(CommonLbConfig {
            healthy_panic_threshold: Some(Percent { value: 0.0 }),
            ..Default::default()
        }),
        ..Default::default()
    };
    if port.protocol.is_http2() {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        // A single-entry map encodes deterministically.
        cluster.typed_extension_protocol_options =
            HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(options))]);
    }
    // === Resilience and balancing: outlier detection, consistent hashing, zones ===
    super::resilience::shape(&mut cluster, policy, balancer, info);
    // === Redis: hashing or Redis Cluster discovery, upstream auth ===
    if let Some(redis) = redis {
        redis.shape(&mut cluster);
    }
    let (metadata, canonical) = corridor_metadata(BTreeMap::from([
        ("service", MetaValue::Str(info.host.clone())),
        (
            "subset",
            MetaValue::Str(subset.map(|s| s.name.clone()).unwrap_or_default()),
        ),
        ("port", MetaValue::Num(f64::from(port.number))),
    ]));
    let bare = cluster.clone();
    cluster.metadata = Some(metadata);
    Resource::with_canonical(name.to_string(), &cluster, &bare, &canonical)
}

/// Checks a DestinationRule; the reason names the offending field.
pub fn validate_destination_rule(dr: &DestinationRule) -> Result<(), String> {
    if dr.spec.host.is_empty() {
        return Err("spec.host is empty".to_string());
    }
    check_policy("spec.trafficPolicy", dr.spec.traffic_policy.as_ref())?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in dr.spec.subsets.iter().enumerate() {
        if s.name.is_empty() {
            return Err(format!("spec.subsets[{i}].name is empty"));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(format!(
                "spec.subsets[{i}]: subset {:?} is defined twice",
                s.name
            ));
        }
        check_policy(
            &format!("spec.subsets[{i}].trafficPolicy"),
            s.traffic_policy.as_ref(),
        )?;
    }
    Ok(())
}

pub(super) fn check_policy(path: &str, policy: Option<&TrafficPolicy>) -> Result<(), String> {
    let Some(p) = policy else { return Ok(()) };
    p.check(path)?;
    for (i, port) in p.port_level_settings.iter().enumerate() {
        check_policy(
            &format!("{path}.portLevelSettings[{i}]"),
            Some(&port.policy()),
        )?;
    }
    if let Some(simple) = p.load_balancer.as_ref().and_then(|l| l.simple.as_deref())
        && lb_policy(Some(simple)).is_none()
    {
        return Err(format!(
            "{path}.loadBalancer.simple {simple:?} is not one of ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM"
        ));
    }
    let pool = p.connection_pool.as_ref();
    if let Some(t) = pool.and_then(|c| c.tcp.as_ref()) {
        if let Some(ct) = &t.connect_timeout {
            parse_duration(ct)
                .map_err(|e| format!("{path}.connectionPool.tcp.connectTimeout: {e}"))?;
        }
        non_negative(
            &format!("{path}.connectionPool.tcp.maxConnections"),
            t.max_connections,
        )?;
    }
    if let Some(h) = pool.and_then(|c| c.http.as_ref()) {
        non_negative(
            &format!("{path}.connectionPool.http.http1MaxPendingRequests"),
            h.http1_max_pending_requests,
        )?;
        non_negative(
            &format!("{path}.connectionPool.http.http2MaxRequests"),
            h.http2_max_requests,
        )?;
        non_negative(
            &format!("{path}.connectionPool.http.maxRetries"),
            h.max_retries,
        )?;
    }
    Ok(())
}

fn non_negative(path: &str, v: Option<i64>) -> Result<(), String> {
    match v {
        Some(n) if n < 0 => Err(format!("{path} is negative ({n})")),
        _ => Ok(()),
    }
}
