//! gRPC through the gateway with a real gRPC stack on both sides: the Python grpcio client
//! against Python grpcio servers, on a Service port named `grpc-*`.

use std::collections::BTreeSet;

use corridor_tests::manifests::{self, ServicePort};
use corridor_tests::python::{GrpcCall, GrpcServer, grpc_client};
use corridor_tests::{Mesh, PATIENCE, eventually};

const PORT: u16 = 7070;

/// A mesh with service `echo` (port `grpc-echo`) on two grpcio servers, and its gateway address.
async fn echo_mesh(tag: &str) -> (Mesh, Vec<GrpcServer>, std::net::SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let first_addr = mesh.upstream_addr(0);
    let first = GrpcServer::start("g1", first_addr)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let second_addr = mesh.upstream_addr(first.addr.port());
    let second = GrpcServer::start("g2", second_addr)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let objects = mesh.service_objects(
        "echo",
        ServicePort::new("grpc-echo", PORT),
        &[(&first, "v1"), (&second, "v1")],
    );
    mesh.write("echo.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("echo", PORT).await;
    (mesh, vec![first, second], addr)
}

async fn call(addr: std::net::SocketAddr, args: &[&str]) -> Vec<GrpcCall> {
    eventually(
        PATIENCE,
        "the gRPC client to reach the gateway",
        || async move {
            let calls = grpc_client(addr, args).await?;
            // UNAVAILABLE = the listener is not serving yet; anything else is an answer.
            anyhow::ensure!(
                calls.iter().all(|c| c.code() != "UNAVAILABLE"),
                "{:?}",
                calls.first().map(|c| &c.0)
            );
            Ok(calls)
        },
    )
    .await
}

#[tokio::test]
async fn grpc_unary_through_the_gateway() {
    let (_mesh, _servers, addr) = echo_mesh("grpc-unary").await;
    let calls = call(
        addr,
        &["--method", "unary", "--message", "ping", "--repeat", "10"],
    )
    .await;
    let mut served_by = BTreeSet::new();
    for c in &calls {
        assert_eq!(c.code(), "OK", "{:?}", c.0);
        assert_eq!(c.messages(), vec!["ping"], "the echo comes back unchanged");
        assert!(
            matches!(
                c.0["initial_metadata"]["x-backend"].as_str(),
                Some("g1" | "g2")
            ),
            "headers pass through: {:?}",
            c.0
        );
        served_by.insert(c.trailer("x-served-by").to_string());
    }
    assert_eq!(
        served_by,
        BTreeSet::from(["g1".to_string(), "g2".to_string()]),
        "trailers pass through, and calls on one HTTP/2 connection are balanced per request"
    );
}

#[tokio::test]
async fn grpc_server_streaming_through_the_gateway() {
    let (_mesh, _servers, addr) = echo_mesh("grpc-stream").await;
    let calls = call(
        addr,
        &["--method", "stream", "--message", "m", "--count", "50"],
    )
    .await;
    let expected: Vec<String> = (0..50).map(|i| format!("m-{i}")).collect();
    assert_eq!(calls[0].code(), "OK", "{:?}", calls[0].0);
    assert_eq!(
        calls[0].messages(),
        expected,
        "every streamed message, in order"
    );
    assert!(
        !calls[0].trailer("x-served-by").is_empty(),
        "trailers after a stream: {:?}",
        calls[0].0
    );
}

#[tokio::test]
async fn grpc_error_status_and_trailers_pass_through() {
    let (mesh, _servers, addr) = echo_mesh("grpc-status").await;
    let unary = call(
        addr,
        &[
            "--method",
            "unary",
            "--fail-code",
            "5",
            "--fail-message",
            "no such book",
        ],
    )
    .await;
    assert_eq!(unary[0].code(), "NOT_FOUND", "{:?}", unary[0].0);
    assert_eq!(unary[0].details(), "no such book");
    assert!(
        !unary[0].trailer("x-served-by").is_empty(),
        "trailing metadata with an error: {:?}",
        unary[0].0
    );

    let stream = call(
        addr,
        &[
            "--method",
            "stream",
            "--count",
            "2",
            "--fail-code",
            "9",
            "--fail-message",
            "stopped",
        ],
    )
    .await;
    assert_eq!(
        stream[0].messages(),
        vec!["hello-0", "hello-1"],
        "messages before the error arrive"
    );
    assert_eq!(stream[0].code(), "FAILED_PRECONDITION", "{:?}", stream[0].0);
    assert_eq!(stream[0].details(), "stopped");
    assert!(!stream[0].trailer("x-served-by").is_empty());

    // Telemetry sees gRPC statuses, not just HTTP 200s, as Istio's metrics do.
    let host = format!("echo.{}.svc.cluster.local", mesh.ns);
    let labels = [
        ("destination_service", host.as_str()),
        ("request_protocol", "grpc"),
        ("grpc_response_status", "5"),
    ];
    mesh.wait_for_metric("istio_requests_total", &labels, 1.0)
        .await;
}

/// Hundreds of small calls in flight on a few client connections, multiplexed on one
/// upstream connection, are all answered. h2 closes a connection that holds more unread
/// small DATA frames than its connection window allows (GOAWAY ENHANCE_YOUR_CALM,
/// failing every stream on it); with the adaptive window's 64 KiB start that happened
/// at a few hundred streams and lost about 4 % of the calls.
#[tokio::test]
async fn five_hundred_calls_in_flight_are_all_answered() {
    use corridor_tests::route_policy::{Proto, count, load, serve};
    let mut mesh = Mesh::new("grpc-many");
    let backend = serve(&mut mesh, Proto::Grpc, "b1", 0, &[]).await;
    let objects = mesh.service_objects("svc", Proto::Grpc.port(), &[(&backend, "v1")]);
    mesh.write("mesh.yaml", &corridor_tests::manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("svc", Proto::Grpc.port().number()).await;
    corridor_tests::eventually(corridor_tests::PATIENCE, "route in place", || async move {
        let s = load(
            Proto::Grpc,
            addr,
            "--rate 50 --duration 200ms --connections 1",
        )
        .await;
        anyhow::ensure!(count(&s, &["statuses", "OK"]) > 0, "{s}");
        Ok(())
    })
    .await;
    let s = load(
        Proto::Grpc,
        addr,
        "--connections 10 --concurrency 50 --duration 3s",
    )
    .await;
    let completed = count(&s, &["requests", "completed"]);
    assert!(completed >= 1_000, "too few calls to tell: {s}");
    assert_eq!(
        count(&s, &["statuses", "OK"]),
        completed,
        "every call answered OK: {s}"
    );
    for kind in ["connect", "timeout", "protocol", "status"] {
        assert_eq!(count(&s, &["errors", kind]), 0, "{kind} errors: {s}");
    }
}
