//! Route configurations: virtual hosts, ordered routes, matchers and actions.

use std::sync::Arc;
use std::time::Duration;

use corridor_proto::envoy::config::route::v3 as pb;
use corridor_proto::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use http::{HeaderName, HeaderValue};
use regex::Regex;

use super::{ModelError, duration};
use crate::policy::local_ratelimit::envoy::{RateLimitRule, route_rules};
use crate::policy::route::RoutePolicy;

/// A validated RouteConfiguration.
#[derive(Debug)]
pub struct RouteConfig {
    /// Resource name.
    pub name: String,
    /// Virtual hosts in declaration order.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Every cluster any route of this configuration may send to.
    pub clusters: Vec<Arc<str>>,
}

/// A virtual host: a set of domains and their ordered routes.
#[derive(Debug)]
pub struct VirtualHost {
    /// Name, for logs.
    pub name: String,
    /// Domains this host answers for.
    pub domains: Vec<DomainMatch>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// One `domains` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainMatch {
    /// `*`.
    Any,
    /// A literal host (lower-case).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
    /// `example.*`, stored as `example.`.
    Prefix(String),
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Route name (for logs, metrics and status); `-` when unnamed.
    pub name: Arc<str>,
    /// What requests it takes.
    pub matcher: RouteMatcher,
    /// Where they go.
    pub action: ForwardAction,
}

/// The match conditions of a route; all must hold.
#[derive(Debug)]
pub struct RouteMatcher {
    /// Path condition.
    pub path: PathMatch,
    /// Header conditions (pseudo-headers included).
    pub headers: Vec<HeaderMatcher>,
    /// Query parameter conditions.
    pub query: Vec<QueryMatcher>,
}

/// Path condition, applied to the path without the query string.
#[derive(Debug)]
pub enum PathMatch {
    /// Starts with.
    Prefix { value: String, case_sensitive: bool },
    /// Equals.
    Exact { value: String, case_sensitive: bool },
    /// Full match of a regex.
    Regex(Regex),
}

/// Which request attribute a header matcher reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKey {
    /// `:method`.
    Method,
    /// `:authority` (or `host`).
    Authority,
    /// `:path` (with query).
    Path,
    /// `:scheme`.
    Scheme,
    /// A regular header.
    Named(HeaderName),
    /// An attribute of a codec-decoded message (Dubbo `method`, an attachment, a THeader
    /// header), by its exact, case-sensitive name.
    Attribute(String),
}

/// A header condition.
#[derive(Debug)]
pub struct HeaderMatcher {
    /// Header read.
    pub key: HeaderKey,
    /// Condition on its value; `None` means "present".
    pub value: Option<StringMatch>,
    /// `present_match: false` means "must be absent".
    pub present: bool,
    /// Negates the result.
    pub invert: bool,
}

/// A query parameter condition.
#[derive(Debug)]
pub struct QueryMatcher {
    /// Parameter name.
    pub name: String,
    /// Condition on its value; `None` means "present".
    pub value: Option<StringMatch>,
}

/// A string condition.
#[derive(Debug)]
pub enum StringMatch {
    /// Equals.
    Exact(String, bool),
    /// Starts with.
    Prefix(String, bool),
    /// Ends with.
    Suffix(String, bool),
    /// Contains.
    Contains(String, bool),
    /// Full regex match.
    Regex(Regex),
}

/// What a matched route does.
#[derive(Debug)]
pub struct ForwardAction {
    /// Target cluster(s).
    pub target: ClusterTarget,
    /// Timeout (whole request, until response headers; `None` = none), retries and the
    /// other call policies, as every protocol's routes carry them.
    pub policy: RoutePolicy,
    /// Replacement for the matched prefix.
    pub prefix_rewrite: Option<String>,
    /// Replacement for the authority/Host.
    pub host_rewrite: Option<HeaderValue>,
}

/// One cluster or a weighted split.
#[derive(Debug)]
pub enum ClusterTarget {
    /// Always this cluster.
    Single(Arc<str>),
    /// Weighted random among these (weights relative, total > 0).
    Weighted {
        /// (cluster, weight) pairs with weight > 0.
        clusters: Vec<(Arc<str>, u32)>,
        /// Sum of weights.
        total: u64,
    },
}

/// Retry conditions, a bit set.
pub mod retry_on {
    /// TCP connect failed or timed out.
    pub const CONNECT_FAILURE: u16 = 1;
    /// HTTP/2 REFUSED_STREAM.
    pub const REFUSED_STREAM: u16 = 1 << 1;
    /// Any 5xx response (and resets, timeouts).
    pub const FIVE_XX: u16 = 1 << 2;
    /// 502, 503, 504.
    pub const GATEWAY_ERROR: u16 = 1 << 3;
    /// Upstream reset/disconnect.
    pub const RESET: u16 = 1 << 4;
    /// Status in `retriable_status_codes`.
    pub const RETRIABLE_STATUS_CODES: u16 = 1 << 5;
    /// grpc-status 14.
    pub const UNAVAILABLE: u16 = 1 << 6;
    /// grpc-status 1.
    pub const CANCELLED: u16 = 1 << 7;
    /// grpc-status 4.
    pub const DEADLINE_EXCEEDED: u16 = 1 << 8;
    /// grpc-status 8.
    pub const RESOURCE_EXHAUSTED: u16 = 1 << 9;
    /// grpc-status 13.
    pub const INTERNAL: u16 = 1 << 10;
}

/// A validated retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Bit set of [`retry_on`] conditions.
    pub on: u16,
    /// Retries after the first try.
    pub num_retries: u32,
    /// Timeout of each try; `None` = only the route timeout.
    pub per_try_timeout: Option<Duration>,
    /// Statuses retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
}

// === conversion ===

impl TryFrom<&pb::RouteConfiguration> for RouteConfig {
    type Error = ModelError;

    fn try_from(rc: &pb::RouteConfiguration) -> Result<Self, ModelError> {
        if rc.name.is_empty() {
            return Err(ModelError::Missing("name"));
        }
        let mut clusters: Vec<Arc<str>> = Vec::new();
        let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
        for (i, vh) in rc.virtual_hosts.iter().enumerate() {
            let vh = convert_vhost(vh, &mut clusters).map_err(|e| match e {
                ModelError::Invalid { field, reason } => ModelError::Invalid {
                    field,
                    reason: format!("virtual host {i}: {reason}"),
                },
                other => other,
            })?;
            virtual_hosts.push(vh);
        }
        clusters.sort();
        clusters.dedup();
        Ok(RouteConfig {
            name: rc.name.clone(),
            virtual_hosts,
            clusters,
        })
    }
}

fn convert_vhost(
    vh: &pb::VirtualHost,
    clusters: &mut Vec<Arc<str>>,
) -> Result<VirtualHost, ModelError> {
    if vh.domains.is_empty() {
        return Err(ModelError::Missing("virtual_hosts.domains"));
    }
    let domains = vh.domains.iter().map(|d| domain(d)).collect();
    let vh_rules = route_rules(&vh.rate_limits)?;
    let mut routes = Vec::with_capacity(vh.routes.len());
    for (i, r) in vh.routes.iter().enumerate() {
        let route = convert_route(r, &vh_rules).map_err(|e| ModelError::Invalid {
            field: "route",
            reason: format!("route {i} ({:?}): {e}", r.name),
        })?;
        match &route.action.target {
            ClusterTarget::Single(c) => clusters.push(c.clone()),
            ClusterTarget::Weighted { clusters: cs, .. } => {
                clusters.extend(cs.iter().map(|(c, _)| c.clone()))
            }
        }
        clusters.extend(route.action.policy.mirrors.iter().map(|m| m.cluster.clone()));
        routes.push(route);
    }
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains,
        routes,
    })
}

fn domain(d: &str) -> DomainMatch {
    let d = d.to_ascii_lowercase();
    if d == "*" {
        DomainMatch::Any
    } else if let Some(rest) = d.strip_prefix('*') {
        DomainMatch::Suffix(rest.to_string())
    } else if let Some(rest) = d.strip_suffix('*') {
        DomainMatch::Prefix(rest.to_string())
    } else {
        DomainMatch::Exact(d)
    }
}

fn convert_route(r: &pb::Route, vh_rules: &Arc<[RateLimitRule]>) -> Result<Route, ModelError> {
    let m = r.r#match.as_ref().ok_or(ModelError::Missing("match"))?;
    let case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
    use pb::route_match::PathSpecifier as P;
    let path = match &m.path_specifier {
        Some(P::Prefix(p)) => PathMatch::Prefix {
            value: fold(p, case_sensitive),
            case_sensitive,
        },
        Some(P::Path(p)) => PathMatch::Exact {
            value: fold(p, case_sensitive),
            case_sensitive,
        },
        Some(P::SafeRegex(re)) => PathMatch::Regex(full_regex(&re.regex, !case_sensitive)?),
        Some(_) => return Err(ModelError::Unsupported("path specifier".into())),
        None => return Err(ModelError::Missing("match.path_specifier")),
    };
    let headers = m
        .headers
        .iter()
        .map(header_matcher)
        .collect::<Result<_, _>>()?;
    let query = m
        .query_parameters
        .iter()
        .map(query_matcher)
        .collect::<Result<_, _>>()?;
    let mut action = match &r.action {
        Some(pb::route::Action::Route(ra)) => forward_action(ra, vh_rules)?,
        Some(_) => {
            return Err(ModelError::Unsupported(
                "route action other than `route`".into(),
            ));
        }
        None => return Err(ModelError::Missing("action")),
    };
    // The fault filter's per-route rule (Istio's `fault`); other filters' per-route
    // configuration is theirs to read.
    action.policy.fault = crate::policy::fault::from_per_filter_config(&r.typed_per_filter_config)?;
    let name: Arc<str> = if r.name.is_empty() {
        Arc::from("-")
    } else {
        Arc::from(r.name.as_str())
    };
    Ok(Route {
        name,
        matcher: RouteMatcher {
            path,
            headers,
            query,
        },
        action,
    })
}

fn fold(s: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        s.to_string()
    } else {
        s.to_ascii_lowercase()
    }
}

/// Compiles `re` anchored at both ends (Envoy's safe_regex is a full match).
pub(crate) fn full_regex(re: &str, ignore_case: bool) -> Result<Regex, ModelError> {
    let invalid = |e: regex::Error| {
        ModelError::invalid("safe_regex", format!("{re:?} does not compile: {e}"))
    };
    // Alone first: `a)|(b` compiles once wrapped, closing the anchoring group early (it
    // would match anything starting with `a`).
    Regex::new(re).map_err(invalid)?;
    let flags = if ignore_case { "(?i)" } else { "" };
    Regex::new(&format!("{flags}^(?:{re})$")).map_err(invalid)
}

pub(crate) fn string_match(sm: &StringMatcher) -> Result<StringMatch, ModelError> {
    let ic = sm.ignore_case;
    let f = |s: &String| {
        if ic {
            s.to_ascii_lowercase()
        } else {
            s.clone()
        }
    };
    Ok(match &sm.match_pattern {
        Some(MatchPattern::Exact(s)) => StringMatch::Exact(f(s), ic),
        Some(MatchPattern::Prefix(s)) => StringMatch::Prefix(f(s), ic),
        Some(MatchPattern::Suffix(s)) => StringMatch::Suffix(f(s), ic),
        Some(MatchPattern::Contains(s)) => StringMatch::Contains(f(s), ic),
        Some(MatchPattern::SafeRegex(re)) => StringMatch::Regex(full_regex(&re.regex, ic)?),
        Some(_) => return Err(ModelError::Unsupported("string matcher kind".into())),
        None => return Err(ModelError::Missing("string_match.match_pattern")),
    })
}

/// An HTTP header condition (names case-insensitive, pseudo-headers understood).
pub(crate) fn header_matcher(h: &pb::HeaderMatcher) -> Result<HeaderMatcher, ModelError> {
    let key = match h.name.to_ascii_lowercase().as_str() {
        ":method" => HeaderKey::Method,
        ":authority" | "host" => HeaderKey::Authority,
        ":path" => HeaderKey::Path,
        ":scheme" => HeaderKey::Scheme,
        other => HeaderKey::Named(
            HeaderName::from_bytes(other.as_bytes())
                .map_err(|_| ModelError::invalid("header_matcher.name", format!("{other:?}")))?,
        ),
    };
    matcher_on(key, h)
}

/// A condition on a codec-decoded message's attribute (MetaProtocol routes: Envoy's
/// HeaderMatcher with the attribute's exact name).
pub(crate) fn attribute_matcher(h: &pb::HeaderMatcher) -> Result<HeaderMatcher, ModelError> {
    if h.name.is_empty() {
        return Err(ModelError::Missing("metadata.name"));
    }
    matcher_on(HeaderKey::Attribute(h.name.clone()), h)
}

#[allow(deprecated)]
fn matcher_on(key: HeaderKey, h: &pb::HeaderMatcher) -> Result<HeaderMatcher, ModelError> {
    use pb::header_matcher::HeaderMatchSpecifier as H;
    let (value, present) = match &h.header_match_specifier {
        None => (None, true),
        Some(H::PresentMatch(p)) => (None, *p),
        Some(H::StringMatch(sm)) => (Some(string_match(sm)?), true),
        Some(H::ExactMatch(s)) => (Some(StringMatch::Exact(s.clone(), false)), true),
        Some(H::PrefixMatch(s)) => (Some(StringMatch::Prefix(s.clone(), false)), true),
        Some(H::SuffixMatch(s)) => (Some(StringMatch::Suffix(s.clone(), false)), true),
        Some(H::ContainsMatch(s)) => (Some(StringMatch::Contains(s.clone(), false)), true),
        Some(H::SafeRegexMatch(re)) => (
            Some(StringMatch::Regex(full_regex(&re.regex, false)?)),
            true,
        ),
        Some(H::RangeMatch(_)) => return Err(ModelError::Unsupported("header range_match".into())),
    };
    Ok(HeaderMatcher {
        key,
        value,
        present,
        invert: h.invert_match,
    })
}

fn query_matcher(q: &pb::QueryParameterMatcher) -> Result<QueryMatcher, ModelError> {
    use pb::query_parameter_matcher::QueryParameterMatchSpecifier as Q;
    if q.name.is_empty() {
        return Err(ModelError::Missing("query_parameters.name"));
    }
    let value = match &q.query_parameter_match_specifier {
        Some(Q::StringMatch(sm)) => Some(string_match(sm)?),
        Some(Q::PresentMatch(_)) | None => None,
    };
    Ok(QueryMatcher {
        name: q.name.clone(),
        value,
    })
}

fn forward_action(
    ra: &pb::RouteAction,
    vh_rules: &Arc<[RateLimitRule]>,
) -> Result<ForwardAction, ModelError> {
    use pb::route_action::{ClusterSpecifier as C, HostRewriteSpecifier as HR};
    let target = match &ra.cluster_specifier {
        Some(C::Cluster(c)) if !c.is_empty() => ClusterTarget::Single(Arc::from(c.as_str())),
        Some(C::WeightedClusters(wc)) => weighted_target(wc)?,
        Some(C::Cluster(_)) | None => return Err(ModelError::Missing("route.cluster")),
        Some(_) => return Err(ModelError::Unsupported("cluster specifier".into())),
    };
    let timeout = match &ra.timeout {
        Some(d) => Some(duration(d, "route.timeout")?).filter(|d| !d.is_zero()),
        None => None,
    };
    let retry = ra.retry_policy.as_ref().map(retry_policy).transpose()?;
    let host_rewrite = match &ra.host_rewrite_specifier {
        Some(HR::HostRewriteLiteral(h)) if !h.is_empty() => Some(
            HeaderValue::from_str(h)
                .map_err(|_| ModelError::invalid("host_rewrite_literal", format!("{h:?}")))?,
        ),
        Some(HR::HostRewriteLiteral(_)) | None => None,
        Some(_) => {
            return Err(ModelError::Unsupported(
                "host rewrite other than literal".into(),
            ));
        }
    };
    let prefix_rewrite = Some(ra.prefix_rewrite.clone()).filter(|p| !p.is_empty());
    Ok(ForwardAction {
        target,
        policy: RoutePolicy {
            timeout,
            retry,
            mirrors: crate::policy::mirror::from_envoy(&ra.request_mirror_policies)?,
            hash: crate::policy::hash::from_envoy(&ra.hash_policy)?,
            // The route's own rules replace its virtual host's (Envoy's default).
            rate_limits: if ra.rate_limits.is_empty() {
                vh_rules.clone()
            } else {
                route_rules(&ra.rate_limits)?
            },
            ..RoutePolicy::default()
        },
        prefix_rewrite,
        host_rewrite,
    })
}

/// A weighted split; clusters with weight 0 are left out and the rest must weigh > 0.
pub(crate) fn weighted_target(wc: &pb::WeightedCluster) -> Result<ClusterTarget, ModelError> {
    let mut clusters = Vec::new();
    let mut total = 0u64;
    for cw in &wc.clusters {
        if cw.name.is_empty() {
            return Err(ModelError::Missing("weighted_clusters.clusters.name"));
        }
        let w = cw.weight.as_ref().map_or(0, |w| w.value);
        if w > 0 {
            total += u64::from(w);
            clusters.push((Arc::from(cw.name.as_str()), w));
        }
    }
    if total == 0 {
        return Err(ModelError::invalid("weighted_clusters", "weights sum to 0"));
    }
    Ok(ClusterTarget::Weighted { clusters, total })
}

pub(crate) fn retry_policy(rp: &pb::RetryPolicy) -> Result<RetryPolicy, ModelError> {
    use retry_on::*;
    let mut on = 0;
    for cond in rp
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        on |= match cond {
            "connect-failure" => CONNECT_FAILURE,
            "refused-stream" => REFUSED_STREAM,
            "5xx" => FIVE_XX,
            "gateway-error" => GATEWAY_ERROR,
            "reset" | "reset-before-request" => RESET,
            "retriable-status-codes" => RETRIABLE_STATUS_CODES,
            "unavailable" => UNAVAILABLE,
            "cancelled" => CANCELLED,
            "deadline-exceeded" => DEADLINE_EXCEEDED,
            "resource-exhausted" => RESOURCE_EXHAUSTED,
            "internal" => INTERNAL,
            // Conditions the gateway cannot observe are ignored rather than rejected, so a
            // policy written for Envoy still applies its other conditions.
            other => {
                tracing::debug!(condition = other, "ignoring unsupported retry_on condition");
                0
            }
        };
    }
    let per_try_timeout = match &rp.per_try_timeout {
        Some(d) => Some(duration(d, "retry_policy.per_try_timeout")?).filter(|d| !d.is_zero()),
        None => None,
    };
    let mut codes = Vec::with_capacity(rp.retriable_status_codes.len());
    for c in &rp.retriable_status_codes {
        match u16::try_from(*c) {
            Ok(c) if (100..600).contains(&c) => codes.push(c),
            _ => {
                return Err(ModelError::invalid(
                    "retriable_status_codes",
                    format!("{c}"),
                ));
            }
        }
    }
    Ok(RetryPolicy {
        on,
        // Envoy's default when the field is absent.
        num_retries: rp.num_retries.as_ref().map_or(1, |n| n.value),
        per_try_timeout,
        retriable_status_codes: codes,
    })
}
