//! What a route asks of the call path beyond where to send: the same struct for HTTP
//! routes and MetaProtocol routes, so the protocols differ only in their matchers.

use std::sync::Arc;
use std::time::Duration;

use crate::model::route::RetryPolicy;
use crate::policy::local_ratelimit::envoy::RateLimitRule;

/// A route's call policies.
#[derive(Debug, Default)]
pub struct RoutePolicy {
    /// The whole request's timeout, across tries; `None`: none (HTTP) or the protocol's
    /// default (Dubbo, Thrift).
    pub timeout: Option<Duration>,
    /// Retries, when the route sets them.
    pub retry: Option<RetryPolicy>,
    /// Fault injection (delays, aborts), when the route sets it. Not parsed yet: comes
    /// with issue 8's fault work.
    pub fault: Option<Fault>,
    /// Copies of requests sent elsewhere, answers ignored (Dubbo/Thrift today; HTTP with
    /// issue 8's mirroring work).
    pub mirrors: Vec<Mirror>,
    /// What consistent hashing hashes, in order (the first present wins); see
    /// `policy::hash`.
    pub hash: Vec<HashPolicy>,
    /// Envoy's `rate_limits` of the route, else of its virtual host (HTTP): the rules
    /// that pick a local rate limit's descriptor.
    pub rate_limits: Arc<[RateLimitRule]>,
}

/// A fault injection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Delay a share of requests.
    pub delay: Option<FaultDelay>,
    /// Refuse a share of requests.
    pub abort: Option<FaultAbort>,
}

/// A fault delay.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// How long.
    pub duration: Duration,
    /// Share of requests delayed, 0.0–1.0.
    pub fraction: f64,
}

/// A fault abort: the refusal `RejectKind::FaultAbort { http, grpc }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// HTTP status.
    pub http: u16,
    /// gRPC status, when the rule names one.
    pub grpc: Option<u16>,
    /// Share of requests refused, 0.0–1.0.
    pub fraction: f64,
}

/// A mirror target and the share of requests it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// The cluster.
    pub cluster: Arc<str>,
    /// Share of requests mirrored, 0.0–1.0.
    pub fraction: f64,
}

/// One source of a consistent-hash key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicy {
    /// A header, Dubbo attachment or Thrift THeader header, by name.
    Attribute(String),
    /// The downstream peer's IP address.
    SourceIp,
    /// An HTTP cookie, by name.
    Cookie(String),
    /// An HTTP query parameter, by name.
    QueryParameter(String),
}

/// The attribute name MetaProtocol hash policies use for the source address.
pub const SOURCE_IP_ATTRIBUTE: &str = ":source_ip";

impl HashPolicy {
    /// From a MetaProtocol `hash_policy` entry (an attribute name; `:source_ip` is the
    /// peer's address).
    pub fn from_attribute(name: &str) -> HashPolicy {
        if name == SOURCE_IP_ATTRIBUTE {
            HashPolicy::SourceIp
        } else {
            HashPolicy::Attribute(name.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metaprotocol_hash_attribute_names_a_key_or_the_source_address() {
        assert_eq!(
            HashPolicy::from_attribute(":source_ip"),
            HashPolicy::SourceIp
        );
        assert_eq!(
            HashPolicy::from_attribute("userId"),
            HashPolicy::Attribute("userId".into())
        );
    }
}
