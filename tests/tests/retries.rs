//! Retries with numbers, in HTTP, gRPC, Dubbo and Thrift alike: two backends failing 30 %
//! of calls with their protocol's error (HTTP 503, gRPC UNAVAILABLE, Dubbo 70, Thrift
//! exception), a VirtualService retrying up to 4 times on `5xx` (gRPC: `unavailable`) and
//! a DestinationRule allowing as many concurrent retries as the load makes: fewer than
//! 1 % of 2,000 calls fail (0.3^5 = 0.24 % expected). With the default retry budget (20 %
//! of active requests) and many calls at once, retries overflow the budget, counted.

use corridor_tests::Mesh;
use corridor_tests::route_policy::{Proto, Served, count, load, serve, virtual_service};
use serde_json::{Value, json};

/// A mesh with `proto`'s service on two backends failing 30 % of calls, the VirtualService
/// `policy` and, when `max_retries` is set, a DestinationRule with that many retries.
async fn failing_service(
    proto: Proto,
    tag: &str,
    policy: Value,
    max_retries: Option<u32>,
) -> (Mesh, std::net::SocketAddr, Vec<Served>) {
    let mut mesh = Mesh::new(tag);
    let first = serve(&mut mesh, proto, "b1", 0, &["--error-rate", "0.3"]).await;
    let second = serve(
        &mut mesh,
        proto,
        "b2",
        first.addr.port(),
        &["--error-rate", "0.3"],
    )
    .await;
    let service = "svc";
    let mut objects =
        mesh.service_objects(service, proto.port(), &[(&first, "v1"), (&second, "v1")]);
    objects.push(virtual_service(&mesh.ns, service, policy));
    if let Some(n) = max_retries {
        objects.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": service, "namespace": mesh.ns},
            "spec": {"host": service, "trafficPolicy": {"connectionPool": {"http": {"maxRetries": n}}}}
        }));
    }
    mesh.write("mesh.yaml", &corridor_tests::manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr(service, proto.port().number()).await;
    // The routes (and their retry policy) arrive after the listener: wait until calls
    // are answered by the backends, failures included.
    corridor_tests::eventually(corridor_tests::PATIENCE, "routes in place", || async move {
        let s = load(proto, addr, "--rate 50 --duration 200ms --connections 2").await;
        anyhow::ensure!(count(&s, &["statuses", proto.ok_status()]) > 0, "{s}");
        Ok(())
    })
    .await;
    (mesh, addr, vec![first, second])
}

/// Istio's `retryOn` naming the protocol's error.
fn retry_on(proto: Proto) -> &'static str {
    match proto {
        Proto::Grpc => "unavailable",
        Proto::Http | Proto::Dubbo | Proto::Thrift => "5xx",
    }
}

async fn four_retries_hide_a_30_percent_error_rate(proto: Proto) {
    let tag = format!("retry-{}", proto.as_str());
    let policy = json!({"retries": {"attempts": 4, "retryOn": retry_on(proto)}});
    let (mesh, addr, _backends) = failing_service(proto, &tag, policy, Some(100_000)).await;
    let s = load(
        proto,
        addr,
        "--rate 1000 --duration 2s --connections 20 --timeout 10s",
    )
    .await;
    let completed = count(&s, &["requests", "completed"]);
    assert!(completed >= 1_900, "{s}");
    let errors = count(&s, &["requests", "errors"]);
    assert!(
        errors * 100 < completed,
        "{proto:?}: {errors} of {completed} calls failed: {s}"
    );
    // Retries did the work: at least a quarter of the calls needed one.
    let cluster = format!(
        "outbound|{}||svc.{}.svc.cluster.local",
        proto.port().number(),
        mesh.ns
    );
    let retries = mesh
        .wait_for_metric(
            "corridor_upstream_rq_retry_total",
            &[("cluster", &cluster)],
            1.0,
        )
        .await;
    assert!(
        retries >= completed as f64 * 0.25,
        "{proto:?}: {retries} retries for {completed} calls"
    );
}

#[tokio::test]
async fn http_retries_hide_a_30_percent_error_rate() {
    four_retries_hide_a_30_percent_error_rate(Proto::Http).await;
}

#[tokio::test]
async fn grpc_retries_hide_a_30_percent_error_rate() {
    four_retries_hide_a_30_percent_error_rate(Proto::Grpc).await;
}

#[tokio::test]
async fn dubbo_retries_hide_a_30_percent_error_rate() {
    four_retries_hide_a_30_percent_error_rate(Proto::Dubbo).await;
}

#[tokio::test]
async fn thrift_retries_hide_a_30_percent_error_rate() {
    four_retries_hide_a_30_percent_error_rate(Proto::Thrift).await;
}

/// The default budget admits retries up to 20 % of the requests active on the cluster
/// (at least 3): 50 calls at once failing 30 % of the time ask for more.
#[tokio::test]
async fn the_default_retry_budget_overflows_at_high_concurrency() {
    let policy = json!({"retries": {"attempts": 4, "retryOn": "5xx"}});
    let (mesh, addr, _backends) = failing_service(Proto::Http, "retry-budget", policy, None).await;
    let s = load(
        Proto::Http,
        addr,
        "--duration 2s --connections 50 --timeout 10s",
    )
    .await;
    assert!(count(&s, &["requests", "completed"]) > 0, "{s}");
    let cluster = format!("outbound|8080||svc.{}.svc.cluster.local", mesh.ns);
    mesh.wait_for_metric(
        "corridor_upstream_rq_retry_overflow_total",
        &[("cluster", &cluster)],
        1.0,
    )
    .await;
    // And the overflow shows: some calls failed although they could have been retried.
    assert!(count(&s, &["statuses", "503"]) > 0, "{s}");
}
