//! Rate limit filters of a listener: the local token buckets and the global limit decided
//! by a rate limit service, for HCM (HTTP, gRPC) and MetaProtocol (Dubbo, Thrift)
//! listeners, and the checks of their MetaRouter settings. [`super::filters`] places them
//! in the listener's filter list.

use corridor_proto::{
    aeraki::meta_protocol_proxy::{
        config::route::v1alpha::RouteMatch,
        filters::{
            local_ratelimit::v1alpha::{LocalRateLimit, LocalRateLimitCondition},
            ratelimit::v1alpha::{Descriptor as PbDescriptor, RateLimit as MetaRateLimit},
        },
        v1alpha::MetaProtocolFilter,
    },
    envoy::{
        config::{
            core::v3::{ApiVersion, GrpcService, RuntimeFractionalPercent, grpc_service},
            ratelimit::v3::RateLimitServiceConfig,
            route::v3::{
                HeaderMatcher, RateLimit as PbRule,
                rate_limit::{
                    Action,
                    action::{ActionSpecifier, HeaderValueMatch, RequestHeaders},
                },
            },
        },
        extensions::{
            common::ratelimit::v3::{LocalRateLimitDescriptor, rate_limit_descriptor::Entry},
            filters::{
                http::{local_ratelimit::v3::LocalRateLimit as HttpLocalRateLimit, ratelimit::v3::RateLimit as HttpRateLimit},
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
        },
        r#type::v3::{FractionalPercent, HttpStatus, TokenBucket as PbTokenBucket, fractional_percent::DenominatorType},
    },
    google::protobuf::UInt32Value,
    pack_any,
};

use super::{
    Context, ServiceInfo,
    filters::PolicySources,
    meta::{check_match, matcher},
    pb_duration,
};
use crate::resources::{
    MetaRouter,
    aeraki::{GlobalRateLimit, LocalRateLimit as MetaRouterLocalRateLimit, MetaRouteMatch, TokenBucket},
    duration::parse_duration,
};

/// Filter name of Aeraki's MetaProtocol local rate limit.
pub const LOCAL_RATELIMIT_FILTER: &str = "aeraki.meta_protocol.filters.local_ratelimit";
/// Filter name of Aeraki's MetaProtocol global rate limit.
pub const RATELIMIT_FILTER: &str = "aeraki.meta_protocol.filters.ratelimit";
/// HTTP filter name of Envoy's local rate limit.
pub const HTTP_LOCAL_RATELIMIT_FILTER: &str = "envoy.filters.http.local_ratelimit";
/// HTTP filter name of Envoy's global rate limit.
pub const HTTP_RATELIMIT_FILTER: &str = "envoy.filters.http.ratelimit";
/// Descriptor key naming which `localRateLimit.conditions[]` entry an HTTP request
/// matched (its index): the local limit's descriptors and rules meet on it.
const CONDITION_KEY: &str = "corridor_condition";
/// Descriptor entry an HTTP request carries, first, when `globalRateLimit.match` selects
/// it (Envoy's `header_value_match` action always adds an entry).
const MATCH_ENTRY: (&str, &str) = ("corridor_match", "true");

// === builders ===

/// The MetaRouter's `localRateLimit` as Envoy's HTTP local rate limit (a Corridor
/// extension: MetaRouter on an HTTP or gRPC host). Each condition becomes a descriptor
/// with its own bucket, picked by the filter's own rule for it, in order: the first
/// matching condition applies, as for Dubbo and Thrift. Enabled and enforced for every
/// request (Envoy's defaults are 0 %), refusing with 429.
pub(super) fn http_local(sources: &PolicySources<'_>, stat_prefix: &str) -> Option<HttpFilter> {
    let limit = sources.meta_router?.spec.local_rate_limit.as_ref()?;
    let all = || {
        Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent { numerator: 100, denominator: DenominatorType::Hundred as i32 }),
            runtime_key: String::new(),
        })
    };
    let condition = |i: usize| vec![Entry { key: CONDITION_KEY.to_string(), value: i.to_string() }];
    let config = HttpLocalRateLimit {
        stat_prefix: stat_prefix.to_string(),
        status: Some(HttpStatus { code: 429 }),
        token_bucket: limit.token_bucket.as_ref().map(bucket),
        filter_enabled: all(),
        filter_enforced: all(),
        descriptors: limit
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| LocalRateLimitDescriptor {
                entries: condition(i),
                token_bucket: Some(bucket(&c.token_bucket)),
                ..Default::default()
            })
            .collect(),
        rate_limits: limit
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| PbRule {
                actions: vec![Action {
                    action_specifier: Some(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
                        descriptor_key: CONDITION_KEY.to_string(),
                        descriptor_value: i.to_string(),
                        headers: matchers(c.matches.as_ref()),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Some(http_filter(HTTP_LOCAL_RATELIMIT_FILTER, pack_any(config)))
}

/// The MetaRouter's `globalRateLimit` as Envoy's HTTP rate limit filter with rules of its
/// own: one descriptor per selected request, the `match` entry (when the router has a
/// match) then one `request_headers` entry per descriptor (a missing header sends no
/// descriptor, as for Dubbo and Thrift).
pub(super) fn http_global(sources: &PolicySources<'_>, stat_prefix: &str) -> Option<HttpFilter> {
    let g = sources.meta_router?.spec.global_rate_limit.as_ref()?;
    let mut actions = Vec::new();
    if let Some(m) = &g.matches {
        actions.push(Action {
            action_specifier: Some(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
                descriptor_key: MATCH_ENTRY.0.to_string(),
                descriptor_value: MATCH_ENTRY.1.to_string(),
                headers: matchers(Some(m)),
                ..Default::default()
            })),
        });
    }
    actions.extend(g.descriptors.iter().map(|d| Action {
        action_specifier: Some(ActionSpecifier::RequestHeaders(RequestHeaders {
            header_name: d.property.clone(),
            descriptor_key: d.descriptor_key.clone(),
            skip_if_absent: false,
        })),
    }));
    let config = HttpRateLimit {
        domain: g.domain.clone(),
        stat_prefix: stat_prefix.to_string(),
        timeout: timeout(g),
        failure_mode_deny: g.deny_on_fail,
        rate_limit_service: Some(service(g)),
        rate_limits: vec![PbRule { actions, ..Default::default() }],
        ..Default::default()
    };
    Some(http_filter(HTTP_RATELIMIT_FILTER, pack_any(config)))
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
                r#match: Some(RouteMatch { metadata: matchers(c.matches.as_ref()) }),
                token_bucket: Some(bucket(&c.token_bucket)),
            })
            .collect(),
    };
    Some(MetaProtocolFilter { name: LOCAL_RATELIMIT_FILTER.to_string(), config: Some(pack_any(config)) })
}

/// The MetaRouter's `globalRateLimit` as Aeraki's `aeraki.meta_protocol.filters.ratelimit`.
pub(super) fn meta_global(sources: &PolicySources<'_>, _stat_prefix: &str) -> Option<MetaProtocolFilter> {
    let g = sources.meta_router?.spec.global_rate_limit.as_ref()?;
    let config = MetaRateLimit {
        r#match: g.matches.as_ref().map(|m| RouteMatch { metadata: matchers(Some(m)) }),
        domain: g.domain.clone(),
        timeout: timeout(g),
        failure_mode_deny: g.deny_on_fail,
        rate_limit_service: Some(service(g)),
        descriptors: g
            .descriptors
            .iter()
            .map(|d| PbDescriptor { property: d.property.clone(), descriptor_key: d.descriptor_key.clone() })
            .collect(),
    };
    Some(MetaProtocolFilter { name: RATELIMIT_FILTER.to_string(), config: Some(pack_any(config)) })
}

/// A match's attribute conditions (HTTP: header names and `:path`, `:method`,
/// `:authority`); none matches every request.
fn matchers(m: Option<&MetaRouteMatch>) -> Vec<HeaderMatcher> {
    m.iter().flat_map(|m| &m.attributes).map(|(k, v)| matcher(k, v, false)).collect()
}

/// The call's deadline; absent leaves the gateway's default (Envoy's 20 ms).
fn timeout(g: &GlobalRateLimit) -> Option<corridor_proto::google::protobuf::Duration> {
    g.request_timeout.as_deref().and_then(|t| parse_duration(t).ok()).map(pb_duration)
}

/// The rate limit service: Envoy's gRPC client to the cluster `rateLimitService` names.
fn service(g: &GlobalRateLimit) -> RateLimitServiceConfig {
    RateLimitServiceConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                cluster_name: g.rate_limit_service.clone(),
                ..Default::default()
            })),
            ..Default::default()
        }),
        transport_api_version: ApiVersion::V3 as i32,
    }
}

fn http_filter(name: &str, config: corridor_proto::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
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

/// Checks a MetaRouter's `globalRateLimit` (from namespace `namespace`); the reason names
/// the field.
pub(super) fn check_global(ctx: &Context<'_>, namespace: &str, g: &GlobalRateLimit) -> Result<(), String> {
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
    if g.descriptors.is_empty() {
        return Err(format!("{at}.descriptors is empty: the rate limit service needs at least one entry"));
    }
    for (i, d) in g.descriptors.iter().enumerate() {
        if d.property.is_empty() || d.descriptor_key.is_empty() {
            return Err(format!("{at}.descriptors[{i}] needs both property and descriptorKey"));
        }
    }
    check_service(ctx, namespace, &g.rate_limit_service)
        .map_err(|e| format!("{at}.rateLimitService {:?}: {e}", g.rate_limit_service))
}

/// Checks that `cluster` is a cluster name as Aeraki writes it
/// (`outbound|<port>||<service host>`) whose port speaks gRPC (HTTP/2).
fn check_service(ctx: &Context<'_>, namespace: &str, cluster: &str) -> Result<(), String> {
    let form = "must be a cluster name, outbound|<port>||<service host>";
    let parts: Vec<&str> = cluster.split('|').collect();
    let ["outbound", port, "", host] = parts[..] else {
        return Err(form.to_string());
    };
    let port: u16 = port.parse().map_err(|_| format!("{form} (port {port:?} is not a number)"))?;
    let info = ctx.resolve(host, namespace).ok_or_else(|| format!("{host:?} is not a known service"))?;
    let p = info.ports.iter().find(|p| p.number == port).ok_or_else(|| format!("{host} has no port {port}"))?;
    if !p.protocol.is_http2() {
        return Err(format!(
            "port {port} of {host} speaks {}; a rate limit service speaks gRPC (name the port grpc-... or set appProtocol: grpc)",
            p.protocol.as_str()
        ));
    }
    Ok(())
}

/// Checks what a MetaRouter may carry for its host's protocols: routes for Dubbo and
/// Thrift ports; on a service with only HTTP or gRPC ports, rate limits alone (a Corridor
/// extension: `localRateLimit` and `globalRateLimit` apply to every L7 port of the host).
pub(super) fn check_host(info: &ServiceInfo, mr: &MetaRouter) -> Result<(), String> {
    if info.ports.iter().any(|p| p.protocol.is_meta()) {
        return Ok(());
    }
    if !info.ports.iter().any(|p| p.protocol.is_http()) {
        return Err(format!("spec.hosts[0] {} has no Dubbo, Thrift, HTTP or gRPC port", info.host));
    }
    if !mr.spec.routes.is_empty() {
        return Err(format!(
            "spec.routes: {} serves HTTP/gRPC, where a MetaRouter may carry only localRateLimit and globalRateLimit (route it with a VirtualService)",
            info.host
        ));
    }
    if mr.spec.local_rate_limit.is_none() && mr.spec.global_rate_limit.is_none() {
        return Err(format!("{} serves HTTP/gRPC: the MetaRouter sets neither localRateLimit nor globalRateLimit", info.host));
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

#[cfg(test)]
mod tests {
    use corridor_proto::envoy::{
        config::listener::v3::{Listener, filter::ConfigType},
        extensions::filters::network::http_connection_manager::v3::HttpConnectionManager,
    };
    use corridor_proto::type_url;
    use prost::Message;

    use super::*;
    use crate::store::{ObjectKey, store_from_yaml};
    use crate::translate::{TranslateOptions, Validator, tests::MESH};

    /// Rate limits alone on reviews (HTTP, gRPC and TCP ports); the rate limit service
    /// is reviews' own gRPC port, for brevity.
    const LIMITS: &str = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  localRateLimit:
    tokenBucket: { maxTokens: 100, tokensPerFill: 100, fillInterval: 1s }
    conditions:
    - match: { attributes: { ":path": { prefix: /slow } } }
      tokenBucket: { maxTokens: 2, fillInterval: 1s }
  globalRateLimit:
    domain: mesh
    match: { attributes: { ":method": { exact: GET } } }
    rateLimitService: "outbound|9090||reviews.default.svc.cluster.local"
    requestTimeout: 50ms
    denyOnFail: true
    descriptors: [ { property: x-user, descriptorKey: user } ]
"#;

    fn verdict(yaml: &str) -> Result<(), String> {
        let store = store_from_yaml(&format!("{MESH}---{yaml}"));
        let opts = TranslateOptions::default();
        let key = ObjectKey::new("default", "reviews");
        Validator::new(&store, &opts).meta_router(&key, &store.meta_routers[&key])
    }

    fn typed<M: Message + Default>(f: &HttpFilter) -> M {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else { panic!("{f:?}") };
        M::decode(&any.value[..]).unwrap()
    }

    #[test]
    fn a_meta_router_limits_an_http_host_with_envoys_filters() {
        verdict(LIMITS).unwrap();
        let snapshot = crate::translate::translate(&store_from_yaml(&format!("{MESH}---{LIMITS}")), &TranslateOptions::default());
        let listener: Listener =
            crate::translate::tests::decode(&snapshot, type_url::LISTENER, "reviews.default.svc.cluster.local:9080");
        let Some(ConfigType::TypedConfig(any)) = &listener.filter_chains[0].filters[0].config_type else { panic!() };
        let hcm = HttpConnectionManager::decode(&any.value[..]).unwrap();
        let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [HTTP_LOCAL_RATELIMIT_FILTER, HTTP_RATELIMIT_FILTER, super::super::filters::ROUTER_FILTER]);

        let local: HttpLocalRateLimit = typed(&hcm.http_filters[0]);
        let hundred = |p: Option<RuntimeFractionalPercent>| p.and_then(|p| p.default_value).map(|v| (v.numerator, v.denominator));
        assert_eq!(hundred(local.filter_enabled), Some((100, DenominatorType::Hundred as i32)), "Envoy's default is 0 %");
        assert_eq!(hundred(local.filter_enforced), Some((100, DenominatorType::Hundred as i32)));
        assert_eq!(local.status.map(|s| s.code), Some(429));
        assert_eq!(local.token_bucket.unwrap().max_tokens, 100);
        assert_eq!(local.descriptors[0].entries[0].key, CONDITION_KEY);
        assert_eq!(local.descriptors[0].token_bucket.as_ref().unwrap().max_tokens, 2);
        let Some(ActionSpecifier::HeaderValueMatch(m)) = &local.rate_limits[0].actions[0].action_specifier else {
            panic!("{:?}", local.rate_limits)
        };
        assert_eq!((m.descriptor_key.as_str(), m.descriptor_value.as_str()), (CONDITION_KEY, "0"));
        assert_eq!(m.headers[0].name, ":path");

        let global: HttpRateLimit = typed(&hcm.http_filters[1]);
        assert_eq!(global.domain, "mesh");
        assert!(global.failure_mode_deny);
        assert_eq!(global.timeout.map(|t| t.nanos), Some(50_000_000));
        let Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) =
            global.rate_limit_service.and_then(|s| s.grpc_service).and_then(|g| g.target_specifier)
        else {
            panic!("no envoy_grpc")
        };
        assert_eq!(g.cluster_name, "outbound|9090||reviews.default.svc.cluster.local");
        let actions = &global.rate_limits[0].actions;
        assert_eq!(actions.len(), 2, "the match, then the header");
        let Some(ActionSpecifier::RequestHeaders(h)) = &actions[1].action_specifier else { panic!("{actions:?}") };
        assert_eq!((h.header_name.as_str(), h.descriptor_key.as_str()), ("x-user", "user"));
    }

    #[test]
    fn each_rate_limit_mistake_is_named_by_its_field() {
        for (bad, field) in [
            (LIMITS.replace("outbound|9090|", "outbound|9080|"), "spec.globalRateLimit.rateLimitService"),
            (LIMITS.replace("outbound|9090||", "reviews:"), "spec.globalRateLimit.rateLimitService"),
            (LIMITS.replace("reviews.default.svc.cluster.local\"", "nowhere\""), "spec.globalRateLimit.rateLimitService"),
            (LIMITS.replace("descriptorKey: user", "descriptorKey: \"\""), "spec.globalRateLimit.descriptors[0]"),
            (LIMITS.replace("requestTimeout: 50ms", "requestTimeout: soon"), "spec.globalRateLimit.requestTimeout"),
            (
                LIMITS.replace("  localRateLimit:", "  routes: [ { route: [ { destination: { host: reviews } } ] } ]\n  localRateLimit:"),
                "spec.routes",
            ),
        ] {
            let reason = verdict(&bad).unwrap_err();
            assert!(reason.starts_with(field), "{reason:?} should start with {field:?}");
        }
    }
}
