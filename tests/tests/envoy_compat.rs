//! A stock Envoy 1.40, bootstrapped with the controller as its ADS server, proxies the same
//! service the gateway would: proof that the controller's xDS output is standard Envoy v3.
//! No corridor-gateway runs here, so the listener addresses are Envoy's to bind.

use std::collections::BTreeSet;

use corridor_tests::envoy::{Ads, Envoy};
use corridor_tests::manifests::{
    self, Destination, DestinationRule, HttpRoute, Match, ServicePort, VirtualService,
};
use corridor_tests::{HttpClient, Mesh, wait_for_reply};

const PORT: u16 = 8080;

async fn envoy_proxies_the_same_service(ads: Ads, tag: &str) {
    let mut mesh = Mesh::new(tag);
    let backends = mesh.backends(&["a", "b", "c"]).await;
    let ns = mesh.ns.clone();
    let mut objects = mesh.service_objects(
        "web",
        ServicePort::new("http-web", PORT),
        &[
            (&backends[0], "v1"),
            (&backends[1], "v1"),
            (&backends[2], "v2"),
        ],
    );
    objects.push(
        DestinationRule::new("web", &ns, "web")
            .subset("v1", &[("version", "v1")])
            .subset("v2", &[("version", "v2")])
            .into(),
    );
    objects.push(
        VirtualService::new("web", &ns)
            .host("web")
            .http(
                HttpRoute::new()
                    .matching(Match::new().header_exact("end-user", "jason"))
                    .to(Destination::new("web").subset("v2")),
            )
            .http(HttpRoute::new().to(Destination::new("web").subset("v1")))
            .into(),
    );
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;

    let envoy = Envoy::start(mesh.xds(), ads).await;
    let addr = envoy.listener(&mesh.listener_name("web", PORT)).await;
    assert_eq!(
        addr.port(),
        PORT,
        "Envoy listens on the service's port, as the gateway would"
    );
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "Envoy to proxy a first request", |r| {
        r.status == 200
    })
    .await;

    let mut v1 = BTreeSet::new();
    for _ in 0..20 {
        let plain = client
            .get(addr, "/hello")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(plain.status, 200, "{}", plain.text());
        assert_eq!(plain.header("x-path"), "/hello");
        v1.insert(plain.backend().to_string());
        let jason = client
            .request(http::Method::GET, addr, "/", &[("end-user", "jason")])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            jason.backend(),
            "c",
            "header match → subset v2 (pods labelled version=v2)"
        );
    }
    assert_eq!(
        v1,
        BTreeSet::from(["a".into(), "b".into()]),
        "subset v1 is a and b, both used"
    );

    // Envoy accepted everything it was sent: no NACK-rejected updates.
    let stats = client
        .get(envoy.admin, "/stats?filter=update_rejected")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .text();
    for line in stats.lines() {
        assert!(
            line.ends_with(": 0"),
            "Envoy rejected an xDS update: {line}\n{stats}"
        );
    }
}

#[tokio::test]
async fn envoy_over_state_of_the_world_ads_proxies_the_same_service() {
    envoy_proxies_the_same_service(Ads::Sotw, "envoy-sotw").await;
}

#[tokio::test]
async fn envoy_over_delta_ads_proxies_the_same_service() {
    envoy_proxies_the_same_service(Ads::Delta, "envoy-delta").await;
}

#[tokio::test]
async fn envoy_proxies_grpc_with_the_controllers_http2_cluster_options() {
    use corridor_tests::python::{GrpcServer, grpc_client};
    const GRPC_PORT: u16 = 7070;
    let mut mesh = Mesh::new("envoy-grpc");
    let server_addr = mesh.upstream_addr(0);
    let server = GrpcServer::start("g1", server_addr)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let objects = mesh.service_objects(
        "echo",
        ServicePort::new("grpc-echo", GRPC_PORT),
        &[(&server, "v1")],
    );
    mesh.write("echo.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    let envoy = Envoy::start(mesh.xds(), Ads::Delta).await;
    let addr = envoy.listener(&mesh.listener_name("echo", GRPC_PORT)).await;
    let calls = corridor_tests::eventually(
        corridor_tests::PATIENCE,
        "a gRPC call through Envoy",
        || async move {
            let calls = grpc_client(
                addr,
                &["--method", "stream", "--message", "e", "--count", "3"],
            )
            .await?;
            anyhow::ensure!(calls[0].code() == "OK", "{:?}", calls[0].0);
            Ok(calls)
        },
    )
    .await;
    assert_eq!(calls[0].messages(), vec!["e-0", "e-1", "e-2"]);
    assert_eq!(calls[0].trailer("x-served-by"), "g1");
}
