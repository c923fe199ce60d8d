//! One AuthorizationPolicy rule → one RBAC `Policy`: each `from` entry a principal, each
//! `to` entry a permission (OR-ed), the fields of one entry AND-ed, `not*` fields
//! negated, `when` conditions AND-ed to every entry of their side.
//!
//! - principals: `authenticated.principal_name` = `spiffe://<value>`; namespaces: the
//!   principal regex `.*/ns/<ns>/.*` (Istio's form); ipBlocks: `direct_remote_ip`.
//! - HTTP and gRPC: paths → `url_path` (gRPC `/pkg.Service/Method`), methods →
//!   `:method`, hosts → `:authority` (case-insensitive).
//! - Dubbo: paths → the `interface` attribute, methods → `method`. Thrift: methods →
//!   `method`; Thrift calls have no path, so a `to` entry naming paths never matches in
//!   an ALLOW policy and ignores them in a DENY policy (Istio's rule for fields a
//!   protocol lacks: the policy errs on the refusing side).
//! - ports (and hosts of Dubbo and Thrift, which have no authority) are decided here,
//!   against the listener's service port and host names.
//! - `*` alone matches any value; a leading or trailing `*` a suffix or prefix.

use corridor_proto::envoy::{
    config::{
        core::v3::CidrRange,
        rbac::v3::{Permission, Policy, Principal, permission, principal},
        route::v3::{HeaderMatcher, header_matcher::HeaderMatchSpecifier},
    },
    r#type::matcher::v3::{
        PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
    },
};
use corridor_proto::google::protobuf::UInt32Value;

use super::ListenerPolicies;
use crate::{
    protocol::Protocol,
    resources::authz::{Action, Condition, Operation, Rule, Source},
};

/// The `when` keys Corridor evaluates.
pub(super) const HEADER_KEY_PREFIX: &str = "request.headers[";
/// `when` keys about the source.
pub(super) const SOURCE_KEYS: [&str; 3] = ["source.ip", "source.namespace", "source.principal"];

/// The RBAC policy of one rule.
pub(super) fn policy(rule: &Rule, action: Action, l: &ListenerPolicies<'_>) -> Policy {
    let (mut when_permissions, mut when_principals) = (Vec::new(), Vec::new());
    for c in &rule.when {
        match c.key.as_str() {
            key if key.starts_with(HEADER_KEY_PREFIX) => {
                let name = key
                    .trim_start_matches(HEADER_KEY_PREFIX)
                    .trim_end_matches(']');
                when_permissions.push(condition(c, |v| header_permission(name, v)));
            }
            "source.ip" => when_principals.push(condition(c, ip_principal)),
            "source.namespace" => when_principals.push(condition(c, namespace_principal)),
            "source.principal" => when_principals.push(condition(c, name_principal)),
            // Admission refuses other keys; should one get here, it matches nothing.
            _ => when_permissions.push(never()),
        }
    }
    let permissions: Vec<Permission> = if rule.to.is_empty() {
        vec![any_permission()]
    } else {
        rule.to
            .iter()
            .map(|t| operation(&t.operation, action, l))
            .collect()
    };
    let principals: Vec<Principal> = if rule.from.is_empty() {
        vec![any_principal()]
    } else {
        rule.from.iter().map(|f| source(&f.source)).collect()
    };
    Policy {
        permissions: with_all(permissions, when_permissions, and_permissions),
        principals: with_all(principals, when_principals, and_principals),
        ..Default::default()
    }
}

/// Each of `entries` AND-ed with all of `extra`.
fn with_all<T: Clone>(entries: Vec<T>, extra: Vec<T>, and: fn(Vec<T>) -> T) -> Vec<T> {
    if extra.is_empty() {
        return entries;
    }
    entries
        .into_iter()
        .map(|e| and(std::iter::once(e).chain(extra.iter().cloned()).collect()))
        .collect()
}

/// A `when` condition: one of `values`, none of `notValues`.
fn condition<T: Clone + Combine>(c: &Condition, one: impl Fn(&str) -> T) -> T {
    let mut parts = Vec::new();
    if !c.values.is_empty() {
        parts.push(T::or(c.values.iter().map(|v| one(v)).collect()));
    }
    if !c.not_values.is_empty() {
        parts.push(T::not(T::or(c.not_values.iter().map(|v| one(v)).collect())));
    }
    T::and(parts)
}

// === sources ===

fn source(s: &Source) -> Principal {
    let mut parts = Vec::new();
    let mut field = |values: &[String], negated: bool, one: &dyn Fn(&str) -> Principal| {
        if values.is_empty() {
            return;
        }
        let any_of = Principal::or(values.iter().map(|v| one(v)).collect());
        parts.push(if negated {
            Principal::not(any_of)
        } else {
            any_of
        });
    };
    field(&s.principals, false, &name_principal);
    field(&s.not_principals, true, &name_principal);
    field(&s.namespaces, false, &namespace_principal);
    field(&s.not_namespaces, true, &namespace_principal);
    field(&s.ip_blocks, false, &ip_principal);
    field(&s.not_ip_blocks, true, &ip_principal);
    Principal::and(parts)
}

/// A principal `<trust domain>/ns/<ns>/sa/<sa>` as Envoy sees it, with `spiffe://`.
fn name_principal(v: &str) -> Principal {
    let name = match wildcard(v) {
        Wild::Any => None,
        Wild::Prefix(p) => Some(string(MatchPattern::Prefix(format!("spiffe://{p}")))),
        Wild::Suffix(s) => Some(string(MatchPattern::Suffix(s.to_string()))),
        Wild::Exact(e) => Some(string(MatchPattern::Exact(format!("spiffe://{e}")))),
    };
    authenticated(name)
}

fn namespace_principal(v: &str) -> Principal {
    let ns = match wildcard(v) {
        Wild::Any => return authenticated(None),
        Wild::Prefix(p) => format!("{}[^/]*", regex::escape(p)),
        Wild::Suffix(s) => format!("[^/]*{}", regex::escape(s)),
        Wild::Exact(e) => regex::escape(e),
    };
    authenticated(Some(string(MatchPattern::SafeRegex(RegexMatcher {
        regex: format!(".*/ns/{ns}/.*"),
        ..Default::default()
    }))))
}

fn authenticated(principal_name: Option<StringMatcher>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated { principal_name },
        )),
    }
}

/// An IP or CIDR (validated by admission); a malformed one matches nothing.
fn ip_principal(v: &str) -> Principal {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, l.parse::<u32>().ok()),
        None => (v, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return Principal::not(any_principal());
    };
    let len = len.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
    Principal {
        identifier: Some(principal::Identifier::DirectRemoteIp(CidrRange {
            address_prefix: ip.to_string(),
            prefix_len: Some(UInt32Value { value: len }),
        })),
    }
}

// === operations ===

fn operation(o: &Operation, action: Action, l: &ListenerPolicies<'_>) -> Permission {
    let mut parts = Vec::new();
    let statically = |ok: bool| if ok { any_permission() } else { never() };
    if !o.ports.is_empty() {
        parts.push(statically(o.ports.iter().any(|p| port_is(p, l.port))));
    }
    if !o.not_ports.is_empty() {
        parts.push(statically(!o.not_ports.iter().any(|p| port_is(p, l.port))));
    }
    let http = l.protocol.is_http();
    let mut field = |values: &[String], negated: bool, one: &dyn Fn(&str) -> Permission| {
        if values.is_empty() {
            return;
        }
        let any_of = Permission::or(values.iter().map(|v| one(v)).collect());
        parts.push(if negated {
            Permission::not(any_of)
        } else {
            any_of
        });
    };
    if http {
        let host = |v: &str| header_permission_ci(":authority", v);
        field(&o.hosts, false, &host);
        field(&o.not_hosts, true, &host);
    } else {
        let host = |v: &str| statically(l.hosts.iter().any(|h| value_matches(v, h)));
        field(&o.hosts, false, &host);
        field(&o.not_hosts, true, &host);
    }
    let method_header = if http { ":method" } else { "method" };
    let method = |v: &str| header_permission(method_header, v);
    field(&o.methods, false, &method);
    field(&o.not_methods, true, &method);
    match l.protocol {
        Protocol::Thrift => {
            // No path in a Thrift call: an ALLOW naming paths cannot match; a DENY
            // refuses as if the paths were not there.
            if (!o.paths.is_empty() || !o.not_paths.is_empty()) && action == Action::Allow {
                parts.push(never());
            }
        }
        Protocol::Dubbo => {
            let path = |v: &str| header_permission("interface", v);
            field(&o.paths, false, &path);
            field(&o.not_paths, true, &path);
        }
        _ => {
            field(&o.paths, false, &path_permission);
            field(&o.not_paths, true, &path_permission);
        }
    }
    Permission::and(parts)
}

fn port_is(v: &str, port: u16) -> bool {
    v.parse::<u16>() == Ok(port)
}

/// Whether a static value (a host name) matches an Istio pattern, case-insensitively.
fn value_matches(pattern: &str, value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    match wildcard(&pattern.to_ascii_lowercase()) {
        Wild::Any => true,
        Wild::Prefix(p) => value.starts_with(p),
        Wild::Suffix(s) => value.ends_with(s),
        Wild::Exact(e) => value == e,
    }
}

fn path_permission(v: &str) -> Permission {
    let Some(pattern) = pattern(v) else {
        return any_permission();
    };
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string(pattern))),
        })),
    }
}

fn header_permission(name: &str, v: &str) -> Permission {
    header(name, v, false)
}

fn header_permission_ci(name: &str, v: &str) -> Permission {
    header(name, v, true)
}

fn header(name: &str, v: &str, ignore_case: bool) -> Permission {
    let spec = match pattern(v) {
        None => HeaderMatchSpecifier::PresentMatch(true),
        Some(p) => HeaderMatchSpecifier::StringMatch(StringMatcher {
            ignore_case,
            ..string(p)
        }),
    };
    Permission {
        rule: Some(permission::Rule::Header(HeaderMatcher {
            name: name.to_string(),
            header_match_specifier: Some(spec),
            ..Default::default()
        })),
    }
}

// === building blocks ===

enum Wild<'v> {
    Any,
    Prefix(&'v str),
    Suffix(&'v str),
    Exact(&'v str),
}

fn wildcard(v: &str) -> Wild<'_> {
    if v == "*" {
        Wild::Any
    } else if let Some(p) = v.strip_suffix('*') {
        Wild::Prefix(p)
    } else if let Some(s) = v.strip_prefix('*') {
        Wild::Suffix(s)
    } else {
        Wild::Exact(v)
    }
}

/// The string pattern of an Istio value; none for `*` (any value).
fn pattern(v: &str) -> Option<MatchPattern> {
    Some(match wildcard(v) {
        Wild::Any => return None,
        Wild::Prefix(p) => MatchPattern::Prefix(p.to_string()),
        Wild::Suffix(s) => MatchPattern::Suffix(s.to_string()),
        Wild::Exact(e) => MatchPattern::Exact(e.to_string()),
    })
}

fn string(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

fn any_permission() -> Permission {
    Permission {
        rule: Some(permission::Rule::Any(true)),
    }
}

/// Matches nothing.
fn never() -> Permission {
    Permission::not(any_permission())
}

fn any_principal() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}

fn and_permissions(rules: Vec<Permission>) -> Permission {
    Permission::and(rules)
}

fn and_principals(ids: Vec<Principal>) -> Principal {
    Principal::and(ids)
}

/// AND, OR and NOT over permissions and principals alike.
trait Combine: Sized {
    fn and(parts: Vec<Self>) -> Self;
    fn or(parts: Vec<Self>) -> Self;
    fn not(inner: Self) -> Self;
}

impl Combine for Permission {
    fn and(mut rules: Vec<Self>) -> Self {
        match rules.len() {
            0 => any_permission(),
            1 => rules.remove(0),
            _ => Permission {
                rule: Some(permission::Rule::AndRules(permission::Set { rules })),
            },
        }
    }
    fn or(mut rules: Vec<Self>) -> Self {
        match rules.len() {
            1 => rules.remove(0),
            _ => Permission {
                rule: Some(permission::Rule::OrRules(permission::Set { rules })),
            },
        }
    }
    fn not(inner: Self) -> Self {
        Permission {
            rule: Some(permission::Rule::NotRule(Box::new(inner))),
        }
    }
}

impl Combine for Principal {
    fn and(mut ids: Vec<Self>) -> Self {
        match ids.len() {
            0 => any_principal(),
            1 => ids.remove(0),
            _ => Principal {
                identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
            },
        }
    }
    fn or(mut ids: Vec<Self>) -> Self {
        match ids.len() {
            1 => ids.remove(0),
            _ => Principal {
                identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
            },
        }
    }
    fn not(inner: Self) -> Self {
        Principal {
            identifier: Some(principal::Identifier::NotId(Box::new(inner))),
        }
    }
}
