//! Route configurations: one per HTTP-family listener, holding the VirtualService routes
//! (first match wins) and, unless one of them catches everything, a default route to the
//! service's own cluster.

use corridor_proto::{
    envoy::{
        config::route::v3::{
            HeaderMatcher, QueryParameterMatcher, RetryPolicy, Route, RouteAction,
            RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
            header_matcher::HeaderMatchSpecifier,
            query_parameter_matcher::QueryParameterMatchSpecifier, route, route_action,
            route_match, weighted_cluster::ClusterWeight,
        },
        r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern},
    },
    google::protobuf::{BoolValue, UInt32Value},
};

use super::{
    Context, PortInfo, ServiceInfo, cluster_name, fault, listener::listener_name, pb_duration,
};
use crate::{
    resources::{
        VirtualService,
        duration::parse_duration,
        istio::{Destination, HttpMatchRequest, HttpRoute, StringMatch},
    },
    store::ObjectKey,
    xds::snapshot::Resource,
};

/// Retry conditions applied when a VirtualService route sets no `retries`, as Istio does.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Retries applied when a VirtualService route sets no `retries` (Istio's default).
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Status codes retried under `retriable-status-codes` by default (Istio's choice: 503 is
/// what an overloaded or restarting upstream answers).
pub const DEFAULT_RETRIABLE_STATUS_CODES: [u32; 1] = [503];

pub(super) fn build(
    ctx: &Context<'_>,
    info: &ServiceInfo,
    port: &PortInfo,
    routing: Option<(&ObjectKey, &VirtualService)>,
) -> Resource {
    let name = listener_name(&info.host, port.number);
    let mut routes = Vec::new();
    let mut caught_all = false;
    if let Some((key, vs)) = routing {
        for (i, http) in vs.spec.http.iter().enumerate() {
            let label = http.name.clone().unwrap_or_else(|| i.to_string());
            let route_name = format!("{}/{}/{}", key.namespace, key.name, label);
            let Some(action) = action(ctx, &key.namespace, http, port) else {
                continue;
            };
            let matches: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
                vec![None]
            } else {
                http.matches.iter().map(Some).collect()
            };
            for m in matches {
                caught_all |= is_catch_all(m);
                routes.push(Route {
                    name: route_name.clone(),
                    r#match: Some(route_match(m)),
                    action: Some(route::Action::Route(action.clone())),
                    typed_per_filter_config: fault::per_filter_config(http),
                    ..Default::default()
                });
            }
            if caught_all {
                break; // later routes could never match
            }
        }
    }
    if !caught_all {
        routes.push(Route {
            name: "default".to_string(),
            r#match: Some(route_match(None)),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster_name(
                    port.number,
                    "",
                    &info.host,
                ))),
                timeout: Some(pb_duration(std::time::Duration::ZERO)),
                retry_policy: Some(default_retry_policy()),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    super::resilience::hash_routes(ctx, &mut routes);
    let rc = RouteConfiguration {
        name: name.clone(),
        virtual_hosts: vec![VirtualHost {
            name: name.clone(),
            domains: vec!["*".to_string()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    };
    Resource::new(name, &rc)
}

fn is_catch_all(m: Option<&HttpMatchRequest>) -> bool {
    let Some(m) = m else { return true };
    let uri_all = match &m.uri {
        None => true,
        Some(u) => u.prefix.as_deref() == Some("/") && u.exact.is_none() && u.regex.is_none(),
    };
    uri_all
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.method.is_none()
        && m.authority.is_none()
        && m.query_params.is_empty()
}

fn string_matcher(s: &StringMatch) -> Option<StringMatcher> {
    let pattern = if let Some(v) = &s.exact {
        MatchPattern::Exact(v.clone())
    } else if let Some(v) = s.prefix.as_ref().filter(|p| !p.is_empty()) {
        MatchPattern::Prefix(v.clone())
    } else if let Some(v) = &s.regex {
        MatchPattern::SafeRegex(RegexMatcher {
            regex: v.clone(),
            ..Default::default()
        })
    } else {
        return None; // empty: "present"
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

fn header(name: &str, s: &StringMatch, invert: bool) -> HeaderMatcher {
    let spec = match string_matcher(s) {
        Some(m) => HeaderMatchSpecifier::StringMatch(m),
        None => HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    }
}

fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(m) = m else {
        return RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        };
    };
    let path = match &m.uri {
        Some(StringMatch { exact: Some(v), .. }) => route_match::PathSpecifier::Path(v.clone()),
        Some(StringMatch {
            prefix: Some(v), ..
        }) => route_match::PathSpecifier::Prefix(v.clone()),
        Some(StringMatch { regex: Some(v), .. }) => {
            route_match::PathSpecifier::SafeRegex(RegexMatcher {
                regex: v.clone(),
                ..Default::default()
            })
        }
        _ => route_match::PathSpecifier::Prefix("/".to_string()),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    if let Some(method) = &m.method {
        headers.push(header(":method", method, false));
    }
    if let Some(authority) = &m.authority {
        headers.push(header(":authority", authority, false));
    }
    headers.extend(m.headers.iter().map(|(n, s)| header(n, s, false)));
    headers.extend(m.without_headers.iter().map(|(n, s)| header(n, s, true)));
    let query_parameters = m
        .query_params
        .iter()
        .map(|(n, s)| QueryParameterMatcher {
            name: n.clone(),
            query_parameter_match_specifier: Some(match string_matcher(s) {
                Some(sm) => QueryParameterMatchSpecifier::StringMatch(sm),
                None => QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// The route action of a VirtualService route; `None` when no destination resolves (an
/// accepted VirtualService whose destination was deleted since).
fn action(
    ctx: &Context<'_>,
    namespace: &str,
    http: &HttpRoute,
    listener_port: &PortInfo,
) -> Option<RouteAction> {
    let mut clusters = weighted_clusters(ctx, namespace, http, listener_port)?;
    let cluster_specifier = match clusters.len() {
        1 => route_action::ClusterSpecifier::Cluster(clusters.remove(0).0),
        _ => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .into_iter()
                .map(|(name, weight)| ClusterWeight {
                    name,
                    weight: Some(UInt32Value { value: weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let rewrite = http.rewrite.as_ref();
    Some(RouteAction {
        cluster_specifier: Some(cluster_specifier),
        timeout: Some(pb_duration(timeout(http).unwrap_or_default())),
        retry_policy: retry_policy(http),
        prefix_rewrite: rewrite.and_then(|r| r.uri.clone()).unwrap_or_default(),
        host_rewrite_specifier: rewrite
            .and_then(|r| r.authority.clone())
            .map(route_action::HostRewriteSpecifier::HostRewriteLiteral),
        request_mirror_policies: fault::mirrors(ctx, namespace, http, listener_port)
            .into_iter()
            .map(|(cluster, runtime_fraction)| route_action::RequestMirrorPolicy {
                cluster,
                runtime_fraction,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// The (cluster, weight) pairs a VirtualService route sends traffic to: every destination
/// that resolves, on its port (else the listener's, else the service's first), with its
/// subset; `None` when none resolves. Shared by HTTP and MetaProtocol routes.
pub(super) fn weighted_clusters(
    ctx: &Context<'_>,
    namespace: &str,
    http: &HttpRoute,
    listener_port: &PortInfo,
) -> Option<Vec<(String, u32)>> {
    let explicit = http.route.iter().any(|d| d.weight.is_some());
    let mut clusters = Vec::new();
    for d in &http.route {
        let weight = if explicit { d.weight.unwrap_or(0) } else { 1 };
        if ctx.resolve(&d.destination.host, namespace).is_none() {
            continue;
        }
        let cluster = destination_cluster(ctx, namespace, &d.destination, listener_port)?;
        if weight <= 0 && http.route.len() > 1 {
            continue;
        }
        clusters.push((cluster, u32::try_from(weight.max(1)).unwrap_or(u32::MAX)));
    }
    (!clusters.is_empty()).then_some(clusters)
}

/// The cluster a destination names: its service, its port (else the listener's, when
/// the service has it, else the service's first), its subset; `None` when the service
/// no longer resolves.
pub(super) fn destination_cluster(
    ctx: &Context<'_>,
    namespace: &str,
    d: &Destination,
    listener_port: &PortInfo,
) -> Option<String> {
    let target = ctx.resolve(&d.host, namespace)?;
    let port = d
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| target.port(listener_port.number).map(|p| p.number))
        .or_else(|| target.ports.first().map(|p| p.number))?;
    let subset = d.subset.as_deref().unwrap_or("");
    Some(cluster_name(port, subset, &target.host))
}

/// A VirtualService route's timeout, if it sets a valid one.
pub(super) fn timeout(http: &HttpRoute) -> Option<std::time::Duration> {
    http.timeout.as_deref().and_then(|t| parse_duration(t).ok())
}

/// A VirtualService route's retry policy: Istio's default when it sets none, none when it
/// sets `attempts: 0`.
pub(super) fn retry_policy(http: &HttpRoute) -> Option<RetryPolicy> {
    match &http.retries {
        None => Some(default_retry_policy()),
        Some(r) if r.attempts <= 0 => None,
        Some(r) => {
            let (retry_on, codes) = retry_conditions(r.retry_on.as_deref());
            Some(RetryPolicy {
                retry_on,
                retriable_status_codes: codes,
                num_retries: Some(UInt32Value {
                    value: u32::try_from(r.attempts).unwrap_or(u32::MAX),
                }),
                per_try_timeout: r
                    .per_try_timeout
                    .as_deref()
                    .and_then(|t| parse_duration(t).ok())
                    .map(pb_duration),
                ..Default::default()
            })
        }
    }
}

pub(super) fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_string(),
        num_retries: Some(UInt32Value {
            value: DEFAULT_RETRY_ATTEMPTS,
        }),
        retriable_status_codes: DEFAULT_RETRIABLE_STATUS_CODES.to_vec(),
        ..Default::default()
    }
}

/// Splits Istio's `retryOn` into Envoy's condition list and status codes (numeric items).
fn retry_conditions(retry_on: Option<&str>) -> (String, Vec<u32>) {
    let Some(text) = retry_on.filter(|t| !t.trim().is_empty()) else {
        return (
            DEFAULT_RETRY_ON.to_string(),
            DEFAULT_RETRIABLE_STATUS_CODES.to_vec(),
        );
    };
    let mut conditions: Vec<String> = Vec::new();
    let mut codes = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) => conditions.push(item.to_string()),
        }
    }
    if !codes.is_empty() && !conditions.iter().any(|c| c == "retriable-status-codes") {
        conditions.push("retriable-status-codes".to_string());
    }
    (conditions.join(","), codes)
}

// === validation ===

/// A destination must name a known service, one of its ports, and a subset some
/// DestinationRule defines for it. `path` names the field in the error.
pub(super) fn check_destination<'c>(
    ctx: &'c Context<'_>,
    key: &ObjectKey,
    path: &str,
    d: &Destination,
) -> Result<&'c ServiceInfo, String> {
    let host = &d.host;
    let target = ctx.resolve(host, &key.namespace).ok_or_else(|| {
        format!(
            "{path}.host {host:?} is not a known service (from namespace {})",
            key.namespace
        )
    })?;
    if let Some(n) = d.port.as_ref().and_then(|p| p.number)
        && u16::try_from(n).ok().and_then(|n| target.port(n)).is_none()
    {
        return Err(format!("{path}.port {n} is not a port of {}", target.host));
    }
    if let Some(subset) = &d.subset {
        let defined = ctx
            .rules
            .get(&target.key)
            .is_some_and(|r| r.spec.subsets.iter().any(|s| &s.name == subset));
        if !defined {
            return Err(format!(
                "{path}.subset {subset:?} is not defined by a DestinationRule for {}",
                target.host
            ));
        }
    }
    Ok(target)
}

/// One of exact, prefix or regex (or none, where presence is what is checked), and a
/// regex that compiles.
pub(super) fn check_string_match(path: &str, s: &StringMatch, allow_empty: bool) -> Result<(), String> {
    let set = [s.exact.is_some(), s.prefix.is_some(), s.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        return Err(format!("{path} sets more than one of exact, prefix, regex"));
    }
    if set == 0 && !allow_empty {
        return Err(format!("{path} sets none of exact, prefix, regex"));
    }
    if let Some(re) = &s.regex {
        regex::Regex::new(re).map_err(|e| {
            // The crate's message spans several lines (pattern, caret, error); keep the error.
            let text = e.to_string();
            let why = text
                .rsplit("error: ")
                .next()
                .unwrap_or(&text)
                .trim()
                .to_string();
            format!("{path}.regex {re:?} is not a valid regex: {why}")
        })?;
    }
    Ok(())
}

/// Checks a VirtualService against the store; the reason names the offending field.
pub(super) fn validate(
    ctx: &Context<'_>,
    key: &ObjectKey,
    vs: &VirtualService,
) -> Result<(), String> {
    if vs.spec.hosts.is_empty() {
        return Err("spec.hosts is empty".to_string());
    }
    for (i, http) in vs.spec.http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        for (j, m) in http.matches.iter().enumerate() {
            let mp = format!("{at}.match[{j}]");
            if let Some(u) = &m.uri {
                check_string_match(&format!("{mp}.uri"), u, false)?;
            }
            if let Some(s) = &m.method {
                check_string_match(&format!("{mp}.method"), s, false)?;
            }
            if let Some(s) = &m.authority {
                check_string_match(&format!("{mp}.authority"), s, false)?;
            }
            for (n, s) in &m.headers {
                check_string_match(&format!("{mp}.headers.{n}"), s, true)?;
            }
            for (n, s) in &m.without_headers {
                check_string_match(&format!("{mp}.withoutHeaders.{n}"), s, true)?;
            }
            for (n, s) in &m.query_params {
                check_string_match(&format!("{mp}.queryParams.{n}"), s, true)?;
            }
        }
        if http.route.is_empty() {
            return Err(format!("{at}.route is empty"));
        }
        let mut total = 0i64;
        for (j, d) in http.route.iter().enumerate() {
            let dp = format!("{at}.route[{j}]");
            let w = d.weight.unwrap_or(0);
            if w < 0 {
                return Err(format!("{dp}.weight is negative ({w})"));
            }
            total += w;
            check_destination(ctx, key, &format!("{dp}.destination"), &d.destination)?;
        }
        if http.route.len() > 1 && http.route.iter().any(|d| d.weight.is_some()) && total <= 0 {
            return Err(format!(
                "{at}.route weights add up to {total}; at least one must be positive"
            ));
        }
        if let Some(t) = &http.timeout {
            parse_duration(t).map_err(|e| format!("{at}.timeout: {e}"))?;
        }
        http.check_policies(&at)?;
        if let Some(m) = &http.mirror {
            check_destination(ctx, key, &format!("{at}.mirror"), m)?;
        }
        for (j, m) in http.mirrors.iter().enumerate() {
            check_destination(ctx, key, &format!("{at}.mirrors[{j}].destination"), &m.destination)?;
        }
        if let Some(r) = &http.retries {
            if r.attempts < 0 {
                return Err(format!(
                    "{at}.retries.attempts is negative ({})",
                    r.attempts
                ));
            }
            if let Some(t) = &r.per_try_timeout {
                parse_duration(t).map_err(|e| format!("{at}.retries.perTryTimeout: {e}"))?;
            }
        }
    }
    Ok(())
}
