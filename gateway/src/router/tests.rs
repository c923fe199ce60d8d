use std::collections::HashMap;

use corridor_proto::envoy::config::route::v3 as rt;
use corridor_proto::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use corridor_proto::google::protobuf::{BoolValue, UInt32Value};
use http::{HeaderMap, Method};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::model::route::RouteConfig;

fn route(name: &str, m: rt::RouteMatch) -> rt::Route {
    rt::Route {
        name: name.into(),
        r#match: Some(m),
        action: Some(rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(format!(
                "c-{name}"
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn path(p: rt::route_match::PathSpecifier) -> rt::RouteMatch {
    rt::RouteMatch {
        path_specifier: Some(p),
        ..Default::default()
    }
}

fn prefix(p: &str) -> rt::RouteMatch {
    path(rt::route_match::PathSpecifier::Prefix(p.into()))
}

fn sm(p: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    }
}

fn header(
    name: &str,
    spec: rt::header_matcher::HeaderMatchSpecifier,
    invert: bool,
) -> rt::HeaderMatcher {
    rt::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    }
}

fn config(routes: Vec<rt::Route>) -> RouteConfig {
    config_hosts(vec![("vh", vec!["*"], routes)])
}

fn config_hosts(hosts: Vec<(&str, Vec<&str>, Vec<rt::Route>)>) -> RouteConfig {
    let rc = rt::RouteConfiguration {
        name: "rc".into(),
        virtual_hosts: hosts
            .into_iter()
            .map(|(n, d, routes)| rt::VirtualHost {
                name: n.into(),
                domains: d.into_iter().map(String::from).collect(),
                routes,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    RouteConfig::try_from(&rc).unwrap()
}

struct Req {
    method: Method,
    authority: &'static str,
    pq: &'static str,
    headers: HeaderMap,
}

impl Req {
    fn get(pq: &'static str) -> Req {
        Req {
            method: Method::GET,
            authority: "svc:80",
            pq,
            headers: HeaderMap::new(),
        }
    }
    fn header(mut self, k: &'static str, v: &'static str) -> Req {
        self.headers.append(k, v.parse().unwrap());
        self
    }
}

fn pick<'a>(rc: &'a RouteConfig, r: &Req) -> Option<&'a str> {
    let (path, query) = r.pq.split_once('?').unwrap_or((r.pq, ""));
    let view = RequestView {
        method: &r.method,
        authority: r.authority,
        path,
        query,
        path_and_query: r.pq,
        headers: &r.headers,
    };
    select(rc, &view).map(|r| &*r.name)
}

#[test]
fn first_match_wins_in_order() {
    let rc = config(vec![
        route(
            "exact",
            path(rt::route_match::PathSpecifier::Path("/a".into())),
        ),
        route("prefix", prefix("/a")),
        route(
            "regex",
            path(rt::route_match::PathSpecifier::SafeRegex(RegexMatcher {
                regex: "/r/[0-9]+".into(),
                ..Default::default()
            })),
        ),
        route("default", prefix("/")),
    ]);
    assert_eq!(pick(&rc, &Req::get("/a")), Some("exact"));
    assert_eq!(
        pick(&rc, &Req::get("/a?x=1")),
        Some("exact"),
        "query is not part of the path"
    );
    assert_eq!(pick(&rc, &Req::get("/ab")), Some("prefix"));
    assert_eq!(pick(&rc, &Req::get("/r/42")), Some("regex"));
    assert_eq!(
        pick(&rc, &Req::get("/r/42x")),
        Some("default"),
        "regex is a full match"
    );
}

#[test]
fn case_insensitive_paths() {
    let mut m = prefix("/API");
    m.case_sensitive = Some(BoolValue { value: false });
    let rc = config(vec![route("api", m)]);
    assert_eq!(pick(&rc, &Req::get("/api/x")), Some("api"));
    let rc = config(vec![route("api", prefix("/API"))]);
    assert_eq!(pick(&rc, &Req::get("/api/x")), None);
}

#[test]
fn header_matchers_including_pseudo_headers() {
    use rt::header_matcher::HeaderMatchSpecifier as H;
    let with = |headers: Vec<rt::HeaderMatcher>| rt::RouteMatch {
        headers,
        ..prefix("/")
    };
    let rc = config(vec![
        route(
            "post",
            with(vec![header(
                ":method",
                H::StringMatch(sm(MatchPattern::Exact("POST".into()))),
                false,
            )]),
        ),
        route(
            "canary",
            with(vec![header(
                "x-user",
                H::StringMatch(sm(MatchPattern::Suffix("@test".into()))),
                false,
            )]),
        ),
        route(
            "no-debug",
            with(vec![header("x-debug", H::PresentMatch(true), true)]),
        ),
        route("rest", prefix("/")),
    ]);
    let mut post = Req::get("/");
    post.method = Method::POST;
    assert_eq!(pick(&rc, &post), Some("post"));
    assert_eq!(
        pick(&rc, &Req::get("/").header("x-user", "jason@test")),
        Some("canary")
    );
    assert_eq!(pick(&rc, &Req::get("/")), Some("no-debug"));
    assert_eq!(
        pick(&rc, &Req::get("/").header("x-debug", "1")),
        Some("rest")
    );

    let rc = config(vec![
        route(
            "auth",
            with(vec![header(
                ":authority",
                H::StringMatch(sm(MatchPattern::Prefix("svc".into()))),
                false,
            )]),
        ),
        route(
            "re",
            with(vec![header(
                "x-v",
                H::StringMatch(sm(MatchPattern::SafeRegex(RegexMatcher {
                    regex: "v[12]".into(),
                    ..Default::default()
                }))),
                false,
            )]),
        ),
    ]);
    assert_eq!(pick(&rc, &Req::get("/")), Some("auth"));
    let mut other = Req::get("/").header("x-v", "v2");
    other.authority = "other";
    assert_eq!(pick(&rc, &other), Some("re"));
    let mut other = Req::get("/").header("x-v", "v22");
    other.authority = "other";
    assert_eq!(pick(&rc, &other), None);
}

#[test]
fn query_parameter_matchers() {
    let m = rt::RouteMatch {
        query_parameters: vec![
            rt::QueryParameterMatcher {
                name: "debug".into(),
                query_parameter_match_specifier: Some(
                    rt::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
                ),
            },
            rt::QueryParameterMatcher {
                name: "v".into(),
                query_parameter_match_specifier: Some(
                    rt::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm(
                        MatchPattern::Exact("2".into()),
                    )),
                ),
            },
        ],
        ..prefix("/")
    };
    let rc = config(vec![route("q", m)]);
    assert_eq!(pick(&rc, &Req::get("/x?debug&v=2")), Some("q"));
    assert_eq!(pick(&rc, &Req::get("/x?v=2")), None);
    assert_eq!(pick(&rc, &Req::get("/x?debug=1&v=3")), None);
}

#[test]
fn virtual_hosts_by_authority() {
    let rc = config_hosts(vec![
        ("any", vec!["*"], vec![route("any", prefix("/"))]),
        (
            "wild",
            vec!["*.example.com"],
            vec![route("wild", prefix("/"))],
        ),
        (
            "exact",
            vec!["api.example.com"],
            vec![route("exact", prefix("/"))],
        ),
    ]);
    let mut r = Req::get("/");
    r.authority = "api.example.com:8080";
    assert_eq!(pick(&rc, &r), Some("exact"));
    r.authority = "www.example.com";
    assert_eq!(pick(&rc, &r), Some("wild"));
    r.authority = "elsewhere";
    assert_eq!(pick(&rc, &r), Some("any"));
}

#[test]
fn weighted_pick_follows_the_weights() {
    let mut r = route("w", prefix("/"));
    if let Some(rt::route::Action::Route(a)) = &mut r.action {
        a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::WeightedClusters(
            rt::WeightedCluster {
                clusters: vec![
                    rt::weighted_cluster::ClusterWeight {
                        name: "v1".into(),
                        weight: Some(UInt32Value { value: 90 }),
                        ..Default::default()
                    },
                    rt::weighted_cluster::ClusterWeight {
                        name: "v2".into(),
                        weight: Some(UInt32Value { value: 10 }),
                        ..Default::default()
                    },
                    rt::weighted_cluster::ClusterWeight {
                        name: "off".into(),
                        weight: Some(UInt32Value { value: 0 }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ));
    }
    let rc = config(vec![r]);
    let target = &rc.virtual_hosts[0].routes[0].action.target;
    let mut rng = StdRng::seed_from_u64(42);
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..10_000 {
        *counts
            .entry(pick_cluster(target, &mut rng).to_string())
            .or_default() += 1;
    }
    let v2 = counts.get("v2").copied().unwrap_or(0);
    assert!((800..1200).contains(&v2), "{counts:?}");
    assert!(!counts.contains_key("off"));
    assert_eq!(rc.clusters.len(), 2);
}

// === MetaProtocol routes ===

mod meta {
    use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha as mp;
    use corridor_proto::envoy::config::core::v3::RuntimeFractionalPercent;
    use corridor_proto::envoy::config::route::v3 as rt;
    use corridor_proto::envoy::r#type::v3::FractionalPercent;
    use corridor_proto::google::protobuf::UInt32Value;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use crate::codec::{MessageType, Metadata, ResponseStatus};
    use crate::model::meta_route::{MetaRouteConfig, Mirror};
    use crate::model::route::ClusterTarget;
    use crate::router::{pick_cluster, select_meta};

    /// `exact_match`, deprecated in Envoy but what Aeraki's control plane sends.
    #[allow(deprecated)]
    fn exact(name: &str, value: &str) -> rt::HeaderMatcher {
        rt::HeaderMatcher {
            name: name.into(),
            header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::ExactMatch(
                value.into(),
            )),
            ..Default::default()
        }
    }

    fn present(name: &str, yes: bool) -> rt::HeaderMatcher {
        rt::HeaderMatcher {
            name: name.into(),
            header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::PresentMatch(
                yes,
            )),
            ..Default::default()
        }
    }

    fn cluster(name: &str) -> Option<mp::RouteAction> {
        Some(mp::RouteAction {
            cluster_specifier: Some(mp::route_action::ClusterSpecifier::Cluster(name.into())),
            ..Default::default()
        })
    }

    fn metadata(attrs: &[(&str, &str)]) -> Metadata {
        Metadata {
            message_type: MessageType::Request,
            request_id: 1,
            response_status: ResponseStatus::Ok,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dialect: 0,
        }
    }

    fn config() -> MetaRouteConfig {
        let split = mp::RouteAction {
            cluster_specifier: Some(mp::route_action::ClusterSpecifier::WeightedClusters(
                rt::WeightedCluster {
                    clusters: vec![
                        rt::weighted_cluster::ClusterWeight {
                            name: "v1".into(),
                            weight: Some(UInt32Value { value: 80 }),
                            ..Default::default()
                        },
                        rt::weighted_cluster::ClusterWeight {
                            name: "v2".into(),
                            weight: Some(UInt32Value { value: 20 }),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            )),
            request_mirror_policies: vec![mp::route_action::RequestMirrorPolicy {
                cluster: "shadow".into(),
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator: 25,
                        denominator: 0,
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let pb = mp::RouteConfiguration {
            name: "greeter:20880".into(),
            routes: vec![
                mp::Route {
                    name: "gold".into(),
                    r#match: Some(mp::RouteMatch {
                        metadata: vec![exact("tier", "Gold"), present("traceId", true)],
                    }),
                    route: cluster("gold"),
                    request_mutation: vec![mp::KeyValue {
                        key: "routed-by".into(),
                        value: "corridor".into(),
                    }],
                    ..Default::default()
                },
                mp::Route {
                    name: "say-hello".into(),
                    r#match: Some(mp::RouteMatch {
                        metadata: vec![exact("method", "sayHello")],
                    }),
                    route: Some(split),
                    ..Default::default()
                },
                mp::Route {
                    name: "default".into(),
                    route: cluster("v1"),
                    ..Default::default()
                },
            ],
        };
        MetaRouteConfig::try_from(&pb).unwrap()
    }

    #[test]
    fn first_route_whose_attributes_all_match_wins() {
        let rc = config();
        assert_eq!(
            rc.clusters.iter().map(|c| &**c).collect::<Vec<_>>(),
            ["gold", "shadow", "v1", "v2"]
        );
        let gold = select_meta(
            &rc,
            &metadata(&[("method", "sayHello"), ("tier", "Gold"), ("traceId", "abc")]),
        )
        .unwrap();
        assert_eq!(&*gold.name, "gold");
        assert_eq!(
            gold.request_mutation,
            vec![("routed-by".to_string(), "corridor".to_string())]
        );
        // Attribute names are exact: `TraceId` is not `traceId`; values are case-sensitive.
        let r = select_meta(
            &rc,
            &metadata(&[("method", "sayHello"), ("tier", "Gold"), ("TraceId", "abc")]),
        )
        .unwrap();
        assert_eq!(&*r.name, "say-hello");
        assert_eq!(
            &*select_meta(&rc, &metadata(&[("method", "sayHello"), ("tier", "gold")]))
                .unwrap()
                .name,
            "say-hello"
        );
        assert_eq!(
            &*select_meta(&rc, &metadata(&[("method", "other")]))
                .unwrap()
                .name,
            "default"
        );
    }

    #[test]
    fn weighted_split_and_mirror_share_come_from_the_resource() {
        let rc = config();
        let r = select_meta(&rc, &metadata(&[("method", "sayHello")])).unwrap();
        assert_eq!(
            r.policy.mirrors,
            vec![Mirror {
                cluster: "shadow".into(),
                fraction: 0.25
            }]
        );
        assert!(matches!(
            r.target,
            ClusterTarget::Weighted { total: 100, .. }
        ));
        let mut rng = StdRng::seed_from_u64(7);
        let v1 = (0..2000)
            .filter(|_| &**pick_cluster(&r.target, &mut rng) == "v1")
            .count();
        assert!(
            (1500..1700).contains(&v1),
            "80/20 split gave {v1}/2000 to v1"
        );
    }

    #[test]
    fn a_route_timeout_comes_from_the_extension_field_and_is_range_checked() {
        use corridor_proto::google::protobuf::Duration as PbDuration;
        let with = |d: PbDuration| mp::RouteConfiguration {
            name: "x".into(),
            routes: vec![mp::Route {
                name: "t".into(),
                route: Some(mp::RouteAction {
                    timeout: Some(d),
                    ..cluster("c").unwrap()
                }),
                ..Default::default()
            }],
        };
        let rc = MetaRouteConfig::try_from(&with(PbDuration {
            seconds: 2,
            nanos: 0,
        }))
        .unwrap();
        assert_eq!(
            rc.routes[0].policy.timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert!(
            MetaRouteConfig::try_from(&with(PbDuration {
                seconds: -1,
                nanos: 0
            }))
            .is_err()
        );
        assert_eq!(config().routes[0].policy.timeout, None);
    }

    #[test]
    fn no_route_matches_when_nothing_does() {
        let pb = mp::RouteConfiguration {
            name: "x".into(),
            routes: vec![mp::Route {
                name: "only".into(),
                r#match: Some(mp::RouteMatch {
                    metadata: vec![exact("method", "a")],
                }),
                route: cluster("c"),
                ..Default::default()
            }],
        };
        let rc = MetaRouteConfig::try_from(&pb).unwrap();
        assert!(select_meta(&rc, &metadata(&[("method", "b")])).is_none());
    }

    #[test]
    fn bad_resources_are_rejected_with_the_route_named() {
        let no_cluster = mp::RouteConfiguration {
            name: "x".into(),
            routes: vec![mp::Route {
                name: "broken".into(),
                route: None,
                ..Default::default()
            }],
        };
        let err = MetaRouteConfig::try_from(&no_cluster)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken"), "{err}");
        let empty_key = mp::RouteConfiguration {
            name: "x".into(),
            routes: vec![mp::Route {
                name: "m".into(),
                route: cluster("c"),
                request_mutation: vec![mp::KeyValue {
                    key: String::new(),
                    value: "v".into(),
                }],
                ..Default::default()
            }],
        };
        assert!(MetaRouteConfig::try_from(&empty_key).is_err());
        assert!(MetaRouteConfig::try_from(&mp::RouteConfiguration::default()).is_err());
    }
}
