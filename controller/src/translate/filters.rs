//! The filter list of every L7 listener, assembled in one place so HTTP (HCM
//! `http_filters`) and Dubbo/Thrift (`meta_protocol_filters`) run the same policies in the
//! same order: authorization (DENY, then ALLOW), fault injection, local rate limit, global
//! rate limit, router. Denied calls spend no tokens, and injected faults cost no call to
//! the rate limit service. A policy a listener does not use adds no filter, so a listener
//! without policies has the router alone.
//!
//! Each stage's filter comes from its policy's builder; a builder returning nothing leaves
//! the stage out.

use corridor_proto::{
    aeraki::meta_protocol_proxy::v1alpha::MetaProtocolFilter,
    envoy::extensions::filters::{
        http::router::v3::Router,
        network::http_connection_manager::v3::{HttpFilter, http_filter},
    },
    pack_any,
};

use super::{authz, fault, ratelimit};
use crate::resources::authz::Action;
use crate::resources::MetaRouter;

/// HTTP filter name of the router.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// Filter name of Aeraki's MetaProtocol router (always last).
pub const META_ROUTER_FILTER: &str = "aeraki.meta_protocol.filters.router";

/// A policy stage of a listener's filter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Authorization policies with action DENY.
    RbacDeny,
    /// Authorization policies with action ALLOW.
    RbacAllow,
    /// Delays and aborts (VirtualService `fault`).
    Fault,
    /// Token buckets in the gateway.
    LocalRateLimit,
    /// Limits decided by a rate limit service.
    RateLimit,
}

/// The order every listener runs its policies in, before the router.
pub(super) const ORDER: [Stage; 5] = [
    Stage::RbacDeny,
    Stage::RbacAllow,
    Stage::Fault,
    Stage::LocalRateLimit,
    Stage::RateLimit,
];

/// What a listener's policy filters are made from; each policy adds its source here.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PolicySources<'a> {
    /// The MetaRouter naming the service (Dubbo/Thrift rate limits).
    pub meta_router: Option<&'a MetaRouter>,
    /// The AuthorizationPolicies that apply to the listener's service.
    pub authz: Option<&'a authz::ListenerPolicies<'a>>,
    /// Whether a route of the listener injects faults (the fault filter runs then).
    pub faults: bool,
}

/// The `http_filters` of an HTTP listener's connection manager: its policy stages in
/// [`ORDER`], then the router.
pub(super) fn http_filters(sources: &PolicySources<'_>, stat_prefix: &str) -> Vec<HttpFilter> {
    let mut out: Vec<HttpFilter> = ORDER.iter().filter_map(|stage| http_stage(*stage, sources, stat_prefix)).collect();
    out.push(HttpFilter {
        name: ROUTER_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    });
    out
}

/// The `meta_protocol_filters` of a Dubbo/Thrift listener: its policy stages in [`ORDER`],
/// then the router, as Aeraki writes them.
pub(super) fn meta_filters(sources: &PolicySources<'_>, stat_prefix: &str) -> Vec<MetaProtocolFilter> {
    let mut out: Vec<MetaProtocolFilter> =
        ORDER.iter().filter_map(|stage| meta_stage(*stage, sources, stat_prefix)).collect();
    out.push(MetaProtocolFilter { name: META_ROUTER_FILTER.to_string(), config: None });
    out
}

fn http_stage(stage: Stage, sources: &PolicySources<'_>, stat_prefix: &str) -> Option<HttpFilter> {
    match stage {
        Stage::RbacDeny => authz::http(sources.authz, Action::Deny),
        Stage::RbacAllow => authz::http(sources.authz, Action::Allow),
        // Empty: each route carries its own rule (`typed_per_filter_config`).
        Stage::Fault => fault::http_filter(sources.faults),
        Stage::LocalRateLimit => ratelimit::http_local(sources, stat_prefix),
        Stage::RateLimit => ratelimit::http_global(sources, stat_prefix),
    }
}

fn meta_stage(stage: Stage, sources: &PolicySources<'_>, stat_prefix: &str) -> Option<MetaProtocolFilter> {
    match stage {
        Stage::RbacDeny => authz::meta(sources.authz, Action::Deny),
        Stage::RbacAllow => authz::meta(sources.authz, Action::Allow),
        // Empty, as for HTTP: rules travel on the routes (RouteAction `fault`).
        Stage::Fault => fault::meta_filter(sources.faults),
        Stage::LocalRateLimit => ratelimit::meta_local(sources, stat_prefix),
        Stage::RateLimit => ratelimit::meta_global(sources, stat_prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without policies a listener runs the router alone, and the router's config is the
    /// same empty message it always was (listener versions do not change).
    #[test]
    fn without_policies_only_the_router_runs() {
        let http = http_filters(&PolicySources::default(), "l");
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].name, ROUTER_FILTER);
        let Some(http_filter::ConfigType::TypedConfig(any)) = &http[0].config_type else {
            panic!("router without config: {http:?}")
        };
        assert_eq!(any, &pack_any(Router::default()));
        let meta = meta_filters(&PolicySources::default(), "l");
        assert_eq!(meta, [MetaProtocolFilter { name: META_ROUTER_FILTER.to_string(), config: None }]);
    }

    /// The agreed order; a policy work package that reorders it must say so here.
    #[test]
    fn stages_run_authorization_first_and_the_global_limit_last() {
        assert_eq!(
            ORDER,
            [Stage::RbacDeny, Stage::RbacAllow, Stage::Fault, Stage::LocalRateLimit, Stage::RateLimit]
        );
    }
}
