//! Serde types for Aeraki's `metaprotocol.aeraki.io/v1alpha1` MetaRouter: routes for
//! codec-based protocols (Dubbo, Thrift) matched on the attributes a codec reads
//! (`interface`, `method`, attachments, THeader headers). Matchers and destinations have
//! the same shape as Istio's, so the Istio types are reused.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub use super::istio::Percent;
use super::istio::{Destination, HttpFaultInjection, HttpRetry, StringMatch};

/// The Aeraki MetaProtocol API group.
pub const GROUP: &str = "metaprotocol.aeraki.io";
/// The API versions accepted for MetaRouter.
pub const VERSIONS: [&str; 1] = ["v1alpha1"];

/// `metaprotocol.aeraki.io/v1alpha1` MetaRouter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaRouter {
    /// Object metadata (name, namespace, labels).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The routing rules.
    #[serde(default)]
    pub spec: MetaRouterSpec,
}

/// `MetaRouter.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaRouterSpec {
    /// The destination service the rules apply to (Aeraki honours the first only).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways the rules apply to; empty or containing `mesh` means in-mesh traffic.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Routes, evaluated in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<MetaRoute>,
    /// Token-bucket limits enforced by each gateway.
    #[serde(default)]
    pub local_rate_limit: Option<LocalRateLimit>,
    /// Limits decided by a rate limit service (Envoy RLS protocol).
    #[serde(default)]
    pub global_rate_limit: Option<GlobalRateLimit>,
    /// Namespaces the rules are visible to (empty: all).
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// One route of a MetaRouter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaRoute {
    /// Name, for logs and the route's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Attribute conditions, AND-ed; absent matches every request.
    #[serde(default, rename = "match")]
    pub matches: Option<MetaRouteMatch>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<MetaRouteDestination>,
    /// Where a copy of each request goes.
    #[serde(default)]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored (0–100; absent: all).
    #[serde(default)]
    pub mirror_percentage: Option<Percent>,
    /// Key/values written into each request (Dubbo attachments, Thrift THeader headers).
    #[serde(default)]
    pub request_mutation: Vec<KeyValue>,
    /// Key/values written into each response.
    #[serde(default)]
    pub response_mutation: Vec<KeyValue>,
    /// Corridor extension: delays and aborts injected into matching calls, as a
    /// VirtualService route's `fault` (aborts answered in Dubbo's or Thrift's own error).
    #[serde(default)]
    pub fault: Option<HttpFaultInjection>,
    /// Corridor extension: the whole call's timeout (`2s`); absent: the gateway's default.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Corridor extension: retries, as a VirtualService route's; absent: Istio's default.
    #[serde(default)]
    pub retries: Option<HttpRetry>,
}

/// Conditions on a request's attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaRouteMatch {
    /// Attribute name → how its value must match (an empty matcher checks presence).
    #[serde(default)]
    pub attributes: BTreeMap<String, StringMatch>,
}

/// One weighted destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaRouteDestination {
    /// Where to send the request.
    pub destination: Destination,
    /// Share of the traffic (0–100); a single destination gets everything.
    #[serde(default)]
    pub weight: Option<u32>,
}

/// A key/value pair of a mutation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The attribute name.
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// Local rate limiting: a default bucket and per-condition buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalRateLimit {
    /// The bucket for requests no condition matches (absent: not limited).
    #[serde(default)]
    pub token_bucket: Option<TokenBucket>,
    /// Buckets for specific requests; the first matching condition applies.
    #[serde(default)]
    pub conditions: Vec<RateLimitCondition>,
}

/// A token bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBucket {
    /// Capacity, and the tokens the bucket starts with.
    pub max_tokens: u32,
    /// Tokens added per interval (absent: 1).
    #[serde(default)]
    pub tokens_per_fill: Option<u32>,
    /// The refill interval (`1s`, `60s`, ...).
    pub fill_interval: String,
}

/// A bucket for the requests a match selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitCondition {
    /// Which requests.
    #[serde(default, rename = "match")]
    pub matches: Option<MetaRouteMatch>,
    /// Their bucket.
    pub token_bucket: TokenBucket,
}

/// Global rate limiting through a rate limit service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalRateLimit {
    /// Which requests are limited (absent: all).
    #[serde(default, rename = "match")]
    pub matches: Option<MetaRouteMatch>,
    /// The RLS domain.
    #[serde(default)]
    pub domain: String,
    /// Timeout of the RLS call (default 20ms).
    #[serde(default)]
    pub request_timeout: Option<String>,
    /// Refuse requests when the RLS does not answer.
    #[serde(default)]
    pub deny_on_fail: bool,
    /// The RLS cluster.
    #[serde(default)]
    pub rate_limit_service: String,
    /// Request attributes sent as descriptor entries.
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

/// Maps a request attribute to an RLS descriptor key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The attribute.
    pub property: String,
    /// The descriptor key.
    pub descriptor_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aeraki_examples_parse() {
        let text = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: test-metaprotocol-route, namespace: meta-dubbo}
spec:
  hosts: [org.apache.dubbo.samples.basic.api.demoservice]
  routes:
  - name: v1
    match:
      attributes:
        interface: {exact: org.apache.dubbo.samples.basic.api.DemoService}
        method: {prefix: say}
    route:
    - destination: {host: org.apache.dubbo.samples.basic.api.demoservice, subset: v1}
      weight: 20
    - destination: {host: org.apache.dubbo.samples.basic.api.demoservice, subset: v2}
      weight: 80
    mirror: {host: shadow, subset: v1}
    mirrorPercentage: {value: 50}
    requestMutation: [{key: foo, value: bar}]
  localRateLimit:
    tokenBucket: {maxTokens: 10, tokensPerFill: 10, fillInterval: 60s}
    conditions:
    - match: {attributes: {method: {exact: sayHello}}}
      tokenBucket: {maxTokens: 2, fillInterval: 1s}
"#;
        let mr: MetaRouter = serde_yaml_ng::from_str(text).unwrap();
        let route = &mr.spec.routes[0];
        assert_eq!(route.route.len(), 2);
        assert_eq!(route.route[1].weight, Some(80));
        let attrs = &route.matches.as_ref().unwrap().attributes;
        assert_eq!(attrs["method"].prefix.as_deref(), Some("say"));
        assert_eq!(route.request_mutation[0].key, "foo");
        let limit = mr.spec.local_rate_limit.unwrap();
        assert_eq!(limit.conditions[0].token_bucket.max_tokens, 2);
        assert_eq!(limit.token_bucket.unwrap().fill_interval, "60s");
    }
}
