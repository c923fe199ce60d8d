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
    Context, PortInfo, ServiceInfo, cluster_name,
    listener::listener_name,
    route::{check_destination, check_string_match},
};
use crate::{
    resources::{
        MetaRouter,
        aeraki::{KeyValue, MetaRouteMatch, TokenBucket},
        duration::parse_duration,
        istio::{Destination, StringMatch},
    },
    store::ObjectKey,
    xds::snapshot::Resource,
};

/// The route configuration of a Dubbo/Thrift listener: the MetaRouter's routes when one
/// targets the service, else one route sending everything to the service's own cluster.
pub(super) fn build(
    ctx: &Context<'_>,
    info: &ServiceInfo,
    port: &PortInfo,
    router: Option<(&ObjectKey, &MetaRouter)>,
) -> Resource {
    let name = listener_name(&info.host, port.number);
    let routes = match router {
        Some((key, mr)) => mr
            .spec
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route {
                name: r.name.clone().unwrap_or_else(|| format!("route-{i}")),
                r#match: Some(RouteMatch {
                    metadata: r.matches.iter().flat_map(|m| &m.attributes).map(|(k, v)| matcher(k, v)).collect(),
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
                    ..Default::default()
                }),
                request_mutation: pairs(&r.request_mutation),
                response_mutation: pairs(&r.response_mutation),
            })
            .collect(),
        None => vec![Route {
            name: "default".into(),
            r#match: Some(RouteMatch::default()),
            route: Some(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(cluster_name(port.number, "", &info.host))),
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    Resource::new(name.clone(), &RouteConfiguration { name, routes })
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
    match destinations {
        [one] => ClusterSpecifier::Cluster(destination_cluster(ctx, key, info, port, &one.destination)),
        many => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|d| ClusterWeight {
                    name: destination_cluster(ctx, key, info, port, &d.destination),
                    weight: Some(UInt32Value { value: d.weight.unwrap_or(0) }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

/// An attribute condition as Envoy's HeaderMatcher; an empty one checks presence.
fn matcher(name: &str, m: &StringMatch) -> HeaderMatcher {
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
    ctx.resolve(host, &key.namespace).ok_or_else(|| {
        format!(
            "spec.hosts[0] {host:?} is not a known service (from namespace {})",
            key.namespace
        )
    })?;
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
        for (j, kv) in route.request_mutation.iter().chain(&route.response_mutation).enumerate() {
            if kv.key.is_empty() {
                return Err(format!("{at}: mutation {j} has an empty key"));
            }
        }
    }
    if let Some(limit) = &mr.spec.local_rate_limit {
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
    }
    if let Some(g) = &mr.spec.global_rate_limit {
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
    }
    Ok(())
}

fn check_match(path: &str, m: &MetaRouteMatch) -> Result<(), String> {
    for (name, s) in &m.attributes {
        check_string_match(&format!("{path}.attributes.{name}"), s, true)?;
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
    use crate::{
        admission::Admission,
        resources::ObjectRef,
        store::{ObjectKey, store_from_yaml},
        translate::{TranslateOptions, Validator, tests::MESH},
    };

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

    fn verdict(yaml: &str) -> Result<(), String> {
        let store = store_from_yaml(&format!("{MESH}---{yaml}"));
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
        let mut good = store_from_yaml(&format!("{MESH}---{ROUTER}"));
        admission.admit(&mut good, &opts, &origin);
        let key = ObjectKey::new("default", "reviews");
        let kept = good.meta_routers[&key].clone();

        let mut bad = store_from_yaml(&format!("{MESH}---{}", ROUTER.replace("weight: 20", "weight: 30")));
        admission.admit(&mut bad, &opts, &origin);
        assert_eq!(bad.meta_routers[&key], kept);
        assert_eq!(admission.rejections().len(), 1);
    }
}
