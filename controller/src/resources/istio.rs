//! Serde types for the Istio networking resources the controller honours
//! (`networking.istio.io` VirtualService and DestinationRule, in `v1`, `v1beta1` and
//! `v1alpha3`, which share one schema for these fields). Fields the controller does not
//! implement yet are ignored on input.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The Istio API group.
pub const GROUP: &str = "networking.istio.io";
/// The API versions accepted for VirtualService and DestinationRule.
pub const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// `networking.istio.io` VirtualService.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    /// Object metadata (name, namespace, labels).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The routing rules.
    #[serde(default)]
    pub spec: VirtualServiceSpec,
}

/// `VirtualService.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Destination hosts the rules apply to (short name, `name.namespace`, or FQDN).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways the rules apply to; empty or containing `mesh` means in-mesh traffic.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// HTTP routes, evaluated in order.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

/// One HTTP route of a VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Optional name, used in the Envoy route name.
    #[serde(default)]
    pub name: Option<String>,
    /// Match conditions, OR-ed; empty matches everything.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<HttpRouteDestination>,
    /// Request timeout (`1s`, `250ms`, ...).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retry policy; absent means Istio's default retries.
    #[serde(default)]
    pub retries: Option<HttpRetry>,
    /// Path / authority rewrite.
    #[serde(default)]
    pub rewrite: Option<HttpRewrite>,
}

/// Match conditions of one route (all must hold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Optional name of the match.
    #[serde(default)]
    pub name: Option<String>,
    /// Path match.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// Header matches by header name.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must NOT match.
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Method match (`:method`).
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// Authority match (`:authority`).
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive path match.
    #[serde(default)]
    pub ignore_uri_case: bool,
}

/// Istio's `StringMatch`: exactly one of `exact`, `prefix`, `regex`; an empty object means
/// "present" for header matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact value.
    #[serde(default)]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// RE2 regular expression, full match.
    #[serde(default)]
    pub regex: Option<String>,
}

/// One weighted destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Destination,
    /// Relative weight; absent means 0 when others have weights, equal split otherwise.
    #[serde(default)]
    pub weight: Option<i64>,
}

/// A destination service, optional subset and port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host (short name, `name.namespace`, or FQDN).
    pub host: String,
    /// DestinationRule subset name.
    #[serde(default)]
    pub subset: Option<String>,
    /// Service port.
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// A service port by number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortSelector {
    /// The port number.
    #[serde(default)]
    pub number: Option<u32>,
}

/// Retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries; 0 disables retries.
    #[serde(default)]
    pub attempts: i64,
    /// Timeout per attempt.
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    /// Comma-separated Envoy retry conditions and/or status codes.
    #[serde(default)]
    pub retry_on: Option<String>,
}

/// Rewrite of the path prefix and/or the authority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replacement of the matched path prefix.
    #[serde(default)]
    pub uri: Option<String>,
    /// Replacement authority / Host.
    #[serde(default)]
    pub authority: Option<String>,
}

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

/// Load-balancing and connection-pool policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancer.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `trafficPolicy.loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// `ROUND_ROBIN`, `LEAST_REQUEST`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH`, `UNSPECIFIED`.
    #[serde(default)]
    pub simple: Option<String>,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: { end-user: { exact: jason } }
      uri: { prefix: /api }
      method: { exact: GET }
      authority: { regex: "rev.*" }
      queryParams: { debug: { exact: "1" } }
    route:
    - destination: { host: reviews, subset: v2, port: { number: 9080 } }
    timeout: 1.5s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure" }
    rewrite: { uri: /v2, authority: reviews-v2 }
  - route:
    - destination: { host: reviews, subset: v1 }
      weight: 90
    - destination: { host: reviews, subset: v3 }
      weight: 10
"#;

    const DR: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 2s }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRetries: 3 }
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
    trafficPolicy: { loadBalancer: { simple: RANDOM } }
"#;

    #[test]
    fn virtual_service_parses_in_every_version() {
        for v in VERSIONS {
            let vs: VirtualService = serde_yaml_ng::from_str(&VS.replace("VERSION", v)).unwrap();
            assert_eq!(vs.spec.hosts, vec!["reviews"]);
            let r0 = &vs.spec.http[0];
            assert_eq!(r0.name.as_deref(), Some("jason"));
            let m = &r0.matches[0];
            assert_eq!(m.headers["end-user"].exact.as_deref(), Some("jason"));
            assert_eq!(m.uri.as_ref().unwrap().prefix.as_deref(), Some("/api"));
            assert_eq!(m.method.as_ref().unwrap().exact.as_deref(), Some("GET"));
            assert_eq!(
                m.authority.as_ref().unwrap().regex.as_deref(),
                Some("rev.*")
            );
            assert_eq!(m.query_params["debug"].exact.as_deref(), Some("1"));
            assert_eq!(r0.route[0].destination.subset.as_deref(), Some("v2"));
            assert_eq!(
                r0.route[0].destination.port.as_ref().unwrap().number,
                Some(9080)
            );
            assert_eq!(r0.timeout.as_deref(), Some("1.5s"));
            let retries = r0.retries.as_ref().unwrap();
            assert_eq!(retries.attempts, 3);
            assert_eq!(retries.per_try_timeout.as_deref(), Some("500ms"));
            assert_eq!(retries.retry_on.as_deref(), Some("5xx,connect-failure"));
            assert_eq!(r0.rewrite.as_ref().unwrap().uri.as_deref(), Some("/v2"));
            assert_eq!(vs.spec.http[1].route[1].weight, Some(10));
        }
    }

    #[test]
    fn destination_rule_parses_in_every_version() {
        for v in VERSIONS {
            let dr: DestinationRule = serde_yaml_ng::from_str(&DR.replace("VERSION", v)).unwrap();
            assert_eq!(dr.spec.host, "reviews.default.svc.cluster.local");
            let tp = dr.spec.traffic_policy.as_ref().unwrap();
            assert_eq!(
                tp.load_balancer.as_ref().unwrap().simple.as_deref(),
                Some("LEAST_REQUEST")
            );
            let pool = tp.connection_pool.as_ref().unwrap();
            let tcp = pool.tcp.as_ref().unwrap();
            assert_eq!(tcp.max_connections, Some(100));
            assert_eq!(tcp.connect_timeout.as_deref(), Some("2s"));
            let http = pool.http.as_ref().unwrap();
            assert_eq!(http.http1_max_pending_requests, Some(10));
            assert_eq!(http.http2_max_requests, Some(1000));
            assert_eq!(http.max_retries, Some(3));
            assert_eq!(dr.spec.subsets[1].labels["version"], "v2");
            assert!(dr.spec.subsets[1].traffic_policy.is_some());
        }
    }
}
