//! Descriptors from both configuration forms, and every outcome of a call to a real
//! (in-process, tonic) rate limit service: under and over the limit, a dead service
//! with either failure mode, and one channel kept until the endpoints change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteMatch;
use corridor_proto::aeraki::meta_protocol_proxy::filters::ratelimit::v1alpha::Descriptor as AerakiDescriptor;
use corridor_proto::envoy::config::core::v3::{GrpcService, grpc_service};
use corridor_proto::envoy::config::route::v3::rate_limit::Action as PbAction;
use corridor_proto::envoy::config::route::v3::rate_limit::action::{
    ActionSpecifier, GenericKey, HeaderValueMatch, RemoteAddress, RequestHeaders,
};
use corridor_proto::envoy::config::route::v3::{
    HeaderMatcher as PbHeaderMatcher, RateLimit as PbRule, header_matcher::HeaderMatchSpecifier,
};
use corridor_proto::envoy::service::ratelimit::v3::RateLimitResponse;
use corridor_proto::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use corridor_proto::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use corridor_proto::envoy::r#type::v3::HttpStatus;
use corridor_proto::google::protobuf::{BoolValue, Duration as PbDuration};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use super::*;
use crate::codec::{MessageType, Metadata, ResponseStatus};
use crate::model::cluster::{Cluster, Endpoints};
use crate::policy::request::Source;
use crate::telemetry::metrics::RequestProtocol;
use crate::testing::{assignment, cluster};

// === descriptors ===

fn exact(name: &str, value: &str) -> PbHeaderMatcher {
    PbHeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(value.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn call(attrs: &[(&str, &str)]) -> Metadata {
    Metadata {
        message_type: MessageType::Request,
        request_id: 1,
        response_status: ResponseStatus::Ok,
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        dialect: 0,
    }
}

fn source() -> Source {
    Source::new("10.1.2.3:4567".parse().unwrap())
}

fn aeraki(cluster: &str, deny: bool, timeout_ms: i32) -> AerakiRateLimit {
    AerakiRateLimit {
        r#match: Some(RouteMatch {
            metadata: vec![exact("method", "sayHello")],
        }),
        domain: "mesh".into(),
        timeout: Some(PbDuration {
            seconds: 0,
            nanos: timeout_ms * 1_000_000,
        }),
        failure_mode_deny: deny,
        rate_limit_service: Some(service(cluster)),
        descriptors: vec![
            AerakiDescriptor {
                property: "method".into(),
                descriptor_key: "method".into(),
            },
            AerakiDescriptor {
                property: "user".into(),
                descriptor_key: "who".into(),
            },
        ],
    }
}

fn service(cluster: &str) -> RateLimitServiceConfig {
    RateLimitServiceConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        transport_api_version: ApiVersion::V3 as i32,
    }
}

fn action(a: ActionSpecifier) -> PbAction {
    PbAction {
        action_specifier: Some(a),
    }
}

#[test]
fn an_aeraki_descriptor_reads_attributes_of_the_calls_its_match_selects() {
    let d = AttributeDescriptor::new(&aeraki("rls", false, 20)).unwrap();
    assert_eq!(
        d.build(&call(&[("method", "sayHello"), ("user", "alice")])),
        Some(vec![
            ("method".into(), "sayHello".into()),
            ("who".into(), "alice".into())
        ])
    );
    assert_eq!(
        d.build(&call(&[("method", "other"), ("user", "alice")])),
        None,
        "the match selects the call"
    );
    assert_eq!(
        d.build(&call(&[("method", "sayHello")])),
        None,
        "an absent attribute sends no descriptor"
    );
}

#[test]
fn envoy_rules_produce_one_descriptor_each_and_drop_a_rule_whose_action_cannot() {
    let header = |name: &str, key: &str, skip: bool| {
        action(ActionSpecifier::RequestHeaders(RequestHeaders {
            header_name: name.into(),
            descriptor_key: key.into(),
            skip_if_absent: skip,
        }))
    };
    let rules = [
        PbRule {
            actions: vec![
                action(ActionSpecifier::GenericKey(GenericKey {
                    descriptor_value: "api".into(),
                    ..Default::default()
                })),
                header("X-User", "user", false),
                header("x-tenant", "tenant", true),
            ],
            ..Default::default()
        },
        // Needs a header the request lacks: no descriptor.
        PbRule {
            actions: vec![header("x-absent", "a", false)],
            ..Default::default()
        },
        PbRule {
            actions: vec![
                action(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
                    descriptor_value: "not-admin".into(),
                    expect_match: Some(BoolValue { value: false }),
                    headers: vec![exact("x-user", "admin")],
                    ..Default::default()
                })),
                action(ActionSpecifier::RemoteAddress(RemoteAddress::default())),
            ],
            ..Default::default()
        },
    ];
    let rules: Vec<RateLimitRule> = rules
        .iter()
        .map(|r| RateLimitRule::parse(r, false).unwrap())
        .collect();
    let request = call(&[("x-user", "alice")]);
    let src = source();
    let req = Request {
        protocol: RequestProtocol::Http,
        source: &src,
        attrs: &request,
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    };
    assert_eq!(
        descriptor::from_rules(rules.iter(), &req),
        [
            pairs(&[("generic_key", "api"), ("user", "alice")]),
            pairs(&[
                ("header_match", "not-admin"),
                ("remote_address", "10.1.2.3")
            ]),
        ]
    );
}

#[test]
fn settings_take_envoys_defaults_and_refuse_what_the_gateway_cannot_honour() {
    let mut http = EnvoyRateLimit {
        domain: "mesh".into(),
        rate_limit_service: Some(service("rls")),
        ..Default::default()
    };
    let s = RateLimitSettings::from_envoy(&http).unwrap();
    assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    assert_eq!((s.enabled, s.enforced, s.deny_on_error), (1.0, 1.0, 0.0));
    assert!(matches!(s.descriptors, Descriptors::Route { stage: 0 }));

    http.rate_limited_status = Some(HttpStatus { code: 503 });
    assert!(RateLimitSettings::from_envoy(&http).is_err(), "only 429");
    http.rate_limited_status = None;
    http.domain.clear();
    assert!(RateLimitSettings::from_envoy(&http).is_err(), "a domain");

    let mut meta = aeraki("rls", true, 50);
    meta.rate_limit_service = Some(RateLimitServiceConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::GoogleGrpc(Default::default())),
            ..Default::default()
        }),
        transport_api_version: ApiVersion::V3 as i32,
    });
    assert!(
        RateLimitSettings::from_aeraki(&meta).is_err(),
        "envoy_grpc only"
    );
    meta.rate_limit_service = Some(service("rls"));
    meta.descriptors.clear();
    assert!(
        RateLimitSettings::from_aeraki(&meta).is_err(),
        "descriptors"
    );
}

// === calls ===

/// How the test service answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    OverLimit,
    Never,
}

#[derive(Debug)]
struct Service {
    answer: Answer,
    seen: Arc<Mutex<Vec<RateLimitRequest>>>,
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        self.seen.lock().unwrap().push(request.into_inner());
        let code = match self.answer {
            Answer::Ok => Code::Ok,
            Answer::OverLimit => Code::OverLimit,
            Answer::Never => std::future::pending().await,
        };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: code as i32,
            ..Default::default()
        }))
    }
}

/// A running test service: its address, the calls it saw, the connections it accepted.
struct Rls {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<RateLimitRequest>>>,
    connections: Arc<AtomicUsize>,
}

async fn rls(answer: Answer) -> Rls {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let incoming = TcpListenerStream::new(listener).map(move |c| {
        counted.fetch_add(1, Ordering::SeqCst);
        c
    });
    let service = RateLimitServiceServer::new(Service {
        answer,
        seen: seen.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    Rls {
        addr,
        seen,
        connections,
    }
}

/// A snapshot with cluster `rls` on `addrs`.
fn snapshot(addrs: &[SocketAddr]) -> Snapshot {
    let c = Cluster::try_from(&cluster("rls", true)).unwrap();
    let eps: Vec<(SocketAddr, bool)> = addrs.iter().map(|a| (*a, true)).collect();
    let e = Endpoints::try_from(&assignment("rls", &eps)).unwrap();
    Snapshot::build(
        &BTreeMap::new(),
        &BTreeMap::from([("rls".to_string(), Arc::new(c))]),
        &BTreeMap::from([("rls".to_string(), Arc::new(e))]),
        &Snapshot::default(),
    )
}

/// A meta filter (fail closed or open) calling the service at `addrs`.
fn filter(addrs: &[SocketAddr], deny: bool) -> (GlobalRateLimit, Arc<ArcSwap<Snapshot>>) {
    let snap = Arc::new(ArcSwap::from_pointee(snapshot(addrs)));
    let settings = RateLimitSettings::from_aeraki(&aeraki("rls", deny, 50)).unwrap();
    let f = GlobalRateLimit::new(settings, snap.clone(), Arc::default());
    (f, snap)
}

/// The filter's verdict on a `sayHello` call from alice.
async fn verdict(f: &GlobalRateLimit) -> Result<(), Reject> {
    let attrs = call(&[("method", "sayHello"), ("user", "alice")]);
    let src = source();
    let req = Request {
        protocol: RequestProtocol::Dubbo,
        source: &src,
        attrs: &attrs,
    };
    match f.check("l", &req, None) {
        Step::Go => Ok(()),
        Step::Refuse(r) => Err(r),
        Step::Wait(pending) => pending.await,
    }
}

/// An address nothing listens on (bound, then closed).
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn the_service_decides_over_one_kept_connection() {
    let ok = rls(Answer::Ok).await;
    let (f, _) = filter(&[ok.addr], true);
    for _ in 0..20 {
        verdict(&f).await.unwrap();
    }
    assert_eq!(ok.connections.load(Ordering::SeqCst), 1);
    let seen = ok.seen.lock().unwrap();
    assert_eq!(seen.len(), 20);
    assert_eq!(seen[0].domain, "mesh");
    assert_eq!(seen[0].descriptors[0].entries[1].value, "alice");

    let over = rls(Answer::OverLimit).await;
    let (f, _) = filter(&[over.addr], false);
    let refused = verdict(&f).await.unwrap_err();
    assert_eq!(refused.kind, RejectKind::RateLimited);
}

#[tokio::test]
async fn a_dead_service_fails_open_or_closed_as_configured() {
    let hung = rls(Answer::Never).await;
    let refused = closed_port().await;
    for addr in [hung.addr, refused] {
        let (open, _) = filter(&[addr], false);
        verdict(&open).await.unwrap();
        let (closed, _) = filter(&[addr], true);
        let e = verdict(&closed).await.unwrap_err();
        assert_eq!(e.kind, RejectKind::RateLimitServiceError, "{addr}: {e:?}");
    }
    // No cluster at all: decided at once, the same way.
    let (closed, snap) = filter(&[refused], true);
    snap.store(Arc::new(Snapshot::default()));
    let e = verdict(&closed).await.unwrap_err();
    assert_eq!(e.kind, RejectKind::RateLimitServiceError);
}

#[tokio::test]
async fn a_push_keeps_the_channel_until_the_endpoints_change() {
    let first = rls(Answer::Ok).await;
    let (f, snap) = filter(&[first.addr], true);
    verdict(&f).await.unwrap();
    // Same endpoints, new cluster state (a push): the same connection.
    snap.store(Arc::new(snapshot(&[first.addr])));
    verdict(&f).await.unwrap();
    assert_eq!(first.connections.load(Ordering::SeqCst), 1);
    assert_eq!(first.seen.lock().unwrap().len(), 2);
    // New endpoints: a new channel, to them.
    let second = rls(Answer::OverLimit).await;
    snap.store(Arc::new(snapshot(&[second.addr])));
    let e = verdict(&f).await.unwrap_err();
    assert_eq!(e.kind, RejectKind::RateLimited);
    assert_eq!(first.seen.lock().unwrap().len(), 2);
}
