//! Serde types for the Istio networking resources the controller honours
//! (`networking.istio.io` VirtualService and DestinationRule, in `v1`, `v1beta1` and
//! `v1alpha3`, which share one schema for these fields). Fields the controller does not
//! implement yet are ignored on input.
//!
//! Checks that need nothing but the resource itself (ranges, exclusive fields) live with
//! the types ([`HttpRoute::check_policies`], [`TrafficPolicy::check`]); the translator's
//! validators add the checks against the store (destinations exist, subsets defined).

mod destination_rule;
mod fault;
mod load_balancer;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub use destination_rule::{
    ConnectionPoolSettings, DestinationRule, DestinationRuleSpec, HttpSettings, OutlierDetection,
    PortTrafficPolicy, Subset, TcpSettings, TrafficPolicy,
};
pub use fault::{FaultAbort, FaultDelay, GRPC_STATUS_NAMES, HttpFaultInjection};
pub use load_balancer::{
    ConsistentHashLb, HttpCookie, LoadBalancerSettings, LocalityDistribute, LocalityFailover,
    LocalityLbSetting, MAX_MAGLEV_TABLE_SIZE, MagLev, RingHash,
};

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
    /// Delays and aborts injected into matching requests.
    #[serde(default)]
    pub fault: Option<HttpFaultInjection>,
    /// Where a copy of each request goes (results discarded).
    #[serde(default)]
    pub mirror: Option<Destination>,
    /// Share of requests `mirror` copies; absent: all.
    #[serde(default)]
    pub mirror_percentage: Option<Percent>,
    /// Several mirror targets, each with its share (not together with `mirror`).
    #[serde(default)]
    pub mirrors: Vec<HttpMirrorPolicy>,
}

/// One `mirrors[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where copies go.
    pub destination: Destination,
    /// Share of requests copied; absent: all.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// Istio's `Percent`: a share of requests in [0, 100] (also used by Aeraki's MetaRouter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percent {
    /// The value.
    #[serde(default)]
    pub value: f64,
}

impl HttpRoute {
    /// Checks the route's fault and mirror settings on their own (destinations are checked
    /// against the store by the translator); the reason names the field under `path`.
    pub fn check_policies(&self, path: &str) -> Result<(), String> {
        if let Some(f) = &self.fault {
            f.check(&format!("{path}.fault"))?;
        }
        if self.mirror.is_some() && !self.mirrors.is_empty() {
            return Err(format!("{path} sets both mirror and mirrors"));
        }
        if self.mirror.is_none() && self.mirror_percentage.is_some() {
            return Err(format!("{path}.mirrorPercentage is set without mirror"));
        }
        fault::check_percent(
            &format!("{path}.mirrorPercentage.value"),
            self.mirror_percentage.as_ref().map(|p| p.value),
        )?;
        for (i, m) in self.mirrors.iter().enumerate() {
            fault::check_percent(
                &format!("{path}.mirrors[{i}].percentage.value"),
                m.percentage.as_ref().map(|p| p.value),
            )?;
        }
        Ok(())
    }

    /// The mirror targets with their percentages (absent: 100), from `mirror` or
    /// `mirrors`, whichever is set.
    pub fn mirror_targets(&self) -> Vec<(&Destination, f64)> {
        let share = |p: Option<&Percent>| p.map_or(100.0, |p| p.value);
        match &self.mirror {
            Some(d) => vec![(d, share(self.mirror_percentage.as_ref()))],
            None => self
                .mirrors
                .iter()
                .map(|m| (&m.destination, share(m.percentage.as_ref())))
                .collect(),
        }
    }
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
