//! Aeraki MetaRouters: validation, and translation into the MetaProtocol route
//! configuration (Aeraki's `RouteConfiguration`) of each Dubbo/Thrift listener.

use corridor_proto::{
    aeraki::meta_protocol_proxy::config::route::v1alpha::{
        KeyValue as PbKeyValue, Route, RouteAction, RouteConfiguration, RouteMatch,
        route_action::{ClusterSpecifier, RequestMirrorPolicy},
    },
    envoy::{
        config::{
            core::v3::RuntimeFractionalPercent,
            route::v3::{
                HeaderMatcher, WeightedCluster, header_matcher::HeaderMatchSpecifier,
                weighted_cluster::ClusterWeight,
            },
        },
        r#type::{
            matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern},
            v3::{FractionalPercent, fractional_percent::DenominatorType},
        },
    },
    google::protobuf::UInt32Value,
};

use super::{
    Context, PortInfo, ServiceInfo, cluster_name, fault, pb_duration,
    listener::listener_name, ratelimit,
    route::{self, check_destination, check_string_match, default_retry_policy},
};
use crate::{
    resources::{
        MetaRouter, VirtualService,
        aeraki::{KeyValue, MetaRoute, MetaRouteMatch},
        istio::{Destination, HttpMatchRequest, HttpRoute, StringMatch},
    },
    store::ObjectKey,
    xds::snapshot::Resource,
};

/// What routes a Dubbo/Thrift service: Aeraki's MetaRouter first, else an Istio
/// VirtualService (as Aeraki accepts them for Dubbo), else nothing (one default route).
#[derive(Debug, Clone, Copy)]
pub(super) enum MetaRouting<'a> {
    /// A MetaRouter targets the service.
    Router(&'a ObjectKey, &'a MetaRouter),
    /// A VirtualService targets the service.
    Virtual(&'a ObjectKey, &'a VirtualService),
    /// Neither.
    Default,
}

/// The route configuration of a Dubbo/Thrift listener. Every route retries as Istio's
/// default does for HTTP (connect failures, and answers meaning the service never ran:
/// Dubbo's no-provider and thread-pool-exhausted statuses map to 503), unless a
/// VirtualService sets its own policy.
pub(super) fn build(ctx: &Context<'_>, info: &ServiceInfo, port: &PortInfo, routing: MetaRouting<'_>) -> Resource {
    let name = listener_name(&info.host, port.number);
    let mut routes = match routing {
        MetaRouting::Router(key, mr) => mr
            .spec
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route {
                name: r.name.clone().unwrap_or_else(|| format!("route-{i}")),
                r#match: Some(RouteMatch {
                    metadata: r.matches.iter().flat_map(|m| &m.attributes).map(|(k, v)| matcher(k, v, false)).collect(),
                }),
                route: Some(RouteAction {
                    cluster_specifier: Some(target(ctx, key, info, port, &r.route)),
                    request_mirror_policies: r
                        .mirror
                        .iter()
                        .map(|m| RequestMirrorPolicy {
                            cluster: destination_cluster(ctx, key, info, port, m),
                            runtime_fraction: r.mirror_percentage.as_ref().map(|p| RuntimeFractionalPercent {
                                default_value: Some(FractionalPercent {
                                    numerator: (p.value * 100.0).round() as u32,
                                    denominator: DenominatorType::TenThousand as i32,
                                }),
                                ..Default::default()
                            }),
                        })
                        .collect(),
                    // Corridor extensions: a VirtualService route's timeout, retries and
                    // fault, in the same terms.
                    timeout: route::timeout(&extensions(r)).map(pb_duration),
                    retry_policy: route::retry_policy(&extensions(r)),
                    fault: r.fault.as_ref().map(fault::http_fault),
                    ..Default::default()
                }),
                request_mutation: pairs(&r.request_mutation),
                response_mutation: pairs(&r.response_mutation),
            })
            .collect(),
        MetaRouting::Virtual(key, vs) => virtual_service_routes(ctx, key, vs, port),
        MetaRouting::Default => Vec::new(),
    };
    if routes.is_empty() {
        routes.push(Route {
            name: "default".into(),
            r#match: Some(RouteMatch::default()),
            route: Some(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(cluster_name(port.number, "", &info.host))),
                retry_policy: Some(default_retry_policy()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    super::resilience::hash_meta_routes(ctx, &mut routes);
    Resource::new(name.clone(), &RouteConfiguration { name, routes })
}

/// A VirtualService's `http` routes as MetaProtocol routes: `method` matches the call's
/// method, `headers` (and `withoutHeaders`) match any attribute (Dubbo `interface`,
/// `version`, `group` and attachments; Thrift THeader headers); URI, authority and query
/// conditions have no meaning for these protocols and are left out. Destinations, subsets,
/// weights, `timeout` and `retries` carry over as for HTTP.
fn virtual_service_routes(ctx: &Context<'_>, key: &ObjectKey, vs: &VirtualService, port: &PortInfo) -> Vec<Route> {
    let mut routes = Vec::new();
    for (i, http) in vs.spec.http.iter().enumerate() {
        let Some(clusters) = route::weighted_clusters(ctx, &key.namespace, http, port) else {
            continue;
        };
        let action = RouteAction {
            cluster_specifier: Some(weighted(clusters)),
            timeout: route::timeout(http).map(pb_duration),
            retry_policy: route::retry_policy(http),
            fault: http.fault.as_ref().map(fault::http_fault),
            request_mirror_policies: fault::mirrors(ctx, &key.namespace, http, port)
                .into_iter()
                .map(|(cluster, runtime_fraction)| RequestMirrorPolicy { cluster, runtime_fraction })
                .collect(),
            ..Default::default()
        };
        let label = http.name.clone().unwrap_or_else(|| i.to_string());
        let matches: Vec<Option<&HttpMatchRequest>> =
            if http.matches.is_empty() { vec![None] } else { http.matches.iter().map(Some).collect() };
        for m in matches {
            let metadata = m.map_or_else(Vec::new, |m| {
                let method = m.method.iter().map(|s| matcher("method", s, false));
                let with = m.headers.iter().map(|(k, v)| matcher(k, v, false));
                let without = m.without_headers.iter().map(|(k, v)| matcher(k, v, true));
                method.chain(with).chain(without).collect()
            });
            routes.push(Route {
                name: format!("{}/{}/{label}", key.namespace, key.name),
                r#match: Some(RouteMatch { metadata }),
                route: Some(action.clone()),
                ..Default::default()
            });
        }
    }
    routes
}

/// A MetaRouter route's Corridor extensions (`timeout`, `retries`, `fault`) read as a
/// VirtualService route's, so both translate the same way.
fn extensions(r: &MetaRoute) -> HttpRoute {
    HttpRoute {
        timeout: r.timeout.clone(),
        retries: r.retries.clone(),
        fault: r.fault.clone(),
        ..Default::default()
    }
}

/// One cluster, or a weighted split.
fn weighted(mut clusters: Vec<(String, u32)>) -> ClusterSpecifier {
    if clusters.len() == 1 {
        return ClusterSpecifier::Cluster(clusters.remove(0).0);
    }
    ClusterSpecifier::WeightedClusters(WeightedCluster {
        clusters: clusters
            .into_iter()
            .map(|(name, weight)| ClusterWeight { name, weight: Some(UInt32Value { value: weight }), ..Default::default() })
            .collect(),
        ..Default::default()
    })
}

/// The cluster a destination names: its service (resolved from the router's namespace),
/// its port (else the listener's), its subset.
fn destination_cluster(
    ctx: &Context<'_>,
    key: &ObjectKey,
    info: &ServiceInfo,
    port: &PortInfo,
    d: &Destination,
) -> String {
    let host = ctx
        .resolve(&d.host, &key.namespace)
        .map_or(info.host.as_str(), |s| s.host.as_str());
    let number = d
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(port.number);
    cluster_name(number, d.subset.as_deref().unwrap_or(""), host)
}

fn target(
    ctx: &Context<'_>,
    key: &ObjectKey,
    info: &ServiceInfo,
    port: &PortInfo,
    destinations: &[crate::resources::aeraki::MetaRouteDestination],
) -> ClusterSpecifier {
    weighted(
        destinations
            .iter()
            .map(|d| (destination_cluster(ctx, key, info, port, &d.destination), d.weight.unwrap_or(0)))
            .collect(),
    )
}

/// An attribute condition as Envoy's HeaderMatcher (negated with `invert`); an empty one
/// checks presence.
pub(super) fn matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let pattern = if let Some(v) = &m.exact {
        Some(MatchPattern::Exact(v.clone()))
    } else if let Some(v) = &m.prefix {
        Some(MatchPattern::Prefix(v.clone()))
    } else {
        m.regex.as_ref().map(|re| {
            MatchPattern::SafeRegex(RegexMatcher {
                regex: re.clone(),
                ..Default::default()
            })
        })
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(match pattern {
            Some(p) => HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(p),
                ..Default::default()
            }),
            None => HeaderMatchSpecifier::PresentMatch(true),
        }),
        invert_match: invert,
        ..Default::default()
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<PbKeyValue> {
    kvs.iter()
        .map(|kv| PbKeyValue {
            key: kv.key.clone(),
            value: kv.value.clone(),
        })
        .collect()
}

/// Checks a MetaRouter; the error names the field that is wrong and why.
pub(super) fn validate(ctx: &Context<'_>, key: &ObjectKey, mr: &MetaRouter) -> Result<(), String> {
    let Some(host) = mr.spec.hosts.first() else {
        return Err("spec.hosts is empty".to_string());
    };
    let info = ctx.resolve(host, &key.namespace).ok_or_else(|| {
        format!(
            "spec.hosts[0] {host:?} is not a known service (from namespace {})",
            key.namespace
        )
    })?;
    ratelimit::check_host(info, mr)?;
    for (i, route) in mr.spec.routes.iter().enumerate() {
        let at = format!("spec.routes[{i}]");
        if let Some(m) = &route.matches {
            check_match(&format!("{at}.match"), m)?;
        }
        if route.route.is_empty() {
            return Err(format!("{at}.route is empty"));
        }
        let mut total = 0u64;
        for (j, d) in route.route.iter().enumerate() {
            let dp = format!("{at}.route[{j}]");
            let w = d.weight.unwrap_or(0);
            if w > 100 {
                return Err(format!("{dp}.weight is {w}; weights are percentages (0-100)"));
            }
            total += u64::from(w);
            check_destination(ctx, key, &format!("{dp}.destination"), &d.destination)?;
        }
        if route.route.len() > 1 && total != 100 {
            return Err(format!("{at}.route weights add up to {total}, not 100"));
        }
        if let Some(m) = &route.mirror {
            check_destination(ctx, key, &format!("{at}.mirror"), m)?;
        }
        if let Some(p) = &route.mirror_percentage
            && !(0.0..=100.0).contains(&p.value)
        {
            return Err(format!("{at}.mirrorPercentage.value {} is not in 0-100", p.value));
        }
        if let Some(t) = &route.timeout {
            crate::resources::duration::parse_duration(t).map_err(|e| format!("{at}.timeout: {e}"))?;
        }
        if let Some(r) = &route.retries
            && r.attempts < 0
        {
            return Err(format!("{at}.retries.attempts is negative ({})", r.attempts));
        }
        if let Some(f) = &route.fault {
            f.check(&format!("{at}.fault"))?;
        }
        for (j, kv) in route.request_mutation.iter().chain(&route.response_mutation).enumerate() {
            if kv.key.is_empty() {
                return Err(format!("{at}: mutation {j} has an empty key"));
            }
        }
    }
    if let Some(limit) = &mr.spec.local_rate_limit {
        ratelimit::check_local(limit)?;
    }
    if let Some(g) = &mr.spec.global_rate_limit {
        ratelimit::check_global(ctx, &key.namespace, g)?;
    }
    Ok(())
}

/// Checks a MetaRouter attribute match; the reason names the attribute under `path`.
pub(super) fn check_match(path: &str, m: &MetaRouteMatch) -> Result<(), String> {
    for (name, s) in &m.attributes {
        check_string_match(&format!("{path}.attributes.{name}"), s, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{
        admission::Admission,
        resources::ObjectRef,
        store::{ObjectKey, store_from_yaml},
        translate::{TranslateOptions, Validator, tests::MESH},
    };

    #[test]
    fn a_virtual_service_routes_a_dubbo_service_when_no_meta_router_does() {
        use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::{
            RouteConfiguration, route_action::ClusterSpecifier,
        };
        use corridor_proto::type_url;
        use prost::Message;

        let dubbo = MESH.replace("- { name: db, port: 5432 }", "- { name: tcp-dubbo-api, port: 20880 }")
            .replace("{ name: db, port: 5432 } ]", "{ name: tcp-dubbo-api, port: 20880 } ]");
        let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - name: alice
    match: [ { method: { exact: sayHello }, headers: { user: { exact: alice } } } ]
    route: [ { destination: { host: reviews, subset: v3 } } ]
    timeout: 2s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "connect-failure,503" }
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: 90 }
    - { destination: { host: reviews, subset: v3 }, weight: 10 }
"#;
        let snap = crate::translate::translate(&store_from_yaml(&format!("{dubbo}---{vs}")), &TranslateOptions::default());
        let name = "reviews.default.svc.cluster.local:20880";
        let rc = RouteConfiguration::decode(&snap.get(type_url::META_ROUTE).unwrap().resources[name].body.value[..]).unwrap();
        assert_eq!(rc.routes.len(), 2, "{rc:?}");
        let first = &rc.routes[0];
        assert_eq!(first.name, "default/reviews/alice");
        let names: Vec<&str> = first.r#match.as_ref().unwrap().metadata.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["method", "user"]);
        let action = first.route.as_ref().unwrap();
        assert_eq!(action.cluster_specifier, Some(ClusterSpecifier::Cluster("outbound|20880|v3|reviews.default.svc.cluster.local".into())));
        assert_eq!(action.timeout.as_ref().unwrap().seconds, 2);
        let retry = action.retry_policy.as_ref().unwrap();
        assert_eq!((retry.num_retries.as_ref().unwrap().value, retry.retriable_status_codes.as_slice()), (3, &[503][..]));
        assert_eq!(retry.retry_on, "connect-failure,retriable-status-codes");
        let Some(ClusterSpecifier::WeightedClusters(w)) = &rc.routes[1].route.as_ref().unwrap().cluster_specifier else {
            panic!("not weighted: {:?}", rc.routes[1])
        };
        assert_eq!(w.clusters.iter().map(|c| c.weight.as_ref().unwrap().value).collect::<Vec<_>>(), [90, 10]);
        assert!(rc.routes[1].r#match.as_ref().unwrap().metadata.is_empty());
    }

    const ROUTER: &str = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  routes:
  - name: split
    match: { attributes: { method: { exact: sayHello }, tenant: {} } }
    route:
    - { destination: { host: reviews, subset: v1 }, weight: 80 }
    - { destination: { host: reviews, subset: v3 }, weight: 20 }
    requestMutation: [ { key: from, value: corridor } ]
  localRateLimit:
    tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillInterval: 1s }
"#;

    /// The test mesh with a Dubbo port on reviews: a MetaRouter's routes need one.
    fn dubbo_mesh() -> String {
        MESH.replace("- { name: db, port: 5432 }", "- { name: tcp-dubbo-api, port: 20880 }")
    }

    fn verdict(yaml: &str) -> Result<(), String> {
        let store = store_from_yaml(&format!("{}---{yaml}", dubbo_mesh()));
        let opts = TranslateOptions::default();
        let key = ObjectKey::new("default", "reviews");
        Validator::new(&store, &opts).meta_router(&key, &store.meta_routers[&key])
    }

    /// A Dubbo port gets a MetaProtocolProxy listener and a route configuration made from
    /// the MetaRouter; without a MetaRouter, one default route.
    #[test]
    fn dubbo_ports_get_meta_protocol_listeners_and_routes() {
        use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::{
            RouteConfiguration, route_action::ClusterSpecifier,
        };
        use corridor_proto::aeraki::meta_protocol_proxy::v1alpha::MetaProtocolProxy;
        use corridor_proto::envoy::config::listener::v3::{Listener, filter::ConfigType};
        use corridor_proto::type_url;
        use prost::Message;

        let dubbo = MESH.replace("- { name: db, port: 5432 }", "- { name: tcp-dubbo-api, port: 20880 }")
            .replace("{ name: db, port: 5432 } ]", "{ name: tcp-dubbo-api, port: 20880 } ]");
        let opts = TranslateOptions::default();
        let decode = |s: &crate::xds::snapshot::Snapshot, url: &str, name: &str| {
            s.get(url).unwrap().resources[name].body.value.clone()
        };
        let name = "reviews.default.svc.cluster.local:20880";

        let with_router = crate::translate::translate(&store_from_yaml(&format!("{dubbo}---{ROUTER}")), &opts);
        let l = Listener::decode(&decode(&with_router, type_url::LISTENER, name)[..]).unwrap();
        let f = &l.filter_chains[0].filters[0];
        assert_eq!(f.name, "aeraki.meta_protocol_proxy");
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else { panic!("no typed config") };
        let proxy = MetaProtocolProxy::decode(&any.value[..]).unwrap();
        assert_eq!(proxy.protocol.unwrap().codec.unwrap().name, "aeraki.meta_protocol.codec.dubbo");
        let rc = RouteConfiguration::decode(&decode(&with_router, type_url::META_ROUTE, name)[..]).unwrap();
        let route = &rc.routes[0];
        assert_eq!(route.name, "split");
        let names: Vec<&str> = route.r#match.as_ref().unwrap().metadata.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["method", "tenant"]);
        let Some(ClusterSpecifier::WeightedClusters(w)) = &route.route.as_ref().unwrap().cluster_specifier else {
            panic!("not weighted: {route:?}")
        };
        let split: Vec<(&str, u32)> = w.clusters.iter().map(|c| (c.name.as_str(), c.weight.as_ref().unwrap().value)).collect();
        assert_eq!(
            split,
            [
                ("outbound|20880|v1|reviews.default.svc.cluster.local", 80),
                ("outbound|20880|v3|reviews.default.svc.cluster.local", 20)
            ]
        );
        assert_eq!(route.request_mutation[0].key, "from");
        // The subset clusters exist.
        assert!(with_router.get(type_url::CLUSTER).unwrap().resources.contains_key("outbound|20880|v3|reviews.default.svc.cluster.local"));

        // The MetaRouter's local rate limit becomes a filter before the router.
        let filters: Vec<&str> = proxy.meta_protocol_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(filters, [super::super::ratelimit::LOCAL_RATELIMIT_FILTER, super::super::filters::META_ROUTER_FILTER]);
        let limit = corridor_proto::aeraki::meta_protocol_proxy::filters::local_ratelimit::v1alpha::LocalRateLimit::decode(
            &proxy.meta_protocol_filters[0].config.as_ref().unwrap().value[..],
        )
        .unwrap();
        let b = limit.token_bucket.unwrap();
        assert_eq!((b.max_tokens, b.tokens_per_fill.unwrap().value, b.fill_interval.unwrap().seconds), (10, 5, 1));

        let plain = crate::translate::translate(&store_from_yaml(&dubbo), &opts);
        let rc = RouteConfiguration::decode(&decode(&plain, type_url::META_ROUTE, name)[..]).unwrap();
        assert_eq!(rc.routes.len(), 1);
        assert_eq!(
            rc.routes[0].route.as_ref().unwrap().cluster_specifier,
            Some(ClusterSpecifier::Cluster("outbound|20880||reviews.default.svc.cluster.local".into()))
        );
    }

    #[test]
    fn a_good_meta_router_is_accepted() {
        verdict(ROUTER).unwrap();
    }

    #[test]
    fn each_mistake_is_named_by_its_field() {
        for (bad, field) in [
            (ROUTER.replace("weight: 20", "weight: 30"), "spec.routes[0].route weights add up to 110"),
            (ROUTER.replace("subset: v3", "subset: v9"), "spec.routes[0].route[1].destination.subset"),
            (ROUTER.replace("{ host: reviews, subset: v1 }", "{ host: nowhere }"), "spec.routes[0].route[0].destination.host"),
            (ROUTER.replace("{ exact: sayHello }", "{ regex: \"(open\" }"), "spec.routes[0].match.attributes.method.regex"),
            (ROUTER.replace("{ exact: sayHello }", "{ exact: a, prefix: b }"), "spec.routes[0].match.attributes.method"),
            (ROUTER.replace("maxTokens: 10", "maxTokens: 0"), "spec.localRateLimit.tokenBucket.maxTokens"),
            (ROUTER.replace("fillInterval: 1s", "fillInterval: soon"), "spec.localRateLimit.tokenBucket.fillInterval"),
            (ROUTER.replace("[reviews.default.svc.cluster.local]", "[]"), "spec.hosts is empty"),
        ] {
            let reason = verdict(&bad).unwrap_err();
            assert!(reason.starts_with(field), "{reason:?} should start with {field:?}");
        }
    }

    #[test]
    fn a_rejected_meta_router_keeps_its_last_good_version() {
        let opts = TranslateOptions::default();
        let mut admission = Admission::default();
        let origin = |_: &ObjectRef| "test.yaml".to_string();
        let mut good = store_from_yaml(&format!("{}---{ROUTER}", dubbo_mesh()));
        admission.admit(&mut good, &opts, &origin);
        let key = ObjectKey::new("default", "reviews");
        let kept = good.meta_routers[&key].clone();

        let mut bad = store_from_yaml(&format!("{}---{}", dubbo_mesh(), ROUTER.replace("weight: 20", "weight: 30")));
        admission.admit(&mut bad, &opts, &origin);
        assert_eq!(bad.meta_routers[&key], kept);
        assert_eq!(admission.rejections().len(), 1);
    }
}
