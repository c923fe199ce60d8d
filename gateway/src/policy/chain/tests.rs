//! The chain on the HTTP path, end to end in one process: a listener whose HCM carries
//! Envoy's local rate limit refuses requests beyond its bucket with 429 (gRPC:
//! RESOURCE_EXHAUSTED), before the router.

use std::time::Duration;

use bytes::Bytes;
use corridor_proto::envoy::config::core::v3::RuntimeFractionalPercent;
use corridor_proto::envoy::config::listener::v3 as lis;
use corridor_proto::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use corridor_proto::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use corridor_proto::envoy::r#type::v3::{FractionalPercent, TokenBucket};
use corridor_proto::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use corridor_proto::pack_any;
use corridor_proto::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;

use crate::app::{Config, build};
use crate::model::listener::{HTTP_LOCAL_RATELIMIT_FILTER, HTTP_ROUTER_FILTER};
use crate::testing::*;

fn all() -> Option<RuntimeFractionalPercent> {
    Some(RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: 0,
        }),
        runtime_key: String::new(),
    })
}

/// An HTTP listener whose HCM runs a local rate limit of `max` tokens (refilled once an
/// hour: never, within the test), then the router.
fn limited_listener(max: u32) -> lis::Listener {
    limited_listener_with(max, |_| {})
}

/// `limited_listener` with the filter's configuration changed by `edit`.
fn limited_listener_with(max: u32, edit: impl FnOnce(&mut LocalRateLimit)) -> lis::Listener {
    let mut l = http_listener("svc", "127.0.0.1:0".parse().unwrap(), "svc");
    let Some(lis::filter::ConfigType::TypedConfig(any)) =
        &l.filter_chains[0].filters[0].config_type
    else {
        unreachable!("http_listener packs an HCM");
    };
    let mut manager = hcm::HttpConnectionManager::decode(&any.value[..]).unwrap();
    let limit = LocalRateLimit {
        stat_prefix: "svc".into(),
        token_bucket: Some(TokenBucket {
            max_tokens: max,
            tokens_per_fill: Some(UInt32Value { value: 1 }),
            fill_interval: Some(PbDuration {
                seconds: 3600,
                nanos: 0,
            }),
        }),
        filter_enabled: all(),
        filter_enforced: all(),
        ..Default::default()
    };
    let mut limit = limit;
    edit(&mut limit);
    let filter = |name: &str, config: Any| hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    manager.http_filters = vec![
        filter(HTTP_LOCAL_RATELIMIT_FILTER, pack_any(limit)),
        filter(
            HTTP_ROUTER_FILTER,
            pack_any(
                corridor_proto::envoy::extensions::filters::http::router::v3::Router::default(),
            ),
        ),
    ];
    l.filter_chains[0].filters[0].config_type =
        Some(lis::filter::ConfigType::TypedConfig(pack_any(manager)));
    l
}

#[tokio::test]
async fn an_http_local_rate_limit_refuses_beyond_its_bucket_with_429() {
    let be = text_backend(200, "ok").await;
    let mut ads = TestAds::start().await;
    let mut c = Config::new(ads.addr.to_string());
    c.admin_address = "127.0.0.1:0".parse().unwrap();
    c.probe_address = Some("127.0.0.1:0".parse().unwrap());
    c.drain_timeout = Duration::from_secs(5);
    let gw = build(c).await.unwrap();
    ads.request_where(CLUSTER, |_| true).await;
    ads.push(
        LISTENER,
        vec![resource("svc", "1", limited_listener(2))],
        vec![],
    );
    ads.push(
        CLUSTER,
        vec![resource("c", "1", cluster("c", false))],
        vec![],
    );
    let routes = route_config("svc", vec![prefix_route("all", "/", "c")]);
    ads.push(ROUTE, vec![resource("svc", "1", routes)], vec![]);
    ads.push(
        ENDPOINT,
        vec![resource("c", "1", assignment("c", &[(be, true)]))],
        vec![],
    );
    eventually(|| async { gw.ready().is_ready().then_some(()) }).await;
    let addr = gw.listeners()[0].1;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |grpc: bool| {
        let mut req = Request::get(format!("http://{addr}/"));
        if grpc {
            req = req.header("content-type", "application/grpc");
        }
        client.request(req.body(Full::default()).unwrap())
    };

    for _ in 0..2 {
        let resp = get(false).await.unwrap();
        assert_eq!(resp.status(), 200, "within the bucket");
    }
    let refused = get(false).await.unwrap();
    assert_eq!(refused.status(), 429);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("local rate limit"),
        "{body:?}"
    );
    let grpc = get(true).await.unwrap();
    assert_eq!(grpc.status(), 200, "gRPC refusals are trailers-only");
    assert_eq!(grpc.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_virtual_hosts_rate_limits_pick_the_filters_descriptor_bucket() {
    use corridor_proto::envoy::config::route::v3::RateLimit;
    use corridor_proto::envoy::config::route::v3::rate_limit::Action;
    use corridor_proto::envoy::config::route::v3::rate_limit::action::{
        ActionSpecifier, HeaderValueMatch,
    };
    use corridor_proto::envoy::config::route::v3::{HeaderMatcher, header_matcher};
    use corridor_proto::envoy::extensions::common::ratelimit::v3::{
        LocalRateLimitDescriptor, rate_limit_descriptor::Entry,
    };
    use corridor_proto::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};

    let be = text_backend(200, "ok").await;
    let mut ads = TestAds::start().await;
    let mut c = Config::new(ads.addr.to_string());
    c.admin_address = "127.0.0.1:0".parse().unwrap();
    c.probe_address = Some("127.0.0.1:0".parse().unwrap());
    c.drain_timeout = Duration::from_secs(5);
    let gw = build(c).await.unwrap();
    ads.request_where(CLUSTER, |_| true).await;
    // The filter: a default bucket of 5, and a bucket of 1 for the descriptor
    // `header_match=alice`; no rules of its own.
    let listener = limited_listener_with(5, |limit| {
        limit.descriptors = vec![LocalRateLimitDescriptor {
            entries: vec![Entry {
                key: "header_match".into(),
                value: "alice".into(),
            }],
            token_bucket: Some(TokenBucket {
                max_tokens: 1,
                tokens_per_fill: Some(UInt32Value { value: 1 }),
                fill_interval: Some(PbDuration {
                    seconds: 3600,
                    nanos: 0,
                }),
            }),
            shadow_mode: false,
        }];
    });
    ads.push(LISTENER, vec![resource("svc", "1", listener)], vec![]);
    ads.push(
        CLUSTER,
        vec![resource("c", "1", cluster("c", false))],
        vec![],
    );
    // The virtual host's rule produces `header_match=alice` for `x-user: alice`.
    let mut routes = route_config("svc", vec![prefix_route("all", "/", "c")]);
    routes.virtual_hosts[0].rate_limits = vec![RateLimit {
        actions: vec![Action {
            action_specifier: Some(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
                descriptor_value: "alice".into(),
                headers: vec![HeaderMatcher {
                    name: "x-user".into(),
                    header_match_specifier: Some(
                        header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                            match_pattern: Some(string_matcher::MatchPattern::Exact(
                                "alice".into(),
                            )),
                            ..Default::default()
                        }),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        }],
        ..Default::default()
    }];
    ads.push(ROUTE, vec![resource("svc", "1", routes)], vec![]);
    ads.push(
        ENDPOINT,
        vec![resource("c", "1", assignment("c", &[(be, true)]))],
        vec![],
    );
    eventually(|| async { gw.ready().is_ready().then_some(()) }).await;
    let addr = gw.listeners()[0].1;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |user: &str| {
        let req = Request::get(format!("http://{addr}/")).header("x-user", user);
        client.request(req.body(Full::default()).unwrap())
    };
    assert_eq!(get("alice").await.unwrap().status(), 200);
    assert_eq!(
        get("alice").await.unwrap().status(),
        429,
        "alice's bucket of one"
    );
    for _ in 0..5 {
        assert_eq!(
            get("bob").await.unwrap().status(),
            200,
            "the default bucket"
        );
    }
    assert_eq!(get("bob").await.unwrap().status(), 429);
    gw.shutdown().await;
}
