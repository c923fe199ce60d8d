//! Local rate limits: token buckets checked before a request is routed upstream, per
//! gateway replica (as Envoy's and Aeraki's local rate limits are per proxy). A limiter
//! has conditional buckets and a default one; the first condition a request's
//! attributes match picks its bucket, requests matching none use the default, and
//! without a default they pass.
//!
//! Two configurations build the same limiter: Aeraki's MetaProtocol filter
//! (`conditions[]` of attribute matchers, for Dubbo and Thrift) and Envoy's HTTP filter
//! (`descriptors[]` with buckets, selected by the filter's own `rate_limits[]` actions;
//! see [`envoy`]).

mod bucket;
pub mod envoy;

use corridor_proto::aeraki::meta_protocol_proxy::filters::local_ratelimit::v1alpha as pb;
use rand::Rng;

use self::bucket::Bucket;
use self::envoy::RateLimitRule;
use super::request::{Attributes, matches};
use crate::model::ModelError;
use crate::model::route::{HeaderMatcher, attribute_matcher};

/// A listener's buckets.
#[derive(Debug)]
pub struct LocalRateLimiter {
    buckets: Vec<Bucket>,
    /// In order: when every matcher holds, the bucket at this index applies.
    conditions: Vec<(Vec<HeaderMatcher>, usize)>,
    /// Descriptor entries and their bucket, picked by the route's rules (Envoy's HTTP
    /// form without rules of its own).
    descriptors: Vec<(Vec<(String, String)>, usize)>,
    /// The bucket of requests no condition picks.
    default: Option<usize>,
    /// Share of requests checked at all (Envoy's `filter_enabled`; Aeraki: all).
    enabled: f64,
    /// Share of over-limit requests refused (Envoy's `filter_enforced`; Aeraki: all);
    /// the others pass, having been counted.
    enforced: f64,
}

impl LocalRateLimiter {
    /// Validates Aeraki's `LocalRateLimit` (Dubbo, Thrift) and builds full buckets.
    pub fn from_aeraki(config: &pb::LocalRateLimit) -> Result<LocalRateLimiter, ModelError> {
        let mut buckets = Vec::new();
        let mut conditions = Vec::new();
        for c in &config.conditions {
            let matchers = c
                .r#match
                .iter()
                .flat_map(|m| &m.metadata)
                .map(attribute_matcher)
                .collect::<Result<_, _>>()?;
            let bucket = c
                .token_bucket
                .as_ref()
                .ok_or(ModelError::Missing("conditions.token_bucket"))?;
            buckets.push(Bucket::new(bucket)?);
            conditions.push((matchers, buckets.len() - 1));
        }
        let default = match &config.token_bucket {
            Some(b) => {
                buckets.push(Bucket::new(b)?);
                Some(buckets.len() - 1)
            }
            None => None,
        };
        if default.is_none() && conditions.is_empty() {
            return Err(ModelError::Missing(
                "local_ratelimit.token_bucket or conditions",
            ));
        }
        Ok(LocalRateLimiter {
            buckets,
            conditions,
            descriptors: Vec::new(),
            default,
            enabled: 1.0,
            enforced: 1.0,
        })
    }

    /// Takes a token for a request with `attrs` on a route with `rules` (Envoy's
    /// `rate_limits`); false when the request is refused. The first matching condition
    /// picks the bucket, then the first rule producing a listed descriptor, else the
    /// default bucket.
    pub fn admit(&self, attrs: &dyn Attributes, rules: &[RateLimitRule]) -> bool {
        if self.enabled < 1.0 && !rand::rng().random_bool(self.enabled.max(0.0)) {
            return true;
        }
        let by_condition = || {
            self.conditions
                .iter()
                .find(|(matchers, _)| matchers.iter().all(|h| matches(h, attrs)))
                .map(|(_, i)| *i)
        };
        let by_descriptor = || {
            if self.descriptors.is_empty() {
                return None;
            }
            rules.iter().find_map(|rule| {
                let produced = rule.produces(attrs)?;
                self.descriptors
                    .iter()
                    .find(|(entries, _)| entries.as_slice() == produced)
                    .map(|(_, i)| *i)
            })
        };
        let bucket = by_condition()
            .or_else(by_descriptor)
            .or(self.default)
            .and_then(|i| self.buckets.get(i));
        match bucket {
            None => true,
            Some(b) if b.take(std::time::Instant::now()) => true,
            Some(_) if self.enforced >= 1.0 => false,
            Some(_) => !rand::rng().random_bool(self.enforced.max(0.0)),
        }
    }
}

#[cfg(test)]
mod tests;
