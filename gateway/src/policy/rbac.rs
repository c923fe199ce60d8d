//! Authorization: Envoy's RBAC filter (`envoy.filters.http.rbac`, message
//! `envoy.extensions.filters.http.rbac.v3.RBAC`), for HTTP and gRPC in the HCM's filter
//! list and for Dubbo and Thrift under the same name in `meta_protocol_filters`.
//!
//! A filter holds one action and named policies. A policy matches when one of its
//! permissions matches the request and one of its principals matches the source; an
//! ALLOW filter refuses a request no policy matches, a DENY filter one that a policy
//! matches. The controller emits the DENY filter before the ALLOW one, which gives
//! Istio's order (DENY first; with ALLOW policies present, a request must match one).
//!
//! The source is who the pod table says owns the peer IP (`policy::identity`): an
//! `authenticated` principal matches against that pod's SPIFFE name, not a certificate.
//! A peer IP no pod has is unauthenticated, so it matches only address principals
//! (`direct_remote_ip`) and negations.

mod convert;

use std::net::IpAddr;

use super::chain::Step;
use super::reject::{Reject, RejectKind};
use super::request::{Attributes, Request, matches};
use crate::model::route::{HeaderMatcher, StringMatch};
use crate::router::string_matches;

pub use convert::ParseMode;

/// What a filter does with a request its policies match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let matched requests through; refuse the rest.
    Allow,
    /// Refuse matched requests; let the rest through.
    Deny,
}

/// One RBAC filter, ready to evaluate.
#[derive(Debug)]
pub struct Rbac {
    action: Action,
    /// Policies by name, in name order (the first that matches is the one reported).
    /// `None`: the filter has no rules and lets everything through, as Envoy's does.
    policies: Option<Box<[(String, Policy)]>>,
}

/// One named policy.
#[derive(Debug)]
struct Policy {
    /// OR-ed.
    permissions: Box<[Permission]>,
    /// OR-ed.
    principals: Box<[Principal]>,
}

/// What the request asks for.
#[derive(Debug)]
enum Permission {
    Any,
    And(Box<[Permission]>),
    Or(Box<[Permission]>),
    Not(Box<Permission>),
    /// A header (HTTP) or attribute (Dubbo, Thrift).
    Header(HeaderMatcher),
    /// The path (HTTP, gRPC `/pkg.Service/Method`; the Dubbo interface).
    Path(StringMatch),
}

/// Who sends it.
#[derive(Debug)]
enum Principal {
    Any,
    And(Box<[Principal]>),
    Or(Box<[Principal]>),
    Not(Box<Principal>),
    /// A source the pod table knows, whose principal matches (any, when `None`).
    Authenticated(Option<StringMatch>),
    /// The peer address falls in the range.
    DirectIp(Cidr),
    /// A header or attribute of the request (Istio's `request.headers` conditions).
    Header(HeaderMatcher),
}

/// An address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Rbac {
    /// The filter's action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The name of the first policy (by name) that matches `req`, if any.
    pub fn matched(&self, req: &Request<'_>) -> Option<&str> {
        let policies = self.policies.as_deref()?;
        policies
            .iter()
            .find(|(_, p)| p.matches(req))
            .map(|(name, _)| name.as_str())
    }

    /// This filter's decision on `req`, arriving on listener `listener`.
    pub fn check(&self, listener: &str, req: &Request<'_>) -> Step {
        if self.policies.is_none() {
            return Step::Go;
        }
        let refused = match (self.action, self.matched(req)) {
            (Action::Allow, Some(_)) => return Step::Go,
            (Action::Deny, None) => return Step::Go,
            (Action::Allow, None) => "no ALLOW policy matched".to_owned(),
            (Action::Deny, Some(policy)) => format!("DENY policy {policy} matched"),
        };
        let who = req
            .source
            .workload
            .as_ref()
            .map_or("an address no pod has", |w| w.principal.as_str());
        tracing::debug!(listener, source = %req.source.addr, principal = who, "rbac_denied: {refused}");
        Step::Refuse(Reject::of(RejectKind::Unauthorized))
    }
}

impl Policy {
    fn matches(&self, req: &Request<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(req.attrs))
            && self.principals.iter().any(|p| p.matches(req))
    }
}

impl Permission {
    fn matches(&self, attrs: &dyn Attributes) -> bool {
        match self {
            Permission::Any => true,
            Permission::And(all) => all.iter().all(|p| p.matches(attrs)),
            Permission::Or(any) => any.iter().any(|p| p.matches(attrs)),
            Permission::Not(p) => !p.matches(attrs),
            Permission::Header(h) => matches(h, attrs),
            Permission::Path(sm) => attrs.path().is_some_and(|path| string_matches(sm, path)),
        }
    }
}

impl Principal {
    fn matches(&self, req: &Request<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::And(all) => all.iter().all(|p| p.matches(req)),
            Principal::Or(any) => any.iter().any(|p| p.matches(req)),
            Principal::Not(p) => !p.matches(req),
            Principal::Authenticated(name) => req.source.workload.as_ref().is_some_and(|w| {
                name.as_ref()
                    .is_none_or(|sm| string_matches(sm, &w.principal))
            }),
            Principal::DirectIp(cidr) => cidr.contains(req.source.addr.ip()),
            Principal::Header(h) => matches(h, req.attrs),
        }
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

#[cfg(test)]
mod tests;
