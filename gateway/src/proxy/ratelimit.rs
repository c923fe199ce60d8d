//! Local rate limits: token buckets checked before a call is routed, per gateway replica
//! (as Envoy's and Aeraki's local rate limits are per proxy). A listener has a default
//! bucket and conditional buckets; the first condition a call's attributes match picks its
//! bucket, calls matching none use the default, and without a default they pass.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use corridor_proto::aeraki::meta_protocol_proxy::filters::local_ratelimit::v1alpha as pb;
use corridor_proto::envoy::r#type::v3::TokenBucket as PbTokenBucket;

use crate::codec::Metadata;
use crate::model::route::{HeaderMatcher, attribute_matcher};
use crate::model::{ModelError, duration};
use crate::router::attribute_matches;

/// A listener's buckets.
#[derive(Debug)]
pub struct LocalRateLimiter {
    default: Option<Bucket>,
    conditions: Vec<(Vec<HeaderMatcher>, Bucket)>,
}

impl LocalRateLimiter {
    /// Validates Aeraki's `LocalRateLimit` and builds full buckets.
    pub fn new(config: &pb::LocalRateLimit) -> Result<LocalRateLimiter, ModelError> {
        let conditions = config
            .conditions
            .iter()
            .map(|c| {
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
                Ok((matchers, Bucket::new(bucket)?))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let default = config.token_bucket.as_ref().map(Bucket::new).transpose()?;
        if default.is_none() && conditions.is_empty() {
            return Err(ModelError::Missing(
                "local_ratelimit.token_bucket or conditions",
            ));
        }
        Ok(LocalRateLimiter {
            default,
            conditions,
        })
    }

    /// Takes a token for a call with `metadata`; false when its bucket is empty.
    pub fn admit(&self, metadata: &Metadata) -> bool {
        let bucket = self
            .conditions
            .iter()
            .find(|(matchers, _)| matchers.iter().all(|h| attribute_matches(h, metadata)))
            .map(|(_, b)| b)
            .or(self.default.as_ref());
        bucket.is_none_or(|b| b.take(Instant::now()))
    }
}

/// Envoy's token bucket: starts full, gains `per_fill` tokens every `interval` up to `max`.
#[derive(Debug)]
struct Bucket {
    max: u32,
    per_fill: u32,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: u32,
    /// When the last whole interval was credited.
    filled: Instant,
}

impl Bucket {
    fn new(b: &PbTokenBucket) -> Result<Bucket, ModelError> {
        if b.max_tokens == 0 {
            return Err(ModelError::invalid(
                "token_bucket.max_tokens",
                "must be greater than 0",
            ));
        }
        let per_fill = b.tokens_per_fill.as_ref().map_or(1, |v| v.value);
        if per_fill == 0 {
            return Err(ModelError::invalid(
                "token_bucket.tokens_per_fill",
                "must be greater than 0",
            ));
        }
        let interval = duration(
            b.fill_interval
                .as_ref()
                .ok_or(ModelError::Missing("token_bucket.fill_interval"))?,
            "token_bucket.fill_interval",
        )?;
        if interval.is_zero() {
            return Err(ModelError::invalid(
                "token_bucket.fill_interval",
                "must be positive",
            ));
        }
        Ok(Bucket {
            max: b.max_tokens,
            per_fill,
            interval,
            state: Mutex::new(State {
                tokens: b.max_tokens,
                filled: Instant::now(),
            }),
        })
    }

    fn take(&self, now: Instant) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        let fills = now.saturating_duration_since(s.filled).as_nanos() / self.interval.as_nanos();
        if fills > 0 {
            let gained = u64::try_from(fills)
                .unwrap_or(u64::MAX)
                .saturating_mul(u64::from(self.per_fill));
            s.tokens = u32::try_from((u64::from(s.tokens) + gained).min(u64::from(self.max)))
                .unwrap_or(self.max);
            let credited = u32::try_from(fills).unwrap_or(u32::MAX);
            s.filled = s
                .filled
                .checked_add(self.interval.saturating_mul(credited))
                .unwrap_or(now);
        }
        if s.tokens == 0 {
            return false;
        }
        s.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MessageType, ResponseStatus};
    use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteMatch;
    use corridor_proto::envoy::config::route::v3::{
        HeaderMatcher as PbHeaderMatcher, header_matcher::HeaderMatchSpecifier,
    };
    use corridor_proto::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
    use corridor_proto::google::protobuf::{Duration as PbDuration, UInt32Value};

    fn bucket(max: u32, per_fill: u32, secs: i64) -> PbTokenBucket {
        PbTokenBucket {
            max_tokens: max,
            tokens_per_fill: Some(UInt32Value { value: per_fill }),
            fill_interval: Some(PbDuration {
                seconds: secs,
                nanos: 0,
            }),
        }
    }

    fn call(method: &str) -> Metadata {
        Metadata {
            message_type: MessageType::Request,
            request_id: 1,
            response_status: ResponseStatus::Ok,
            attributes: vec![("method".into(), method.into())],
            dialect: 0,
        }
    }

    #[test]
    fn a_bucket_empties_and_refills_by_whole_intervals() {
        let b = Bucket::new(&bucket(2, 1, 1)).unwrap();
        let t0 = Instant::now();
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "empty after max_tokens calls");
        assert!(
            !b.take(t0 + Duration::from_millis(900)),
            "no token before a whole interval"
        );
        assert!(b.take(t0 + Duration::from_millis(1100)));
        assert!(!b.take(t0 + Duration::from_millis(1200)));
        // A long pause refills only up to max.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && !b.take(later));
    }

    #[test]
    fn the_first_matching_condition_picks_the_bucket_and_others_use_the_default() {
        let matcher = PbHeaderMatcher {
            name: "method".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact("sayHello".into())),
                ..Default::default()
            })),
            ..Default::default()
        };
        let config = pb::LocalRateLimit {
            stat_prefix: "l".into(),
            token_bucket: Some(bucket(3, 1, 60)),
            conditions: vec![pb::LocalRateLimitCondition {
                r#match: Some(RouteMatch {
                    metadata: vec![matcher],
                }),
                token_bucket: Some(bucket(1, 1, 60)),
            }],
        };
        let l = LocalRateLimiter::new(&config).unwrap();
        assert!(l.admit(&call("sayHello")));
        assert!(
            !l.admit(&call("sayHello")),
            "its own bucket of one is empty"
        );
        assert!(
            (0..3).all(|_| l.admit(&call("other"))),
            "the default bucket is separate"
        );
        assert!(!l.admit(&call("other")));
    }

    #[test]
    fn a_config_with_no_bucket_or_a_zero_bucket_is_refused() {
        assert!(LocalRateLimiter::new(&pb::LocalRateLimit::default()).is_err());
        let zero = pb::LocalRateLimit {
            token_bucket: Some(bucket(0, 1, 1)),
            ..Default::default()
        };
        assert!(LocalRateLimiter::new(&zero).is_err());
    }
}
