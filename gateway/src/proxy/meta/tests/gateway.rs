//! The whole MetaProtocol path with the real Thrift codec: a caller's framed binary
//! `add(40, 2)` (bytes from PyPI thrift) is routed on its method by a MetaProtocol route
//! from the snapshot, sent to a Thrift upstream over a shared connection, and answered
//! under the caller's seqid; a method without a route gets a TApplicationException.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha as mp;
use corridor_proto::envoy::config::route::v3 as rt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::PATIENCE;
use crate::cluster::Snapshot;
use crate::codec::thrift::ThriftCodec;
use crate::codec::{Codec, Edit, MessageType, ResponseStatus};
use crate::model::cluster::{Cluster, Endpoints};
use crate::model::listener::ServiceLabels;
use crate::model::meta_route::MetaRouteConfig;
use crate::policy::chain::Chain;
use crate::proxy::Shared;
use crate::proxy::meta::backend::MetaListener;
use crate::proxy::meta::downstream::serve;
use crate::telemetry::metrics::{Metrics, RequestProtocol, ServiceMetrics};
use crate::testing::{assignment, cluster};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `add(1: 40, 2: 2)`, seqid 7, framed binary, as PyPI thrift 0.25 writes it.
const ADD_REQUEST: &str = "0000001e800100010000000361646400000007080001000000280800020000000200";
/// REPLY `add` seqid 7, field 0 = 42 (frame length not included).
const ADD_REPLY: &str = "8001000200000003616464000000070800000000002a00";

/// A Thrift server that answers every call with the captured reply, under the call's
/// seqid; it counts the calls it got.
async fn thrift_upstream() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let codec = ThriftCodec::default();
        let body = hex(ADD_REPLY);
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        let reply = codec
            .decode(&mut BytesMut::from(&framed[..]))
            .unwrap()
            .unwrap();
        let mut buf = BytesMut::new();
        loop {
            while let Some(call) = codec.decode(&mut buf).unwrap() {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut out = BytesMut::new();
                let edit = Edit {
                    request_id: Some(call.metadata.request_id),
                    set: Vec::new(),
                };
                codec.encode(&reply, &edit, &mut out).unwrap();
                s.write_all(&out).await.unwrap();
            }
            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
    });
    (addr, calls)
}

/// A snapshot with route configuration `calc:9090` (method `add` → cluster `calc`) and
/// cluster `calc` on `upstream`.
fn snapshot(upstream: std::net::SocketAddr) -> Snapshot {
    #[allow(deprecated)]
    let add = rt::HeaderMatcher {
        name: "method".into(),
        header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::ExactMatch(
            "add".into(),
        )),
        ..Default::default()
    };
    let rc = mp::RouteConfiguration {
        name: "calc:9090".into(),
        routes: vec![mp::Route {
            name: "add".into(),
            r#match: Some(mp::RouteMatch {
                metadata: vec![add],
            }),
            route: Some(mp::RouteAction {
                cluster_specifier: Some(mp::route_action::ClusterSpecifier::Cluster("calc".into())),
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let clusters = BTreeMap::from([(
        "calc".to_string(),
        Arc::new(Cluster::try_from(&cluster("calc", false)).unwrap()),
    )]);
    let endpoints = BTreeMap::from([(
        "calc".to_string(),
        Arc::new(Endpoints::try_from(&assignment("calc", &[(upstream, true)])).unwrap()),
    )]);
    let mut s = Snapshot::build(
        &BTreeMap::new(),
        &clusters,
        &endpoints,
        &Snapshot::default(),
    );
    s.meta_routes.insert(
        "calc:9090".into(),
        Arc::new(MetaRouteConfig::try_from(&rc).unwrap()),
    );
    s
}

#[tokio::test]
async fn thrift_calls_are_routed_by_method_and_answered_under_their_seqid() {
    let (upstream, calls) = thrift_upstream().await;
    let registry = Metrics::new();
    let labels = ServiceLabels {
        service: "calc.default.svc.cluster.local".into(),
        ..Default::default()
    };
    let listener = Arc::new(MetaListener {
        name: "calc:9090".into(),
        route_config: "calc:9090".into(),
        codec: Arc::new(ThriftCodec::default()),
        shared: Arc::new(Shared {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot(upstream))),
            metrics: registry.clone(),
            max_rpc_message_bytes: crate::codec::DEFAULT_MAX_MESSAGE,
            max_redis_request_bytes: crate::proxy::redis::downstream::DEFAULT_MAX_REQUEST,
            zone: Default::default(),
            rls: Default::default(),
            tracer: Default::default(),
        }),
        metrics: ServiceMetrics::new(registry.clone(), &labels),
        protocol: RequestProtocol::Thrift,
        chain: Chain::default(),
    });
    let (mut client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(
        server,
        super::source(),
        listener.codec.clone(),
        listener.clone(),
    ));

    // The call, then the same call renamed to `sub` (no route for it).
    let add = hex(ADD_REQUEST);
    let mut sub = add.clone();
    sub[12..15].copy_from_slice(b"sub");
    client.write_all(&add).await.unwrap();
    client.write_all(&sub).await.unwrap();

    let codec = ThriftCodec::default();
    let mut buf = BytesMut::new();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        if let Some(f) = codec.decode(&mut buf).unwrap() {
            answers.push(f);
            continue;
        }
        let n = tokio::time::timeout(PATIENCE, client.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {} answers", answers.len());
    }
    // In request order (Thrift), each under the caller's seqid 7.
    let (ok, missing) = (&answers[0].metadata, &answers[1].metadata);
    assert_eq!(
        (ok.message_type, ok.response_status, ok.request_id),
        (MessageType::Response, ResponseStatus::Ok, 7)
    );
    assert_eq!(ok.get("method"), Some("add"));
    // The reply struct: field 0 (i32) = 42, then STOP.
    let tail = &answers[0].bytes[answers[0].bytes.len() - 8..];
    assert_eq!(tail, &[8, 0, 0, 0, 0, 0, 0x2a, 0][..], "field 0 = 42");
    assert_eq!(
        (
            missing.message_type,
            missing.response_status,
            missing.request_id
        ),
        (MessageType::Response, ResponseStatus::Error, 7)
    );
    assert_eq!(missing.get("method"), Some("sub"));
    assert!(String::from_utf8_lossy(&answers[1].bytes).contains("no route for method sub"));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "only the routed call reached the upstream"
    );

    // Istio's request metric, one series per outcome, labelled thrift, with Thrift's own
    // codes: 0 for the reply, UNKNOWN_METHOD (1) for the refused call.
    let text = registry.render();
    let series = |code: &str, flags: &str| {
        text.lines().any(|l| {
            l.starts_with("istio_requests_total{")
                && l.contains("request_protocol=\"thrift\"")
                && l.contains(&format!("response_code=\"{code}\""))
                && l.contains(&format!("response_flags=\"{flags}\""))
                && l.ends_with(" 1")
        })
    };
    assert!(series("0", "-"), "{text}");
    assert!(series("1", "NR"), "{text}");

    // The routed call counted on its cluster and endpoint (circuit breakers and
    // least-request balancing read these), and nothing stays active.
    use std::sync::atomic::Ordering::Relaxed;
    let snap = listener.shared.snapshot.load();
    let calc = &snap.clusters["calc"];
    assert_eq!(
        (
            calc.counters.total_rq.load(Relaxed),
            calc.counters.active_rq.load(Relaxed)
        ),
        (1, 0)
    );
    let endpoint = &calc.healthy[0];
    assert_eq!(
        (
            endpoint.total_rq.load(Relaxed),
            endpoint.active_rq.load(Relaxed)
        ),
        (1, 0)
    );
}
