//! `networking.istio.io` DestinationRule: subsets and the traffic policy of a service's
//! clusters (load balancing, connection pool limits, outlier detection), also per subset
//! and per port.
//!
//! [`TrafficPolicy::check`] holds the checks that need nothing but the policy itself
//! (ranges, exclusive fields); translate/cluster.rs runs them at admission.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{LoadBalancerSettings, PortSelector};
use crate::resources::duration::parse_duration;

#[cfg(test)]
mod tests;

/// `networking.istio.io` DestinationRule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Policies.
    #[serde(default)]
    pub spec: DestinationRuleSpec,
}

/// `DestinationRule.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service the rule applies to.
    #[serde(default)]
    pub host: String,
    /// Policy for all subsets.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets.
    #[serde(default)]
    pub subsets: Vec<Subset>,
}

/// A named subset of a service's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name (`v1`).
    pub name: String,
    /// Pod labels selecting the subset.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides the rule's policy for this subset.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Load-balancing, connection-pool and outlier-detection policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancer.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// Overrides for single ports of the service (a port's entry wins over the fields
    /// above, as in Istio).
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `trafficPolicy.portLevelSettings[]`: the policy of one port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The port (by number).
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// Load balancer.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `trafficPolicy.outlierDetection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// 5xx answers (and, for meta protocols, their equivalents) in a row that eject an
    /// endpoint; 0 disables this check.
    #[serde(default, rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<i64>,
    /// 502, 503 and 504 answers (and connect failures, timeouts) in a row that eject an
    /// endpoint; 0 disables this check.
    #[serde(default)]
    pub consecutive_gateway_errors: Option<i64>,
    /// Local-origin failures (connect errors, resets) in a row that eject an endpoint, when
    /// `splitExternalLocalOriginErrors` is on.
    #[serde(default)]
    pub consecutive_local_origin_failures: Option<i64>,
    /// Count local-origin failures apart from upstream answers.
    #[serde(default)]
    pub split_external_local_origin_errors: bool,
    /// Time between ejection sweeps (`10s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Minimum ejection time, multiplied by the number of ejections (`30s`).
    #[serde(default)]
    pub base_ejection_time: Option<String>,
    /// Most endpoints (percent) ejected at once.
    #[serde(default)]
    pub max_ejection_percent: Option<i64>,
    /// Below this share (percent) of healthy endpoints, ejection stops.
    #[serde(default)]
    pub min_health_percent: Option<i64>,
}

/// `trafficPolicy.connectionPool`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// TCP settings.
    #[serde(default)]
    pub tcp: Option<TcpSettings>,
    /// HTTP settings.
    #[serde(default)]
    pub http: Option<HttpSettings>,
}

/// `connectionPool.tcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Maximum connections to the destination.
    #[serde(default)]
    pub max_connections: Option<i64>,
    /// TCP connect timeout (`10s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
}

/// `connectionPool.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Maximum queued requests.
    #[serde(default)]
    pub http1_max_pending_requests: Option<i64>,
    /// Maximum concurrent requests.
    #[serde(default)]
    pub http2_max_requests: Option<i64>,
    /// Maximum concurrent retries.
    #[serde(default)]
    pub max_retries: Option<i64>,
    /// Requests per upstream connection before it is closed (0 or absent: unlimited).
    #[serde(default)]
    pub max_requests_per_connection: Option<i64>,
}

// === checks ===

impl TrafficPolicy {
    /// Checks the fields that stand on their own: outlier detection, hashing, locality,
    /// `maxRequestsPerConnection` and the port-level entries' ports. The reason names the
    /// offending field under `path`.
    pub fn check(&self, path: &str) -> Result<(), String> {
        check_parts(
            path,
            self.load_balancer.as_ref(),
            self.connection_pool.as_ref(),
            self.outlier_detection.as_ref(),
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.port_level_settings.iter().enumerate() {
            let at = format!("{path}.portLevelSettings[{i}]");
            let number = p.port.as_ref().and_then(|s| s.number);
            match number {
                Some(n @ 1..=65535) if !seen.insert(n) => {
                    return Err(format!("{at}.port.number {n} has settings twice"));
                }
                Some(1..=65535) => {}
                Some(n) => return Err(format!("{at}.port.number {n} is not a port (1-65535)")),
                None => return Err(format!("{at}.port.number is missing")),
            }
            check_parts(
                &at,
                p.load_balancer.as_ref(),
                p.connection_pool.as_ref(),
                p.outlier_detection.as_ref(),
            )?;
        }
        Ok(())
    }
}

impl TrafficPolicy {
    /// The policy port `number` gets: its `portLevelSettings` entry's fields where the
    /// entry sets them, the rule's elsewhere (Istio's rule).
    pub fn at_port(&self, number: u32) -> TrafficPolicy {
        let entry = self
            .port_level_settings
            .iter()
            .find(|p| p.port.as_ref().and_then(|s| s.number) == Some(number));
        TrafficPolicy {
            load_balancer: entry
                .and_then(|e| e.load_balancer.clone())
                .or_else(|| self.load_balancer.clone()),
            connection_pool: entry
                .and_then(|e| e.connection_pool.clone())
                .or_else(|| self.connection_pool.clone()),
            outlier_detection: entry
                .and_then(|e| e.outlier_detection.clone())
                .or_else(|| self.outlier_detection.clone()),
            port_level_settings: Vec::new(),
        }
    }
}

impl PortTrafficPolicy {
    /// This port's settings as a policy of their own (no port-level entries), so the
    /// checks of a whole policy apply to them.
    pub fn policy(&self) -> TrafficPolicy {
        TrafficPolicy {
            load_balancer: self.load_balancer.clone(),
            connection_pool: self.connection_pool.clone(),
            outlier_detection: self.outlier_detection.clone(),
            port_level_settings: Vec::new(),
        }
    }
}

fn check_parts(
    path: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
) -> Result<(), String> {
    if let Some(lb) = lb {
        lb.check(&format!("{path}.loadBalancer"))?;
    }
    if let Some(n) = pool
        .and_then(|p| p.http.as_ref())
        .and_then(|h| h.max_requests_per_connection)
        && n < 0
    {
        return Err(format!(
            "{path}.connectionPool.http.maxRequestsPerConnection is negative ({n})"
        ));
    }
    if let Some(o) = outlier {
        check_outlier(&format!("{path}.outlierDetection"), o)?;
    }
    Ok(())
}

fn check_outlier(at: &str, o: &OutlierDetection) -> Result<(), String> {
    for (field, v) in [
        ("consecutive5xxErrors", o.consecutive_5xx_errors),
        ("consecutiveGatewayErrors", o.consecutive_gateway_errors),
        (
            "consecutiveLocalOriginFailures",
            o.consecutive_local_origin_failures,
        ),
    ] {
        if let Some(n) = v
            && n < 0
        {
            return Err(format!("{at}.{field} is negative ({n})"));
        }
    }
    for (field, v) in [
        ("interval", &o.interval),
        ("baseEjectionTime", &o.base_ejection_time),
    ] {
        if let Some(text) = v {
            let d = parse_duration(text).map_err(|e| format!("{at}.{field}: {e}"))?;
            // Istio's rule: sweeps and ejections shorter than a millisecond are mistakes.
            if d < std::time::Duration::from_millis(1) {
                return Err(format!("{at}.{field} {text:?} is shorter than 1ms"));
            }
        }
    }
    for (field, v) in [
        ("maxEjectionPercent", o.max_ejection_percent),
        ("minHealthPercent", o.min_health_percent),
    ] {
        if let Some(p) = v
            && !(0..=100).contains(&p)
        {
            return Err(format!("{at}.{field} {p} is not in 0-100"));
        }
    }
    Ok(())
}
