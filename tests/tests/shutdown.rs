//! SIGTERM under load: the gateway stops accepting, finishes what it accepted, exits 0.

use std::time::{Duration, Instant};

use corridor_tests::manifests::{self, ServicePort};
use corridor_tests::{HttpClient, Load, Mesh, PATIENCE, wait_for_reply};

const PORT: u16 = 8080;
/// Backend latency, so that requests are in flight when the signal arrives.
const SLOW_PATH: &str = "/delay/300";
/// The gateway's drain deadline, far above the backend latency.
const DRAIN_TIMEOUT: &str = "15s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_accepted_request() {
    let mut mesh = Mesh::new("sigterm");
    let backends = mesh.backends(&["a", "b"]).await;
    let objects = mesh.service_objects(
        "web",
        ServicePort::new("http-web", PORT),
        &[(&backends[0], "v1"), (&backends[1], "v1")],
    );
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway_with(&["--drain-timeout", DRAIN_TIMEOUT])
        .await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(&HttpClient::http1(), addr, "/", "a first 200", |r| {
        r.status == 200
    })
    .await;

    let load = Load::start(addr, SLOW_PATH, 8);
    load.wait_for_more(24, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let signalled = Instant::now();
    mesh.gateway()
        .terminate()
        .unwrap_or_else(|e| panic!("{e:#}"));
    let status = mesh
        .gateway()
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;

    assert!(
        status.success(),
        "the gateway should exit 0 after a clean drain, got {status}"
    );
    // Every request sent before the signal must complete. On SIGTERM the gateway stops
    // accepting, keeps its HTTP/1.1 keep-alive connections open for a grace period in
    // which each response says `Connection: close`, and only then closes idle ones, so
    // a request written on a keep-alive connection just before the signal is answered,
    // not cut off by the close.
    let before: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.start < signalled)
        .collect();
    let forwarded = |target: &str| backends.iter().any(|b| b.received(target));
    let failed: Vec<_> = before
        .iter()
        .filter(|o| !o.ok())
        .map(|o| {
            format!(
                "{} sent {:?} before SIGTERM, ended {:?} after it, reached a backend: {}: {:?}",
                o.target,
                signalled - o.start,
                o.end.saturating_duration_since(signalled),
                forwarded(&o.target),
                o.result
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests sent before SIGTERM failed:\n{}",
        failed.len(),
        before.len(),
        failed.join("\n")
    );
    let in_flight = before.iter().filter(|o| o.end > signalled).count();
    assert!(
        in_flight > 0,
        "no request was in flight at the signal: the test proved nothing"
    );
    eprintln!("{in_flight} requests were in flight at SIGTERM and completed");
    // After the signal a client may be refused or see its idle connection closed, but a
    // request the gateway answers must not be an error it made up while draining.
    let answered_badly: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| {
            o.start >= signalled
                && matches!(&o.result, Ok((status, _)) if !(200..300).contains(status))
        })
        .collect();
    assert!(
        answered_badly.is_empty(),
        "error responses after SIGTERM: {answered_badly:#?}"
    );
    // And the gateway is gone.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "{addr} still accepts connections after exit"
    );
}

#[tokio::test]
async fn sigterm_when_idle_exits_zero() {
    let mut mesh = Mesh::new("sigidle");
    let backends = mesh.backends(&["a"]).await;
    mesh.write(
        "web.yaml",
        &manifests::yaml(mesh.service_objects(
            "web",
            ServicePort::new("http", PORT),
            &[(&backends[0], "v1")],
        )),
    );
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(&HttpClient::http1(), addr, "/", "a first 200", |r| {
        r.status == 200
    })
    .await;
    mesh.gateway()
        .terminate()
        .unwrap_or_else(|e| panic!("{e:#}"));
    let status = mesh
        .gateway()
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn admin_drain_turns_unready_and_finishes_in_flight_requests() {
    let mut mesh = Mesh::new("drain");
    let backends = mesh.backends(&["a"]).await;
    mesh.write(
        "web.yaml",
        &manifests::yaml(mesh.service_objects(
            "web",
            ServicePort::new("http", PORT),
            &[(&backends[0], "v1")],
        )),
    );
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(&HttpClient::http1(), addr, "/", "a first 200", |r| {
        r.status == 200
    })
    .await;

    let received = backends[0].requests();
    let slow = tokio::spawn(async move { HttpClient::http1().get(addr, "/delay/500").await });
    corridor_tests::eventually(PATIENCE, "the slow request to reach the backend", || {
        let now = backends[0].requests();
        async move {
            anyhow::ensure!(now > received, "not yet");
            Ok(())
        }
    })
    .await;
    let drained = HttpClient::http1()
        .request(http::Method::POST, mesh.admin(), "/drain", &[])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        drained.status.is_success(),
        "POST /drain answered {}",
        drained.status
    );
    let ready = mesh
        .admin_get("/ready")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        ready.status, 503,
        "a draining gateway must fail readiness so it gets no new traffic"
    );
    let reply = slow
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        reply.status, 200,
        "the in-flight request completes during the drain"
    );
}
