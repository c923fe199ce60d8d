//! Fault injection through the real controller and gateway, in HTTP, gRPC, Dubbo and
//! Thrift alike: a VirtualService `fault` aborting 20 % of calls answers about 20 % of
//! 2,000 calls with the protocol's own error (HTTP 503, gRPC UNAVAILABLE, Dubbo 80 /
//! Thrift TApplicationException for httpStatus 503), flagged FI in the metrics; a 100 ms
//! delay on every call moves the median latency corridor-load measures by at least
//! 100 ms over a run without it.

use corridor_tests::Mesh;
use corridor_tests::route_policy::{
    Proto, Served, count, latency_ms, load, serve, virtual_service,
};
use serde_json::{Value, json};

/// Calls per abort run: the abort share's standard deviation is then 0.9 points.
const CALLS: u64 = 2_000;

/// A mesh with `proto`'s service on one echo backend and `policy` in its VirtualService
/// (`vs.yaml`), with the gateway address once a call is answered.
struct Setup {
    mesh: Mesh,
    addr: std::net::SocketAddr,
    _backend: Served,
}

async fn mesh_with(proto: Proto, tag: &str, policy: Value) -> Setup {
    let mut mesh = Mesh::new(tag);
    let backend = serve(&mut mesh, proto, "b1", 0, &[]).await;
    let service = "svc";
    let objects = mesh.service_objects(service, proto.port(), &[(&backend, "v1")]);
    mesh.write("mesh.yaml", &corridor_tests::manifests::yaml(objects));
    mesh.write(
        "vs.yaml",
        &corridor_tests::manifests::yaml([virtual_service(&mesh.ns, service, policy)]),
    );
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr(service, proto.port().number()).await;
    // The routes (and the fault rule on them) arrive after the listener.
    corridor_tests::eventually(corridor_tests::PATIENCE, "routes in place", || async move {
        let s = load(proto, addr, "--rate 50 --duration 200ms --connections 2").await;
        anyhow::ensure!(
            count(&s, &["requests", "completed"]) > 0 && count(&s, &["errors", "connect"]) == 0,
            "{s}"
        );
        anyhow::ensure!(
            count(&s, &["statuses", "404"]) == 0 && count(&s, &["statuses", "UNIMPLEMENTED"]) == 0,
            "{s}"
        );
        Ok(())
    })
    .await;
    Setup {
        mesh,
        addr,
        _backend: backend,
    }
}

/// The abort of each protocol and the `statuses` key its error shows as.
fn abort(proto: Proto) -> (Value, &'static str) {
    match proto {
        Proto::Grpc => (
            json!({"grpcStatus": "UNAVAILABLE", "percentage": {"value": 20}}),
            "UNAVAILABLE",
        ),
        Proto::Http => (
            json!({"httpStatus": 503, "percentage": {"value": 20}}),
            "503",
        ),
        // 503 is Dubbo's SERVER_ERROR (80) and a Thrift INTERNAL_ERROR exception.
        Proto::Dubbo => (
            json!({"httpStatus": 503, "percentage": {"value": 20}}),
            "80",
        ),
        Proto::Thrift => (
            json!({"httpStatus": 503, "percentage": {"value": 20}}),
            "exception",
        ),
    }
}

async fn aborts_a_fifth_of_calls(proto: Proto) {
    let (rule, error) = abort(proto);
    let tag = format!("fault-abort-{}", proto.as_str());
    let Setup {
        mesh,
        addr,
        _backend,
    } = mesh_with(
        proto,
        &tag,
        json!({"fault": {"abort": rule}, "retries": {"attempts": 0}}),
    )
    .await;
    let s = load(
        proto,
        addr,
        "--rate 1000 --duration 2s --connections 20 --timeout 10s",
    )
    .await;
    let completed = count(&s, &["requests", "completed"]);
    assert!(completed >= CALLS * 95 / 100, "{s}");
    let errors = count(&s, &["statuses", error]);
    let ok = count(&s, &["statuses", proto.ok_status()]);
    assert_eq!(
        errors + ok,
        completed,
        "only answers and the fault's error: {s}"
    );
    let share = errors as f64 / completed as f64;
    assert!(
        (0.17..=0.23).contains(&share),
        "{proto:?}: {errors} of {completed} aborted ({share:.3}): {s}"
    );
    // Flagged FI, every one of them.
    mesh.wait_for_metric(
        "istio_requests_total",
        &[("response_flags", "FI")],
        errors as f64,
    )
    .await;
}

/// No call failed. (gRPC calls once failed here now and then: a replayable request body
/// never told hyper it had ended, so the h2 backend got empty DATA frames without
/// END_STREAM and closed the gateway's connection past its limit.)
fn assert_clean(s: &Value) {
    assert_eq!(count(s, &["requests", "errors"]), 0, "{s}");
}

async fn a_delay_moves_the_median(proto: Proto) {
    let tag = format!("fault-delay-{}", proto.as_str());
    let Setup {
        mesh,
        addr,
        _backend,
    } = mesh_with(proto, &tag, json!({})).await;
    // The warm-up opens the connections (and the gateway's upstream ones) before measuring.
    let run = "--rate 100 --warmup 1s --duration 2s --connections 20 --timeout 10s";
    let before = load(proto, addr, run).await;
    assert_clean(&before);

    let delayed =
        json!({"fault": {"delay": {"fixedDelay": "100ms", "percentage": {"value": 100}}}});
    let vs = virtual_service(&mesh.ns, "svc", delayed);
    mesh.write("vs.yaml", &corridor_tests::manifests::yaml([vs]));
    corridor_tests::eventually(
        corridor_tests::PATIENCE,
        "the delay in force",
        || async move {
            let s = load(proto, addr, "--rate 20 --duration 500ms --connections 5").await;
            anyhow::ensure!(
                latency_ms(&s, "p50") >= 100.0,
                "p50 {}",
                latency_ms(&s, "p50")
            );
            Ok(())
        },
    )
    .await;
    let after = load(proto, addr, run).await;
    assert_clean(&after);
    // Every call waited its 100 ms; the median moved by them, less what the two runs'
    // own service times differ by on a shared test machine (a few ms: 5 allowed).
    assert!(
        latency_ms(&after, "min") >= 100.0,
        "{proto:?}: a call was not delayed: {after}"
    );
    let moved = latency_ms(&after, "p50") - latency_ms(&before, "p50");
    assert!(
        moved >= 95.0,
        "{proto:?}: p50 {} -> {}",
        latency_ms(&before, "p50"),
        latency_ms(&after, "p50")
    );
    mesh.wait_for_metric("istio_requests_total", &[("response_flags", "DI")], 1.0)
        .await;
}

#[tokio::test]
async fn an_abort_answers_a_fifth_of_http_calls_with_its_status() {
    aborts_a_fifth_of_calls(Proto::Http).await;
}

#[tokio::test]
async fn an_abort_answers_a_fifth_of_grpc_calls_with_its_grpc_status() {
    aborts_a_fifth_of_calls(Proto::Grpc).await;
}

#[tokio::test]
async fn an_abort_answers_a_fifth_of_dubbo_calls_with_a_dubbo_status() {
    aborts_a_fifth_of_calls(Proto::Dubbo).await;
}

#[tokio::test]
async fn an_abort_answers_a_fifth_of_thrift_calls_with_an_exception() {
    aborts_a_fifth_of_calls(Proto::Thrift).await;
}

#[tokio::test]
async fn a_delay_slows_every_http_call() {
    a_delay_moves_the_median(Proto::Http).await;
}

#[tokio::test]
async fn a_delay_slows_every_grpc_call() {
    a_delay_moves_the_median(Proto::Grpc).await;
}

#[tokio::test]
async fn a_delay_slows_every_dubbo_call() {
    a_delay_moves_the_median(Proto::Dubbo).await;
}

#[tokio::test]
async fn a_delay_slows_every_thrift_call() {
    a_delay_moves_the_median(Proto::Thrift).await;
}
