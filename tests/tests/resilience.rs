//! The gateway without its controller: it keeps serving the last config, and resyncs when a
//! controller comes back on the same address.

use corridor_tests::manifests::{
    self, Destination, DestinationRule, Endpoint, EndpointSlice, HttpRoute, Pod, Service,
    ServicePort, VirtualService,
};
use corridor_tests::mesh::RESYNC_PATIENCE;
use corridor_tests::{HttpClient, Load, Mesh, PATIENCE, eventually, wait_for_reply};

const PORT: u16 = 8080;

fn route_to(ns: &str, subset: &str) -> String {
    manifests::yaml([VirtualService::new("web", ns)
        .host("web")
        .http(HttpRoute::new().to(Destination::new("web").subset(subset)))
        .into()])
}

async fn web_mesh(tag: &str) -> (Mesh, Vec<corridor_tests::Backend>, std::net::SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let backends = mesh.backends(&["a", "b"]).await;
    let mut objects = mesh.service_objects(
        "web",
        ServicePort::new("http-web", PORT),
        &[(&backends[0], "v1"), (&backends[1], "v2")],
    );
    objects.push(
        DestinationRule::new("web", &mesh.ns, "web")
            .subset("v1", &[("version", "v1")])
            .subset("v2", &[("version", "v2")])
            .into(),
    );
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.write("vs.yaml", &route_to(&mesh.ns, "v1"));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(
        &HttpClient::http1(),
        addr,
        "/",
        "a first 200 from v1",
        |r| r.backend() == "a",
    )
    .await;
    (mesh, backends, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_keeps_serving_under_load_when_the_controller_dies() {
    let (mut mesh, _backends, addr) = web_mesh("ctl-dead").await;
    let load = Load::start(addr, "/", 4);
    load.wait_for_more(200, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    mesh.kill_controller();
    load.wait_for_more(1000, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;
    report.assert_no_failures("after the controller was killed");

    // New connections are accepted too, and the gateway still reports itself alive.
    let fresh = HttpClient::http1();
    let reply = fresh
        .get(addr, "/")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((reply.status.as_u16(), reply.backend()), (200, "a"));
    let health = mesh
        .admin_get("/healthz")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(health.status, 200);
    assert!(
        mesh.gateway().try_exit().unwrap_or(None).is_none(),
        "the gateway exited without its controller"
    );
}

#[tokio::test]
async fn gateway_resyncs_after_the_controller_restarts() {
    let (mut mesh, _backends, addr) = web_mesh("ctl-restart").await;
    mesh.kill_controller();

    // A change made while no controller runs cannot reach the gateway...
    mesh.write("vs.yaml", &route_to(&mesh.ns, "v2"));
    let client = HttpClient::http1();
    client
        .assert_all_served_by(addr, 20, "a", "still the last config")
        .await;

    // ...and is applied once a controller is back on the same address.
    mesh.start_controller().await;
    eventually(
        RESYNC_PATIENCE,
        "the gateway to resync with the restarted controller",
        || {
            let client = client.clone();
            async move {
                let reply = client.get(addr, "/").await?;
                anyhow::ensure!(
                    reply.backend() == "b",
                    "still served by {:?}",
                    reply.backend()
                );
                Ok(())
            }
        },
    )
    .await;
    client
        .assert_all_served_by(addr, 10, "b", "every request")
        .await;

    // The resynced stream carries later changes as well.
    mesh.write("vs.yaml", &route_to(&mesh.ns, "v1"));
    wait_for_reply(&client, addr, "/", "a change after the resync", |r| {
        r.backend() == "a"
    })
    .await;
}

#[tokio::test]
async fn gateway_is_ready_only_after_its_first_config() {
    let mut mesh = Mesh::new("ready");
    let backends = mesh.backends(&["a"]).await;
    mesh.write(
        "web.yaml",
        &manifests::yaml(mesh.service_objects(
            "web",
            ServicePort::new("http", PORT),
            &[(&backends[0], "v1")],
        )),
    );
    // The gateway starts first, pointed at a controller that does not run yet.
    mesh.reserve_xds_addr();
    mesh.spawn_gateway(&[]).await;
    let ready = mesh
        .admin_get("/ready")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        ready.status,
        503,
        "ready without any config: {}",
        ready.text()
    );
    let health = mesh
        .admin_get("/healthz")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(health.status, 200, "alive even when not ready");

    // Once the controller is up, the gateway's reconnect backoff finds it.
    mesh.start_controller().await;
    eventually(
        RESYNC_PATIENCE,
        "the gateway to connect and become ready",
        || {
            let reply = mesh.admin_get("/ready");
            async move {
                let reply = reply.await?;
                anyhow::ensure!(reply.status == 200, "/ready answered {}", reply.status);
                Ok(())
            }
        },
    )
    .await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(
        &HttpClient::http1(),
        addr,
        "/",
        "traffic after the first config",
        |r| r.backend() == "a",
    )
    .await;
}

#[tokio::test]
async fn service_addresses_are_stable_across_restarts_and_other_services() {
    let mut mesh = Mesh::new("stable");
    let backends = mesh.backends(&["a", "z"]).await;
    // Two ports on one service: one gateway address, the service's own port numbers.
    let web = Service::new("web", &mesh.ns)
        .port(ServicePort::new("http-web", PORT).target(backends[0].addr().port()))
        .port(ServicePort::new("http2-alt", PORT + 1).target(backends[0].addr().port()));
    let (ip, target) = (backends[0].addr().ip(), backends[0].addr().port());
    let objects: Vec<serde_json::Value> = vec![
        web.into(),
        EndpointSlice::new("web-x1", &mesh.ns, "web")
            .port("http-web", target)
            .port("http2-alt", target)
            .endpoint(Endpoint::new(ip).pod("web-a"))
            .into(),
        Pod::new("web-a", &mesh.ns)
            .label("app", "web")
            .ip(ip)
            .into(),
    ];
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let first = mesh.service_addr("web", PORT).await;
    let alt = mesh.service_addr("web", PORT + 1).await;
    assert_eq!(first.ip(), alt.ip(), "one gateway address per service");
    assert_eq!(
        (first.port(), alt.port()),
        (PORT, PORT + 1),
        "the service's own port numbers"
    );
    wait_for_reply(&HttpClient::h2c(), alt, "/", "the second port", |r| {
        r.header("x-version") == "HTTP/2.0"
    })
    .await;

    // Restart everything, with another service added that sorts before `web`.
    mesh.gateway()
        .terminate()
        .unwrap_or_else(|e| panic!("{e:#}"));
    mesh.gateway()
        .wait_exit(std::time::Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    mesh.kill_controller();
    mesh.write(
        "aaa.yaml",
        &manifests::yaml(mesh.service_objects(
            "aaa",
            ServicePort::new("http", PORT),
            &[(&backends[1], "v1")],
        )),
    );
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let again = mesh.service_addr("web", PORT).await;
    assert_eq!(
        again, first,
        "same namespace/name, same gateway address across restarts"
    );
    let other = mesh.service_addr("aaa", PORT).await;
    assert_ne!(
        other.ip(),
        first.ip(),
        "distinct services get distinct addresses"
    );
    wait_for_reply(
        &HttpClient::http1(),
        again,
        "/",
        "web after the restart",
        |r| r.backend() == "a",
    )
    .await;
    wait_for_reply(
        &HttpClient::http1(),
        other,
        "/",
        "aaa after the restart",
        |r| r.backend() == "z",
    )
    .await;
}
