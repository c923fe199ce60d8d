//! Envoy's HTTP local rate limit (`envoy.filters.http.local_ratelimit`) as a
//! [`LocalRateLimiter`]. Envoy picks a bucket by descriptor: `rate_limits[]` rules turn
//! a request into descriptor entries, and a `descriptors[]` item with the same entries
//! owns the bucket. The rules are the filter's own when it has some (each then becomes a
//! condition of header matchers pointing at its descriptor's bucket, the form the
//! MetaProtocol limiter has), else the route's, or its virtual host's, read per request
//! from the route's `RoutePolicy`. Only actions that depend on the request's headers
//! alone (`header_value_match`, `generic_key`) pick a local bucket.

use std::sync::Arc;

use corridor_proto::envoy::config::core::v3::RuntimeFractionalPercent;

use corridor_proto::envoy::config::route::v3::RateLimit;
use corridor_proto::envoy::config::route::v3::rate_limit::action::ActionSpecifier;
use corridor_proto::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use corridor_proto::envoy::r#type::v3::fractional_percent::DenominatorType;

use super::LocalRateLimiter;
use super::bucket::Bucket;
use crate::model::ModelError;
use crate::model::route::{HeaderMatcher, header_matcher};
use crate::policy::request::{Attributes, matches};

/// Envoy's descriptor key of a `header_value_match` action that names none.
const HEADER_MATCH_KEY: &str = "header_match";
/// Envoy's descriptor key of a `generic_key` action that names none.
const GENERIC_KEY: &str = "generic_key";
/// The only status Corridor answers a local rate limit with (Envoy's default): the
/// refusal table has one row per kind, shared by every protocol.
const TOO_MANY_REQUESTS: i32 = 429;

impl LocalRateLimiter {
    /// Validates Envoy's HTTP `LocalRateLimit` and builds full buckets. As in Envoy,
    /// `filter_enabled` and `filter_enforced` default to 0 %: a limit that should refuse
    /// requests sets both.
    pub fn from_envoy(config: &LocalRateLimit) -> Result<LocalRateLimiter, ModelError> {
        if let Some(status) = &config.status
            && status.code != TOO_MANY_REQUESTS
        {
            return Err(ModelError::Unsupported(format!(
                "local_ratelimit.status {} (only 429)",
                status.code
            )));
        }
        if config.local_rate_limit_per_downstream_connection {
            return Err(ModelError::Unsupported(
                "local_ratelimit.local_rate_limit_per_downstream_connection".into(),
            ));
        }
        let mut buckets = Vec::with_capacity(config.descriptors.len() + 1);
        let mut entries = Vec::with_capacity(config.descriptors.len());
        for d in &config.descriptors {
            let bucket = d
                .token_bucket
                .as_ref()
                .ok_or(ModelError::Missing("descriptors.token_bucket"))?;
            buckets.push(Bucket::new(bucket)?);
            let pairs: Vec<(String, String)> = d
                .entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            entries.push(pairs);
        }
        let own_rules = !config.rate_limits.is_empty();
        let mut conditions = Vec::new();
        for rule in &config.rate_limits {
            // The filter's own rules must all be understood: they are its whole
            // configuration.
            let rule = RateLimitRule::parse(rule, true)?;
            let Some(produced) = &rule.entries else {
                continue;
            };
            // A rule whose entries no descriptor lists leaves its requests to the default.
            if let Some(i) = entries.iter().position(|e| e == produced) {
                conditions.push((rule.matchers, i));
            }
        }
        // Without rules of its own, the filter reads the route's (`RoutePolicy`), and
        // picks a descriptor's bucket by the entries they produce.
        let descriptors = if own_rules {
            Vec::new()
        } else {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| (e, i))
                .collect()
        };
        let default = match &config.token_bucket {
            Some(b) => {
                buckets.push(Bucket::new(b)?);
                Some(buckets.len() - 1)
            }
            None => None,
        };
        if default.is_none() && conditions.is_empty() && descriptors.is_empty() {
            return Err(ModelError::Missing(
                "local_ratelimit.token_bucket or descriptors",
            ));
        }
        Ok(LocalRateLimiter {
            buckets,
            conditions,
            descriptors,
            default,
            enabled: share(config.filter_enabled.as_ref(), 0.0),
            enforced: share(config.filter_enforced.as_ref(), 0.0),
        })
    }
}

/// One `rate_limits` entry (Envoy's `RateLimit`): for the local rate limit, the header
/// conditions of its actions and the descriptor entries it produces when they hold; for
/// the rate limit service, its stage and every action (see
/// `policy::global_ratelimit::descriptor`).
#[derive(Debug)]
pub struct RateLimitRule {
    matchers: Vec<HeaderMatcher>,
    /// `None` when an action depends on more than headers (the rate limit service's
    /// business): the local rate limit never picks a bucket by this rule.
    entries: Option<Vec<(String, String)>>,
    /// Envoy's `stage`: only a rate limit filter of the same stage reads the rule.
    pub(crate) stage: u32,
    /// The actions, in order, as the descriptor sent to a rate limit service reads them.
    pub(crate) actions: Vec<Action>,
}

/// One action of a rule, as it turns a request into a descriptor entry.
#[derive(Debug)]
pub(crate) enum Action {
    /// `generic_key`: a fixed entry.
    Fixed(String, String),
    /// `header_value_match`: a fixed entry when the headers match (or, with
    /// `expect_match` false, when they do not); otherwise no descriptor.
    IfMatches {
        matchers: Vec<HeaderMatcher>,
        expect: bool,
        key: String,
        value: String,
    },
    /// `request_headers`: a header's value under a key; an absent header drops the
    /// descriptor, or only this entry with `skip_if_absent`.
    Header {
        name: String,
        key: String,
        skip_if_absent: bool,
    },
    /// `remote_address`: the downstream peer's IP under `remote_address`.
    RemoteAddress,
    /// An action the gateway does not evaluate (cluster names, metadata, query
    /// parameters): the rule never produces a descriptor.
    Unsupported,
}

impl RateLimitRule {
    /// Parses one rule. `strict` refuses actions other than `header_value_match` (with
    /// `expect_match` true) and `generic_key`; otherwise such a rule is kept but never
    /// selects a local bucket (route rules also feed the rate limit service).
    pub fn parse(rule: &RateLimit, strict: bool) -> Result<RateLimitRule, ModelError> {
        let mut entries = Some(Vec::with_capacity(rule.actions.len()));
        let mut matchers = Vec::new();
        let actions = rule
            .actions
            .iter()
            .map(global_action)
            .collect::<Result<_, _>>()?;
        for action in &rule.actions {
            let unsupported = match &action.action_specifier {
                Some(ActionSpecifier::HeaderValueMatch(m))
                    if m.expect_match.as_ref().is_none_or(|b| b.value) =>
                {
                    for h in &m.headers {
                        matchers.push(header_matcher(h)?);
                    }
                    let key = key_or(&m.descriptor_key, HEADER_MATCH_KEY);
                    if let Some(e) = &mut entries {
                        e.push((key.to_owned(), m.descriptor_value.clone()));
                    }
                    continue;
                }
                Some(ActionSpecifier::GenericKey(g)) => {
                    let key = key_or(&g.descriptor_key, GENERIC_KEY);
                    if let Some(e) = &mut entries {
                        e.push((key.to_owned(), g.descriptor_value.clone()));
                    }
                    continue;
                }
                Some(ActionSpecifier::HeaderValueMatch(_)) => {
                    "header_value_match with expect_match false"
                }
                Some(other) => action_name(other),
                None => return Err(ModelError::Missing("rate_limits.actions.action_specifier")),
            };
            if strict {
                return Err(ModelError::Unsupported(format!(
                    "rate_limits action {unsupported}"
                )));
            }
            entries = None;
        }
        Ok(RateLimitRule {
            matchers,
            entries,
            stage: rule.stage.as_ref().map_or(0, |s| s.value),
            actions,
        })
    }

    /// Whether an action is one the gateway does not evaluate (such a rule never
    /// produces a descriptor for a rate limit service).
    pub(crate) fn has_unsupported_action(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Unsupported))
    }

    /// The descriptor entries this rule produces for `attrs`, if any.
    pub(super) fn produces(&self, attrs: &dyn Attributes) -> Option<&[(String, String)]> {
        let entries = self.entries.as_deref()?;
        self.matchers
            .iter()
            .all(|h| matches(h, attrs))
            .then_some(entries)
    }
}

/// The rules of a `rate_limits` list as routes carry them (lenient: see
/// [`RateLimitRule::parse`]).
pub fn route_rules(list: &[RateLimit]) -> Result<Arc<[RateLimitRule]>, ModelError> {
    list.iter()
        .map(|r| RateLimitRule::parse(r, false))
        .collect()
}

/// An action as the rate limit service's descriptor reads it.
fn global_action(
    a: &corridor_proto::envoy::config::route::v3::rate_limit::Action,
) -> Result<Action, ModelError> {
    Ok(match &a.action_specifier {
        Some(ActionSpecifier::GenericKey(g)) => Action::Fixed(
            key_or(&g.descriptor_key, GENERIC_KEY).to_owned(),
            g.descriptor_value.clone(),
        ),
        Some(ActionSpecifier::HeaderValueMatch(m)) => Action::IfMatches {
            matchers: m
                .headers
                .iter()
                .map(header_matcher)
                .collect::<Result<_, _>>()?,
            expect: m.expect_match.as_ref().is_none_or(|b| b.value),
            key: key_or(&m.descriptor_key, HEADER_MATCH_KEY).to_owned(),
            value: m.descriptor_value.clone(),
        },
        Some(ActionSpecifier::RequestHeaders(h)) => {
            if h.header_name.is_empty() || h.descriptor_key.is_empty() {
                return Err(ModelError::Missing(
                    "rate_limits.actions.request_headers.header_name and descriptor_key",
                ));
            }
            Action::Header {
                name: h.header_name.to_ascii_lowercase(),
                key: h.descriptor_key.clone(),
                skip_if_absent: h.skip_if_absent,
            }
        }
        Some(ActionSpecifier::RemoteAddress(_)) => Action::RemoteAddress,
        Some(_) => Action::Unsupported,
        None => return Err(ModelError::Missing("rate_limits.actions.action_specifier")),
    })
}

fn key_or<'a>(key: &'a str, default: &'static str) -> &'a str {
    if key.is_empty() { default } else { key }
}

/// The share a runtime fraction's default value gives; `absent` when unset (Envoy's
/// local rate limit: none for both `filter_enabled` and `filter_enforced`; its rate
/// limit service filter: all).
pub(crate) fn share(p: Option<&RuntimeFractionalPercent>, absent: f64) -> f64 {
    let Some(p) = p.and_then(|p| p.default_value.as_ref()) else {
        return absent;
    };
    let denominator = match DenominatorType::try_from(p.denominator) {
        Ok(DenominatorType::TenThousand) => 10_000.0,
        Ok(DenominatorType::Million) => 1_000_000.0,
        _ => 100.0,
    };
    (f64::from(p.numerator) / denominator).clamp(0.0, 1.0)
}

/// An action's name as in Envoy's configuration, for the NACK message.
fn action_name(a: &ActionSpecifier) -> &'static str {
    match a {
        ActionSpecifier::SourceCluster(_) => "source_cluster",
        ActionSpecifier::DestinationCluster(_) => "destination_cluster",
        ActionSpecifier::RequestHeaders(_) => "request_headers",
        ActionSpecifier::QueryParameters(_) => "query_parameters",
        ActionSpecifier::RemoteAddress(_) => "remote_address",
        ActionSpecifier::GenericKey(_) => "generic_key",
        ActionSpecifier::HeaderValueMatch(_) => "header_value_match",
        _ => "other than header_value_match or generic_key",
    }
}
