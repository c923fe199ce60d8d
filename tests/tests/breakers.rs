//! Connection circuit breakers through the real controller and gateway. A
//! DestinationRule with `maxConnections: 1` and `http1MaxPendingRequests: 1` in front of
//! a backend taking 400 ms per call: one call holds the connection, one waits, and
//! every further concurrent call is refused at once with the protocol's overflow error
//! (HTTP 503, Dubbo 100, a Thrift exception), each one counted in `/clusters` as
//! `upstream_rq_pending_overflow`. gRPC multiplexes its calls on one HTTP/2 connection,
//! so there `http2MaxRequests: 1` is the limit (UNAVAILABLE, counted as `rq_overflow`).

mod lb_support;

use corridor_tests::route_policy::{Proto, count, load};
use lb_support::{Spec, setup};
use serde_json::json;

/// The refusal's key in corridor-load's `statuses`.
fn overflow_status(proto: Proto) -> &'static str {
    match proto {
        Proto::Http => "503",
        Proto::Grpc => "UNAVAILABLE",
        Proto::Dubbo => "100",
        Proto::Thrift => "exception",
    }
}

async fn excess_concurrent_calls_are_refused(proto: Proto) {
    let pool = match proto {
        Proto::Grpc => json!({"http": {"http2MaxRequests": 1, "http1MaxPendingRequests": 1}}),
        _ => json!({"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}),
    };
    let slow = Spec {
        name: "slow",
        zone: "zone-a",
        flags: &["--delay", "400ms"],
    };
    let s = setup(
        proto,
        "breakers",
        &[slow],
        json!({"connectionPool": pool}),
        None,
        &[],
    )
    .await;
    let counter = match proto {
        Proto::Grpc => "rq_overflow",
        _ => "upstream_rq_pending_overflow",
    };
    let overflow_before = s.cluster_stat(counter).await;
    let pending_before = s.cluster_stat("upstream_rq_pending_total").await;

    // 50 calls a second for 2 s, at most 8 in flight at once, where one at a time fits.
    let summary = load(
        proto,
        s.addr,
        "--rate 50 --duration 2s --connections 8 --timeout 5s",
    )
    .await;
    let completed = count(&summary, &["requests", "completed"]);
    let ok = count(&summary, &["statuses", proto.ok_status()]);
    let refused = count(&summary, &["statuses", overflow_status(proto)]);
    assert_eq!(
        ok + refused,
        completed,
        "{proto:?}: only answers and refusals: {summary}"
    );
    // One call at a time, 400 ms each, over the 2 s run and the last calls' tail.
    assert!(
        (2..=8).contains(&ok),
        "{proto:?}: {ok} calls got through one connection: {summary}"
    );
    assert!(
        refused >= completed / 2,
        "{proto:?}: {refused} of {completed} refused: {summary}"
    );
    let overflowed = s.cluster_stat(counter).await - overflow_before;
    assert_eq!(
        overflowed, refused,
        "{proto:?}: every refusal counted as {counter}"
    );
    if proto != Proto::Grpc {
        let waited = s.cluster_stat("upstream_rq_pending_total").await - pending_before;
        assert!(waited >= 1, "{proto:?}: no call waited for the connection");
    }
}

#[tokio::test]
async fn excess_concurrent_http_calls_get_503() {
    excess_concurrent_calls_are_refused(Proto::Http).await;
}

#[tokio::test]
async fn excess_concurrent_grpc_calls_get_unavailable() {
    excess_concurrent_calls_are_refused(Proto::Grpc).await;
}

#[tokio::test]
async fn excess_concurrent_dubbo_calls_get_status_100() {
    excess_concurrent_calls_are_refused(Proto::Dubbo).await;
}

#[tokio::test]
async fn excess_concurrent_thrift_calls_get_an_exception() {
    excess_concurrent_calls_are_refused(Proto::Thrift).await;
}
