//! Conversion of Envoy resources and its rejections.

use std::net::SocketAddr;

use corridor_proto::envoy::config::cluster::v3 as cl;
use corridor_proto::envoy::config::route::v3 as rt;
use corridor_proto::envoy::r#type::matcher::v3::RegexMatcher;
use corridor_proto::envoy::r#type::v3::Percent;
use corridor_proto::google::protobuf::{Duration as PbDuration, UInt32Value};

use super::ModelError;
use super::cluster::{Cluster, Endpoints, Health, LbPolicy};
use super::listener::{Listener, ListenerKind};
use super::route::{ClusterTarget, RouteConfig, retry_on};
use crate::testing::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn http_listener_converts_with_service_labels() {
    let l =
        Listener::try_from(&http_listener("svc:80", addr("127.100.1.2:9080"), "svc:80")).unwrap();
    assert_eq!(l.address, addr("127.100.1.2:9080"));
    assert_eq!(
        l.kind,
        ListenerKind::Http {
            route_config: "svc:80".into(),
            filters: vec![],
        }
    );
    assert_eq!(l.service.service, "svc.default.svc.cluster.local");
    assert_eq!(l.service.namespace, "default");
}

#[test]
fn listener_rejections_name_the_problem() {
    let mut l = http_listener("x", addr("127.0.0.1:1"), "r");
    l.address = None;
    assert_eq!(
        Listener::try_from(&l),
        Err(ModelError::Missing("address.socket_address"))
    );
    let mut l = http_listener("x", addr("127.0.0.1:1"), "r");
    l.filter_chains[0].filters[0].name = "envoy.filters.network.mongo_proxy".into();
    assert!(matches!(
        Listener::try_from(&l),
        Err(ModelError::Unsupported(_))
    ));
}

#[test]
fn route_with_bad_regex_is_rejected() {
    let mut r = prefix_route("bad", "/", "c");
    r.r#match = Some(rt::RouteMatch {
        path_specifier: Some(rt::route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: "a(".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let err = RouteConfig::try_from(&route_config("rc", vec![r]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"bad\"") && err.contains("does not compile"),
        "{err}"
    );
}

#[test]
fn route_regex_cannot_escape_its_anchors() {
    let mut r = prefix_route("escape", "/", "c");
    r.r#match = Some(rt::RouteMatch {
        path_specifier: Some(rt::route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: "/a)|(/b".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let err = RouteConfig::try_from(&route_config("rc", vec![r]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not compile"), "{err}");
}

#[test]
fn route_without_cluster_or_match_is_rejected() {
    let mut r = prefix_route("x", "/", "c");
    action_mut(&mut r).cluster_specifier = None;
    assert!(
        RouteConfig::try_from(&route_config("rc", vec![r]))
            .unwrap_err()
            .to_string()
            .contains("route.cluster")
    );
    let mut r = prefix_route("x", "/", "c");
    r.r#match = None;
    assert!(
        RouteConfig::try_from(&route_config("rc", vec![r]))
            .unwrap_err()
            .to_string()
            .contains("missing field match")
    );
}

#[test]
fn route_action_timeout_retry_and_rewrites() {
    let mut r = prefix_route("x", "/", "c");
    let a = action_mut(&mut r);
    a.timeout = Some(PbDuration {
        seconds: 2,
        nanos: 0,
    });
    let mut p = retry_policy(
        "connect-failure,5xx,unavailable,retriable-status-codes,some-future-thing",
        3,
    );
    p.per_try_timeout = Some(PbDuration {
        seconds: 0,
        nanos: 500_000_000,
    });
    p.retriable_status_codes = vec![409];
    a.retry_policy = Some(p);
    a.host_rewrite_specifier = Some(rt::route_action::HostRewriteSpecifier::HostRewriteLiteral(
        "new.host".into(),
    ));
    let rc = RouteConfig::try_from(&route_config("rc", vec![r])).unwrap();
    let a = &rc.virtual_hosts[0].routes[0].action;
    assert_eq!(a.policy.timeout, Some(std::time::Duration::from_secs(2)));
    let retry = a.policy.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 3);
    assert_eq!(
        retry.on,
        retry_on::CONNECT_FAILURE
            | retry_on::FIVE_XX
            | retry_on::UNAVAILABLE
            | retry_on::RETRIABLE_STATUS_CODES
    );
    assert_eq!(
        retry.per_try_timeout,
        Some(std::time::Duration::from_millis(500))
    );
    assert_eq!(a.host_rewrite.as_ref().unwrap(), "new.host");
    assert!(matches!(&a.target, ClusterTarget::Single(c) if &**c == "c"));
}

#[test]
fn weighted_clusters_with_zero_total_are_rejected() {
    let mut r = prefix_route("x", "/", "c");
    action_mut(&mut r).cluster_specifier = Some(
        rt::route_action::ClusterSpecifier::WeightedClusters(rt::WeightedCluster {
            clusters: vec![rt::weighted_cluster::ClusterWeight {
                name: "a".into(),
                weight: Some(UInt32Value { value: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    );
    assert!(
        RouteConfig::try_from(&route_config("rc", vec![r]))
            .unwrap_err()
            .to_string()
            .contains("weights sum to 0")
    );
}

#[test]
fn cluster_protocol_lb_and_breakers() {
    let mut c = cluster("c", true);
    c.lb_policy = cl::cluster::LbPolicy::LeastRequest as i32;
    c.circuit_breakers = Some(cl::CircuitBreakers {
        thresholds: vec![cl::circuit_breakers::Thresholds {
            max_requests: Some(UInt32Value { value: 50 }),
            retry_budget: Some(cl::circuit_breakers::thresholds::RetryBudget {
                budget_percent: Some(Percent { value: 25.0 }),
                min_retry_concurrency: Some(UInt32Value { value: 5 }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let m = Cluster::try_from(&c).unwrap();
    assert!(m.http2);
    assert_eq!(m.lb, LbPolicy::LeastRequest);
    assert_eq!(m.max_requests, 50);
    let b = m.retry_budget.unwrap();
    assert_eq!((b.percent, b.min_concurrency), (25.0, 5));
    assert!(!Cluster::try_from(&cluster("h1", false)).unwrap().http2);

    let mut c = cluster("c", false);
    c.lb_policy = cl::cluster::LbPolicy::LoadBalancingPolicyConfig as i32;
    assert!(matches!(
        Cluster::try_from(&c),
        Err(ModelError::Unsupported(_))
    ));
    let mut c = cluster("c", false);
    c.cluster_discovery_type = None;
    assert!(matches!(
        Cluster::try_from(&c),
        Err(ModelError::Unsupported(_))
    ));
}

#[test]
fn endpoints_health() {
    let e = Endpoints::try_from(&assignment(
        "c",
        &[(addr("10.0.0.1:80"), true), (addr("10.0.0.2:80"), false)],
    ))
    .unwrap();
    assert_eq!(e.endpoints.len(), 2);
    assert_eq!(e.endpoints[0].health, Health::Healthy);
    assert_eq!(e.endpoints[1].health, Health::Unhealthy);
    let mut bad = assignment("c", &[(addr("10.0.0.1:80"), true)]);
    bad.endpoints[0].lb_endpoints[0].host_identifier = None;
    assert!(Endpoints::try_from(&bad).is_err());
}

#[test]
fn durations_outside_the_protobuf_range_are_rejected() {
    let huge = PbDuration {
        seconds: i64::MAX,
        nanos: 0,
    };
    assert!(matches!(
        super::duration(&huge, "timeout"),
        Err(ModelError::Invalid {
            field: "timeout",
            ..
        })
    ));
    let bad_nanos = PbDuration {
        seconds: 1,
        nanos: 1_000_000_000,
    };
    assert!(super::duration(&bad_nanos, "timeout").is_err());
    let max = PbDuration {
        seconds: 315_576_000_000,
        nanos: 999_999_999,
    };
    let d = super::duration(&max, "timeout").unwrap();
    // The largest accepted timeout can still be added to a clock reading.
    assert!(std::time::Instant::now().checked_add(d).is_some());
}

#[test]
fn meta_protocol_listener_names_its_codec_and_routes() {
    use super::listener::{CodecKind, META_PROTOCOL_FILTER};
    use corridor_proto::aeraki::meta_protocol_proxy::v1alpha as mp;
    use corridor_proto::envoy::config::listener::v3::filter::ConfigType;

    let proxy = |codec: &str, rds: &str| mp::MetaProtocolProxy {
        stat_prefix: "greeter".into(),
        route_specifier: Some(mp::meta_protocol_proxy::RouteSpecifier::Rds(mp::Rds {
            route_config_name: rds.into(),
            ..Default::default()
        })),
        protocol: Some(mp::ApplicationProtocol {
            name: "x".into(),
            codec: Some(mp::Codec {
                name: codec.into(),
                config: None,
            }),
            multiplexing: true,
        }),
        ..Default::default()
    };
    let listener = |p: mp::MetaProtocolProxy| {
        let mut l = http_listener("greeter:20880", addr("127.100.1.3:20880"), "unused");
        l.filter_chains[0].filters[0].name = META_PROTOCOL_FILTER.into();
        l.filter_chains[0].filters[0].config_type =
            Some(ConfigType::TypedConfig(corridor_proto::pack_any(p)));
        Listener::try_from(&l)
    };
    let l = listener(proxy("aeraki.meta_protocol.codec.dubbo", "greeter:20880")).unwrap();
    assert_eq!(
        l.kind,
        ListenerKind::Meta {
            route_config: "greeter:20880".into(),
            codec: CodecKind::Dubbo,
            filters: vec![]
        }
    );
    assert_eq!(l.meta_route_config(), Some("greeter:20880"));
    assert_eq!(l.route_config(), None);
    let t = listener(proxy("aeraki.meta_protocol.codec.thrift", "t")).unwrap();
    assert!(matches!(
        t.kind,
        ListenerKind::Meta {
            codec: CodecKind::Thrift,
            ..
        }
    ));
    assert!(matches!(
        listener(proxy("aeraki.meta_protocol.codec.trpc", "t")),
        Err(ModelError::Unsupported(_))
    ));
    assert!(matches!(
        listener(proxy("aeraki.meta_protocol.codec.dubbo", "")),
        Err(ModelError::Missing(_))
    ));
}

/// An HTTP listener whose HCM lists `filters` (name, optional, disabled).
fn http_listener_with(filters: &[(&str, bool, bool)]) -> Result<Listener, ModelError> {
    use corridor_proto::envoy::config::listener::v3::filter::ConfigType;
    use corridor_proto::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
    use prost::Message;
    let mut l = http_listener("svc:80", addr("127.100.1.2:9080"), "svc:80");
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        unreachable!("http_listener packs an HCM");
    };
    let mut manager = hcm::HttpConnectionManager::decode(&any.value[..]).unwrap();
    manager.http_filters = filters
        .iter()
        .map(|(name, optional, disabled)| hcm::HttpFilter {
            name: (*name).into(),
            is_optional: *optional,
            disabled: *disabled,
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(
                corridor_proto::pack_any(
                    corridor_proto::envoy::extensions::filters::http::router::v3::Router::default(),
                ),
            )),
        })
        .collect();
    l.filter_chains[0].filters[0].config_type =
        Some(ConfigType::TypedConfig(corridor_proto::pack_any(manager)));
    Listener::try_from(&l)
}

#[test]
fn an_http_listener_with_an_unknown_required_filter_is_refused_naming_it() {
    let router = "envoy.filters.http.router";
    assert!(http_listener_with(&[(router, false, false)]).is_ok());
    let rbac = [
        ("envoy.filters.http.ext_authz", false, false),
        (router, false, false),
    ];
    let e = http_listener_with(&rbac).unwrap_err();
    assert!(
        e.to_string().contains("envoy.filters.http.ext_authz"),
        "the NACK names the filter: {e}"
    );
    let l = http_listener_with(&[
        ("envoy.filters.http.ext_authz", true, false),
        (router, false, false),
    ])
    .unwrap();
    assert!(
        matches!(&l.kind, ListenerKind::Http { filters, .. } if filters.is_empty()),
        "an optional filter the gateway lacks is skipped"
    );
    // Disabled by default means enabled per route, which the gateway cannot honour yet.
    let disabled = [
        ("envoy.filters.http.ext_authz", false, true),
        (router, false, false),
    ];
    assert!(http_listener_with(&disabled).is_err());
}
