//! Route selection for every protocol: for HTTP, the virtual host by authority, then the
//! first route whose matcher holds; for codec-based protocols (Dubbo, Thrift), the first
//! MetaProtocol route whose attribute matchers hold. Both evaluate the same
//! [`HeaderMatcher`]s and [`StringMatch`]es and pick clusters the same way.
//!
//! Everything here works on pre-compiled matchers and borrowed request parts, so it
//! allocates nothing on the common paths (case-insensitive matchers lower-case a copy).

use std::sync::Arc;

use http::{HeaderMap, Method};
use rand::Rng;

use crate::codec::Metadata;
use crate::model::meta_route::{MetaRoute, MetaRouteConfig};
use crate::model::route::{
    ClusterTarget, DomainMatch, HeaderKey, HeaderMatcher, PathMatch, QueryMatcher, Route,
    RouteConfig, StringMatch, VirtualHost,
};

/// The parts of a request routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Method.
    pub method: &'a Method,
    /// Authority (`:authority` or `Host`), possibly with a port.
    pub authority: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string without `?`, empty if none.
    pub query: &'a str,
    /// Path with query (`:path`).
    pub path_and_query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// Finds the route for a request.
pub fn select<'r>(rc: &'r RouteConfig, req: &RequestView<'_>) -> Option<&'r Route> {
    let vh = virtual_host(rc, req.authority)?;
    vh.routes.iter().find(|r| route_matches(r, req))
}

fn virtual_host<'r>(rc: &'r RouteConfig, authority: &str) -> Option<&'r VirtualHost> {
    // Fast path: the contract's single `*` virtual host.
    if let [vh] = rc.virtual_hosts.as_slice()
        && vh.domains.contains(&DomainMatch::Any)
    {
        return Some(vh);
    }
    let host_only = strip_port(authority);
    let lower_full = authority.to_ascii_lowercase();
    let lower_host = host_only.to_ascii_lowercase();
    let mut best: Option<(u8, usize, &VirtualHost)> = None;
    for vh in &rc.virtual_hosts {
        for d in &vh.domains {
            // Rank as Envoy does: exact, then longest suffix wildcard, then prefix, then `*`.
            let rank = match d {
                DomainMatch::Exact(e) if *e == lower_full || *e == lower_host => Some((4, e.len())),
                DomainMatch::Suffix(s)
                    if lower_host.ends_with(s.as_str()) || lower_full.ends_with(s.as_str()) =>
                {
                    Some((3, s.len()))
                }
                DomainMatch::Prefix(p) if lower_host.starts_with(p.as_str()) => Some((2, p.len())),
                DomainMatch::Any => Some((1, 0)),
                _ => None,
            };
            if let Some((r, len)) = rank
                && best.is_none_or(|(br, bl, _)| (r, len) > (br, bl))
            {
                best = Some((r, len, vh));
            }
        }
    }
    best.map(|(_, _, vh)| vh)
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &h[1..]);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Whether every condition of a route holds.
pub fn route_matches(route: &Route, req: &RequestView<'_>) -> bool {
    let m = &route.matcher;
    let path_ok = match &m.path {
        PathMatch::Prefix {
            value,
            case_sensitive: true,
        } => req.path.starts_with(value.as_str()),
        PathMatch::Exact {
            value,
            case_sensitive: true,
        } => req.path == value,
        PathMatch::Prefix {
            value,
            case_sensitive: false,
        } => {
            req.path.len() >= value.len()
                && req.path.as_bytes()[..value.len()].eq_ignore_ascii_case(value.as_bytes())
        }
        PathMatch::Exact {
            value,
            case_sensitive: false,
        } => req.path.eq_ignore_ascii_case(value),
        PathMatch::Regex(re) => re.is_match(req.path),
    };
    path_ok
        && m.headers.iter().all(|h| header_matches(h, req))
        && m.query.iter().all(|q| query_matches(q, req.query))
}

fn header_matches(h: &HeaderMatcher, req: &RequestView<'_>) -> bool {
    let value: Option<&str> = match &h.key {
        HeaderKey::Method => Some(req.method.as_str()),
        HeaderKey::Authority => Some(req.authority),
        HeaderKey::Path => Some(req.path_and_query),
        HeaderKey::Scheme => Some("http"),
        // An attribute matcher never comes with an HTTP route; it matches nothing here.
        HeaderKey::Attribute(_) => None,
        HeaderKey::Named(name) => {
            // Several values are matched as Envoy does: joined with commas.
            let mut it = req.headers.get_all(name).iter();
            match (it.next(), it.next()) {
                (None, _) => None,
                (Some(v), None) => v.to_str().ok(),
                (Some(_), Some(_)) => {
                    let joined: Vec<&str> = req
                        .headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    return apply_invert(h, eval_header(h, Some(&joined.join(","))));
                }
            }
        }
    };
    apply_invert(h, eval_header(h, value))
}

/// The first MetaProtocol route whose every attribute matcher holds for `metadata`.
pub fn select_meta<'r>(rc: &'r MetaRouteConfig, metadata: &Metadata) -> Option<&'r MetaRoute> {
    rc.routes
        .iter()
        .find(|r| r.matchers.iter().all(|h| attribute_matches(h, metadata)))
}

/// Whether a call's attribute satisfies one condition (routes, rate limit conditions).
pub(crate) fn attribute_matches(h: &HeaderMatcher, metadata: &Metadata) -> bool {
    let value = match &h.key {
        HeaderKey::Attribute(name) => metadata.get(name),
        HeaderKey::Named(name) => metadata.get(name.as_str()),
        HeaderKey::Method | HeaderKey::Authority | HeaderKey::Path | HeaderKey::Scheme => None,
    };
    apply_invert(h, eval_header(h, value))
}

fn eval_header(h: &HeaderMatcher, value: Option<&str>) -> bool {
    match (&h.value, value) {
        (None, v) => v.is_some() == h.present,
        (Some(_), None) => false,
        (Some(sm), Some(v)) => string_matches(sm, v),
    }
}

fn apply_invert(h: &HeaderMatcher, r: bool) -> bool {
    r != h.invert
}

fn query_matches(q: &QueryMatcher, query: &str) -> bool {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == q.name {
            return match &q.value {
                None => true,
                Some(sm) => string_matches(sm, v),
            };
        }
    }
    false
}

/// Evaluates a string condition.
pub fn string_matches(sm: &StringMatch, v: &str) -> bool {
    match sm {
        StringMatch::Exact(s, false) => v == s,
        StringMatch::Prefix(s, false) => v.starts_with(s.as_str()),
        StringMatch::Suffix(s, false) => v.ends_with(s.as_str()),
        StringMatch::Contains(s, false) => v.contains(s.as_str()),
        StringMatch::Exact(s, true) => v.eq_ignore_ascii_case(s),
        StringMatch::Prefix(s, true) => v.to_ascii_lowercase().starts_with(s.as_str()),
        StringMatch::Suffix(s, true) => v.to_ascii_lowercase().ends_with(s.as_str()),
        StringMatch::Contains(s, true) => v.to_ascii_lowercase().contains(s.as_str()),
        StringMatch::Regex(re) => re.is_match(v),
    }
}

/// Picks the cluster of a route's target; weighted targets draw from `rng`.
pub fn pick_cluster<'r, R: Rng + ?Sized>(target: &'r ClusterTarget, rng: &mut R) -> &'r Arc<str> {
    match target {
        ClusterTarget::Single(c) => c,
        ClusterTarget::Weighted { clusters, total } => {
            let mut n = rng.random_range(0..*total);
            for (c, w) in clusters {
                if n < u64::from(*w) {
                    return c;
                }
                n -= u64::from(*w);
            }
            // Only reached if `total` exceeded the sum of the weights; conversion prevents it.
            &clusters[clusters.len() - 1].0
        }
    }
}

#[cfg(test)]
mod tests;
