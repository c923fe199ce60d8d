//! Rate limit filters of a listener: the local token buckets and the global limit decided
//! by a rate limit service, for HCM (HTTP, gRPC) and MetaProtocol (Dubbo, Thrift)
//! listeners, and the checks of their MetaRouter settings. [`super::filters`] places them
//! in the listener's filter list.

use corridor_proto::{
    aeraki::meta_protocol_proxy::{
        config::route::v1alpha::RouteMatch,
        filters::local_ratelimit::v1alpha::{LocalRateLimit, LocalRateLimitCondition},
        v1alpha::MetaProtocolFilter,
    },
    envoy::{
        extensions::filters::network::http_connection_manager::v3::HttpFilter,
        r#type::v3::TokenBucket as PbTokenBucket,
    },
    google::protobuf::UInt32Value,
    pack_any,
};

use super::{
    filters::PolicySources,
    meta::{check_match, matcher},
    pb_duration,
};
use crate::resources::{
    aeraki::{GlobalRateLimit, LocalRateLimit as MetaRouterLocalRateLimit, TokenBucket},
    duration::parse_duration,
};

/// Filter name of Aeraki's MetaProtocol local rate limit.
pub const LOCAL_RATELIMIT_FILTER: &str = "aeraki.meta_protocol.filters.local_ratelimit";

// === builders ===

/// The local rate limit of an HTTP listener; none yet (the HTTP local rate limit work
/// fills it: `envoy.filters.http.local_ratelimit`).
pub(super) fn http_local(_sources: &PolicySources<'_>, _stat_prefix: &str) -> Option<HttpFilter> {
    None
}

/// The global rate limit of an HTTP listener; none yet (the global rate limit work fills
/// it: `envoy.filters.http.ratelimit`).
pub(super) fn http_global(_sources: &PolicySources<'_>, _stat_prefix: &str) -> Option<HttpFilter> {
    None
}

/// The MetaRouter's `localRateLimit` as Aeraki's local rate limit filter: the default
/// bucket and the conditional ones, first matching condition first.
pub(super) fn meta_local(sources: &PolicySources<'_>, stat_prefix: &str) -> Option<MetaProtocolFilter> {
    let limit = sources.meta_router?.spec.local_rate_limit.as_ref()?;
    let config = LocalRateLimit {
        stat_prefix: stat_prefix.to_string(),
        token_bucket: limit.token_bucket.as_ref().map(bucket),
        conditions: limit
            .conditions
            .iter()
            .map(|c| LocalRateLimitCondition {
                r#match: Some(RouteMatch {
                    metadata: c.matches.iter().flat_map(|m| &m.attributes).map(|(k, v)| matcher(k, v, false)).collect(),
                }),
                token_bucket: Some(bucket(&c.token_bucket)),
            })
            .collect(),
    };
    Some(MetaProtocolFilter { name: LOCAL_RATELIMIT_FILTER.to_string(), config: Some(pack_any(config)) })
}

/// The MetaRouter's `globalRateLimit` as Aeraki's `aeraki.meta_protocol.filters.ratelimit`;
/// none yet: the gateway NACKs a filter it does not run, so it is emitted together with
/// the gateway's rate limit service client (the global rate limit work).
pub(super) fn meta_global(_sources: &PolicySources<'_>, _stat_prefix: &str) -> Option<MetaProtocolFilter> {
    None
}

/// A validated bucket in Envoy's terms (`tokensPerFill` defaults to 1).
fn bucket(b: &TokenBucket) -> PbTokenBucket {
    PbTokenBucket {
        max_tokens: b.max_tokens,
        tokens_per_fill: Some(UInt32Value { value: b.tokens_per_fill.unwrap_or(1) }),
        fill_interval: parse_duration(&b.fill_interval).ok().map(pb_duration),
    }
}

// === checks (MetaRouter) ===

/// Checks a MetaRouter's `localRateLimit`; the reason names the field.
pub(super) fn check_local(limit: &MetaRouterLocalRateLimit) -> Result<(), String> {
    let at = "spec.localRateLimit";
    if limit.token_bucket.is_none() && limit.conditions.is_empty() {
        return Err(format!("{at} sets neither tokenBucket nor conditions"));
    }
    if let Some(b) = &limit.token_bucket {
        check_bucket(&format!("{at}.tokenBucket"), b)?;
    }
    for (i, c) in limit.conditions.iter().enumerate() {
        let cp = format!("{at}.conditions[{i}]");
        if let Some(m) = &c.matches {
            check_match(&format!("{cp}.match"), m)?;
        }
        check_bucket(&format!("{cp}.tokenBucket"), &c.token_bucket)?;
    }
    Ok(())
}

/// Checks a MetaRouter's `globalRateLimit`; the reason names the field.
pub(super) fn check_global(g: &GlobalRateLimit) -> Result<(), String> {
    let at = "spec.globalRateLimit";
    if g.domain.is_empty() || g.rate_limit_service.is_empty() {
        return Err(format!("{at} needs both domain and rateLimitService"));
    }
    if let Some(m) = &g.matches {
        check_match(&format!("{at}.match"), m)?;
    }
    if let Some(t) = &g.request_timeout {
        parse_duration(t).map_err(|e| format!("{at}.requestTimeout: {e}"))?;
    }
    Ok(())
}

fn check_bucket(path: &str, b: &TokenBucket) -> Result<(), String> {
    if b.max_tokens == 0 {
        return Err(format!("{path}.maxTokens must be greater than 0"));
    }
    if b.tokens_per_fill == Some(0) {
        return Err(format!("{path}.tokensPerFill must be greater than 0"));
    }
    let interval = parse_duration(&b.fill_interval).map_err(|e| format!("{path}.fillInterval: {e}"))?;
    if interval.is_zero() {
        return Err(format!("{path}.fillInterval must be positive"));
    }
    Ok(())
}
