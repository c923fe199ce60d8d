//! `trafficPolicy.loadBalancer`: the simple policies, consistent hashing (ring hash or
//! Maglev on a request property) and locality preferences.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::duration::parse_duration;

/// Largest Maglev table Envoy builds.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

/// `trafficPolicy.loadBalancer`: `simple` or `consistentHash` (Istio's oneof), plus
/// locality settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// `ROUND_ROBIN`, `LEAST_REQUEST`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH`, `UNSPECIFIED`.
    #[serde(default)]
    pub simple: Option<String>,
    /// Hash-based affinity on a request property.
    #[serde(default)]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality (zone) preferences.
    #[serde(default)]
    pub locality_lb_setting: Option<LocalityLbSetting>,
}

/// `loadBalancer.consistentHash`: one hash key, and ring hash (the default) or Maglev.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on this header (for Dubbo/Thrift: this attribute).
    #[serde(default)]
    pub http_header_name: Option<String>,
    /// Hash on this cookie.
    #[serde(default)]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the source IP.
    #[serde(default)]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default)]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash with its size.
    #[serde(default)]
    pub ring_hash: Option<RingHash>,
    /// Maglev with its table size.
    #[serde(default)]
    pub maglev: Option<MagLev>,
    /// Deprecated spelling of `ringHash.minimumRingSize`.
    #[serde(default)]
    pub minimum_ring_size: Option<u64>,
}

/// `consistentHash.httpCookie`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// The cookie's name.
    #[serde(default)]
    pub name: String,
    /// The cookie's path, when one is generated.
    #[serde(default)]
    pub path: Option<String>,
    /// Lifetime of a generated cookie (`0s`: a session cookie; absent: none generated).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// `consistentHash.ringHash`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum number of virtual nodes on the ring.
    #[serde(default)]
    pub minimum_ring_size: Option<u64>,
}

/// `consistentHash.maglev`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MagLev {
    /// Lookup table size; a prime.
    #[serde(default)]
    pub table_size: Option<u64>,
}

/// `loadBalancer.localityLbSetting`. `distribute` and `failover` are kept as parsed data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Turns locality-aware balancing on or off (absent: as the mesh default).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Traffic shares from a source locality to destination localities.
    #[serde(default)]
    pub distribute: Vec<LocalityDistribute>,
    /// Where traffic goes when a region has no healthy endpoints.
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    /// Labels that order failover priority.
    #[serde(default)]
    pub failover_priority: Vec<String>,
}

/// One `distribute` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalityDistribute {
    /// Source locality (`region/zone/subzone`, `*` wildcards).
    #[serde(default)]
    pub from: String,
    /// Destination locality → weight; the weights add up to 100.
    #[serde(default)]
    pub to: BTreeMap<String, u32>,
}

/// One `failover` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalityFailover {
    /// Source region.
    #[serde(default)]
    pub from: String,
    /// Region to fail over to.
    #[serde(default)]
    pub to: String,
}

// === checks ===

impl LoadBalancerSettings {
    /// Checks the settings on their own; the reason names the offending field under `at`.
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.simple.is_some() && self.consistent_hash.is_some() {
            return Err(format!("{at} sets both simple and consistentHash"));
        }
        if let Some(h) = &self.consistent_hash {
            check_hash(&format!("{at}.consistentHash"), h)?;
        }
        if let Some(l) = &self.locality_lb_setting {
            check_locality(&format!("{at}.localityLbSetting"), l)?;
        }
        Ok(())
    }
}

fn check_hash(at: &str, h: &ConsistentHashLb) -> Result<(), String> {
    let keys = [
        h.http_header_name.is_some(),
        h.http_cookie.is_some(),
        h.use_source_ip.is_some(),
        h.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() > 1 {
        return Err(format!(
            "{at} sets more than one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName"
        ));
    }
    if h.http_header_name.as_deref() == Some("") {
        return Err(format!("{at}.httpHeaderName is empty"));
    }
    if h.http_query_parameter_name.as_deref() == Some("") {
        return Err(format!("{at}.httpQueryParameterName is empty"));
    }
    if let Some(c) = &h.http_cookie {
        if c.name.is_empty() {
            return Err(format!("{at}.httpCookie.name is empty"));
        }
        if let Some(ttl) = &c.ttl {
            parse_duration(ttl).map_err(|e| format!("{at}.httpCookie.ttl: {e}"))?;
        }
    }
    if h.ring_hash.is_some() && h.maglev.is_some() {
        return Err(format!("{at} sets both ringHash and maglev"));
    }
    let ring = h.ring_hash.as_ref().and_then(|r| r.minimum_ring_size);
    if h.minimum_ring_size == Some(0) || ring == Some(0) {
        return Err(format!(
            "{at}.ringHash.minimumRingSize must be greater than 0"
        ));
    }
    if let Some(size) = h.maglev.as_ref().and_then(|m| m.table_size)
        && (size > MAX_MAGLEV_TABLE_SIZE || !is_prime(size))
    {
        return Err(format!(
            "{at}.maglev.tableSize {size} is not a prime up to {MAX_MAGLEV_TABLE_SIZE}"
        ));
    }
    Ok(())
}

fn check_locality(at: &str, l: &LocalityLbSetting) -> Result<(), String> {
    if !l.distribute.is_empty() && (!l.failover.is_empty() || !l.failover_priority.is_empty()) {
        return Err(format!(
            "{at} sets distribute together with failover or failoverPriority"
        ));
    }
    for (i, d) in l.distribute.iter().enumerate() {
        if d.from.is_empty() {
            return Err(format!("{at}.distribute[{i}].from is empty"));
        }
        let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            return Err(format!(
                "{at}.distribute[{i}].to weights add up to {total}, not 100"
            ));
        }
    }
    for (i, f) in l.failover.iter().enumerate() {
        if f.from.is_empty() || f.to.is_empty() {
            return Err(format!("{at}.failover[{i}] needs both from and to"));
        }
        if f.from == f.to {
            return Err(format!(
                "{at}.failover[{i}] fails {:?} over to itself",
                f.from
            ));
        }
    }
    Ok(())
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}
