//! One refusal, four protocols: the table row and both renderers agree.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use http::HeaderValue;
use http_body_util::BodyExt;

use super::*;
use crate::cluster::Snapshot;
use crate::codec::dubbo::DubboCodec;
use crate::codec::thrift::ThriftCodec;
use crate::codec::{Codec, MessageType, Metadata, ResponseStatus};
use crate::model::listener::ServiceLabels;
use crate::proxy::exchange::Exchange;
use crate::proxy::local_reply::{ResponseFlags, reply};
use crate::proxy::{HttpListener, Shared};
use crate::telemetry::metrics::{Metrics, ServiceMetrics};

fn exchange(grpc: bool) -> Exchange {
    let metrics = Metrics::new();
    let shared = Arc::new(Shared {
        snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
        metrics: metrics.clone(),
        max_rpc_message_bytes: 1024,
        rls: Default::default(),
        tracer: Default::default(),
        max_redis_request_bytes: 1024,
        zone: Default::default(),
    });
    let listener = Arc::new(HttpListener {
        name: "l".into(),
        route_config: "r".into(),
        metrics: ServiceMetrics::new(metrics, &ServiceLabels::default()),
        shared: shared.clone(),
        chain: Default::default(),
    });
    let (parts, ()) = http::Request::post("/pkg.Svc/Call")
        .body(())
        .unwrap()
        .into_parts();
    let snapshot = shared.snapshot.load_full();
    let id = HeaderValue::from_static("id");
    Exchange::new(listener, snapshot, Instant::now(), &parts, id, grpc)
}

fn request(attributes: Vec<(String, String)>, dialect: u32) -> Metadata {
    Metadata {
        message_type: MessageType::Request,
        request_id: 7,
        response_status: ResponseStatus::Ok,
        attributes,
        dialect,
    }
}

#[tokio::test]
async fn one_reject_renders_in_http_grpc_dubbo_and_thrift() {
    let reject = Reject::new(RejectKind::RateLimited, "over the limit");

    let http = reply(exchange(false), &reject);
    assert_eq!(http.status(), 429);
    let body = http.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"over the limit");

    let grpc = reply(exchange(true), &reject);
    assert_eq!(
        grpc.status(),
        200,
        "gRPC errors are trailers-only with HTTP 200"
    );
    assert_eq!(grpc.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    assert_eq!(grpc.headers()["grpc-message"], "over the limit");

    // Dubbo: the response header's status byte (offset 3) is 100, the load-shedding status.
    let dubbo = DubboCodec::default();
    let call = request(vec![("method".into(), "sayHello".into())], 2);
    let bytes = dubbo.local_reply(&call, &reject);
    assert_eq!(bytes[3], 100);
    let frame = dubbo
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    assert_eq!(frame.metadata.request_id, 7);
    assert_eq!(frame.metadata.response_status, ResponseStatus::Error);
    assert!(bytes.windows(14).any(|w| w == b"over the limit"));

    // Thrift (framed binary): a TApplicationException of type INTERNAL_ERROR (6).
    let thrift = ThriftCodec::default();
    let call = request(vec![("method".into(), "add".into())], 1);
    let bytes = thrift.local_reply(&call, &reject);
    let frame = thrift
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    assert_eq!(frame.metadata.response_status, ResponseStatus::Error);
    assert_eq!(frame.metadata.get("method"), Some("add"));
    assert!(
        bytes.windows(7).any(|w| w == [8, 0, 2, 0, 0, 0, 6]),
        "type field"
    );
    assert!(bytes.windows(14).any(|w| w == b"over the limit"));
}

#[test]
fn the_table_gives_envoys_status_code_and_flag() {
    let row = |k: RejectKind| {
        let o = k.outline();
        (o.http, o.grpc, o.flag)
    };
    assert_eq!(row(RejectKind::NoRoute), (404, 12, ResponseFlags::NR));
    assert_eq!(row(RejectKind::Timeout), (504, 4, ResponseFlags::UT));
    assert_eq!(row(RejectKind::Overflow), (503, 14, ResponseFlags::UO));
    assert_eq!(row(RejectKind::Unauthorized), (403, 7, 0));
    assert_eq!(
        row(RejectKind::RateLimitServiceError),
        (500, 13, ResponseFlags::RLSE)
    );
    let abort = |http, grpc| RejectKind::FaultAbort { http, grpc };
    assert_eq!(row(abort(503, None)), (503, 14, ResponseFlags::FI));
    assert_eq!(row(abort(403, None)).1, 7, "403 maps to PERMISSION_DENIED");
    assert_eq!(row(abort(500, Some(9))).1, 9, "a named gRPC status wins");
}

#[test]
fn a_default_message_is_the_kinds_text_and_borrowed() {
    let r = Reject::of(RejectKind::NoHealthyUpstream);
    assert_eq!(r.message, "no healthy upstream");
    assert!(matches!(r.message, Cow::Borrowed(_)));
}
