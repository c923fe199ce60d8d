//! Requests through the gateway reach the right endpoints; local replies (404, 503, 504);
//! retries; weighted splits; header matches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use corridor_tests::manifests::{
    self, Destination, DestinationRule, EndpointSlice, HttpRoute, Match, Service, ServicePort,
    VirtualService,
};
use corridor_tests::{HttpClient, Mesh, wait_for_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 8080;

/// Two backends `a` (v1) and `b` (v2) behind service `web`, with extra objects; returns the
/// mesh (started), the backends and the gateway address of `web:8080`.
async fn web_mesh(
    tag: &str,
    port: ServicePort,
    extra: impl Fn(&str) -> Vec<serde_json::Value>,
) -> (Mesh, Vec<corridor_tests::Backend>, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let backends = mesh.backends(&["a", "b"]).await;
    let mut objects =
        mesh.service_objects("web", port, &[(&backends[0], "v1"), (&backends[1], "v2")]);
    objects.extend(extra(&mesh.ns));
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    (mesh, backends, addr)
}

fn subsets(ns: &str) -> serde_json::Value {
    DestinationRule::new("web", ns, "web")
        .subset("v1", &[("version", "v1")])
        .subset("v2", &[("version", "v2")])
        .into()
}

#[tokio::test]
async fn http1_request_reaches_every_endpoint() {
    let (mesh, backends, addr) =
        web_mesh("h1", ServicePort::new("http-web", PORT), |_| vec![]).await;
    let octets = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets(),
        other => panic!("gateway address {other} is not IPv4"),
    };
    assert_eq!(
        mesh.cidr(),
        format!("127.{}.0.0/16", octets[1]),
        "gateway address {addr} outside --gateway-cidr"
    );
    assert_eq!(
        addr.port(),
        PORT,
        "the gateway must listen on the service's own port"
    );

    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "a first 200 through the gateway", |r| {
        r.status == 200
    })
    .await;
    let mut seen = BTreeSet::new();
    for i in 0..20 {
        let reply = client
            .get(addr, &format!("/item/{i}"))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        assert_eq!(
            reply.text(),
            reply.backend(),
            "the body comes from the backend"
        );
        assert_eq!(
            reply.header("x-path"),
            format!("/item/{i}"),
            "path forwarded unchanged"
        );
        assert_eq!(
            reply.header("x-version"),
            "HTTP/1.1",
            "http port: HTTP/1.1 upstream"
        );
        seen.insert(reply.backend().to_string());
    }
    assert_eq!(
        seen,
        BTreeSet::from(["a".to_string(), "b".to_string()]),
        "both endpoints serve"
    );
    assert!(backends.iter().all(|b| b.requests() > 0));

    // Telemetry: Istio-standard request metrics for this service.
    let host = format!("web.{}.svc.cluster.local", mesh.ns);
    mesh.wait_for_metric(
        "istio_requests_total",
        &[("destination_service", &host), ("response_code", "200")],
        20.0,
    )
    .await;
    mesh.wait_for_metric(
        "istio_requests_total",
        &[("destination_service", &host), ("request_protocol", "http")],
        20.0,
    )
    .await;
    mesh.wait_for_metric(
        "istio_request_duration_milliseconds_count",
        &[("destination_service", &host)],
        20.0,
    )
    .await;

    // config_dump is Envoy-shaped and shows this service's listener.
    let dump = mesh
        .admin_get("/config_dump")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let json: serde_json::Value =
        serde_json::from_slice(&dump.body).unwrap_or_else(|e| panic!("config_dump: {e}"));
    assert!(
        json["configs"].is_array(),
        "config_dump has no configs: {json}"
    );
    assert!(dump.text().contains(&mesh.listener_name("web", PORT)));
}

#[tokio::test]
async fn h2c_request_reaches_endpoints_over_http2() {
    let (_mesh, _backends, addr) =
        web_mesh("h2c", ServicePort::new("http2-web", PORT), |_| vec![]).await;
    let client = HttpClient::h2c();
    wait_for_reply(&client, addr, "/", "a first 200 over h2c", |r| {
        r.status == 200
    })
    .await;
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let reply = client
            .get(addr, "/x")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, http::Version::HTTP_2, "downstream is h2c");
        assert_eq!(
            reply.header("x-version"),
            "HTTP/2.0",
            "http2 port: HTTP/2 upstream"
        );
        seen.insert(reply.backend().to_string());
    }
    assert_eq!(seen.len(), 2, "both endpoints serve: {seen:?}");
}

#[tokio::test]
async fn h2c_prior_knowledge_works_on_an_http_port() {
    let (_mesh, _backends, addr) =
        web_mesh("h2c-auto", ServicePort::new("http", PORT), |_| vec![]).await;
    let reply = wait_for_reply(&HttpClient::h2c(), addr, "/", "a 200 over h2c", |r| {
        r.status == 200
    })
    .await;
    assert_eq!(
        reply.version,
        http::Version::HTTP_2,
        "codec AUTO accepts h2c prior knowledge"
    );
    assert!(["a", "b"].contains(&reply.backend()));
}

#[tokio::test]
async fn request_no_route_matches_gets_404() {
    // The controller always ends a route table with a catch-all (`prefix: /`), so the only
    // request no route can match is one whose path does not start with "/": `OPTIONS *`.
    let (mesh, backends, addr) = web_mesh("nr", ServicePort::new("http-web", PORT), |ns| {
        vec![
            VirtualService::new("web", ns)
                .host("web")
                .http(
                    HttpRoute::new()
                        .matching(Match::new().uri_prefix("/api"))
                        .to(Destination::new("web")),
                )
                .into(),
        ]
    })
    .await;
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/api/x", "a 200 on a matched route", |r| {
        r.status == 200
    })
    .await;
    let before: u64 = backends.iter().map(|b| b.requests()).sum();

    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(b"OPTIONS * HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    let _ = tokio::time::timeout(corridor_tests::PATIENCE, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 404"),
        "OPTIONS * should get a local 404, got: {response}"
    );
    assert_eq!(
        backends.iter().map(|b| b.requests()).sum::<u64>(),
        before,
        "a local reply reaches no backend"
    );
    mesh.wait_for_gateway_log(&["OPTIONS", "404", "NR"]).await;
}

#[tokio::test]
async fn service_without_healthy_endpoints_gets_503() {
    let mut mesh = Mesh::new("ne");
    let ns = mesh.ns.clone();
    let backend = mesh.backends(&["idle"]).await.remove(0);
    let port = backend.addr().port();
    mesh.write(
        "empty.yaml",
        &manifests::yaml([
            Service::new("empty", &ns)
                .port(ServicePort::new("http-web", PORT).target(port))
                .into(),
            EndpointSlice::new("empty-x1", &ns, "empty")
                .port("http-web", port)
                .into(),
            Service::new("unready", &ns)
                .port(ServicePort::new("http-web", PORT).target(port))
                .into(),
            EndpointSlice::new("unready-x1", &ns, "unready")
                .port("http-web", port)
                .endpoint(manifests::Endpoint::new(backend.addr().ip()).ready(false))
                .into(),
        ]),
    );
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let client = HttpClient::http1();
    for service in ["empty", "unready"] {
        let addr = mesh.service_addr(service, PORT).await;
        let reply = wait_for_reply(
            &client,
            addr,
            "/",
            &format!("a reply from {service}"),
            |_| true,
        )
        .await;
        assert_eq!(reply.status, 503, "{service}: {}", reply.text());
    }
    assert_eq!(
        backend.requests(),
        0,
        "an unready endpoint takes no requests"
    );
    mesh.wait_for_gateway_log(&[&format!("empty.{ns}"), "503", "UH"])
        .await;
    let host = format!("empty.{ns}.svc.cluster.local");
    mesh.wait_for_metric(
        "istio_requests_total",
        &[("destination_service", &host), ("response_code", "503")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn route_timeout_gets_504() {
    let (mesh, _backends, addr) = web_mesh("to", ServicePort::new("http-web", PORT), |ns| {
        vec![
            VirtualService::new("web", ns)
                .host("web")
                .http(HttpRoute::new().to(Destination::new("web")).timeout("0.3s"))
                .into(),
        ]
    })
    .await;
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/delay/1", "a fast request to pass", |r| {
        r.status == 200
    })
    .await;
    let reply = client
        .get(addr, "/delay/5000")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        reply.status,
        504,
        "a request slower than the route timeout: {}",
        reply.text()
    );
    let reply = client
        .get(addr, "/delay/10")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        reply.status, 200,
        "the connection and route still work after a timeout"
    );
    mesh.wait_for_gateway_log(&["/delay/5000", "504", "UT"])
        .await;
}

#[tokio::test]
async fn retries_hide_a_failing_endpoint() {
    let (_mesh, backends, addr) = web_mesh("rt", ServicePort::new("http-web", PORT), |ns| {
        vec![
            VirtualService::new("web", ns)
                .host("web")
                .http(
                    HttpRoute::new()
                        .to(Destination::new("web"))
                        .retries(3, "5xx", None),
                )
                .into(),
        ]
    })
    .await;
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "a first 200", |r| r.status == 200).await;

    // Every request that lands on `a` fails; retries must carry it to `b`.
    backends[0].set_status(Some(503));
    for i in 0..20 {
        let reply = client
            .get(addr, "/")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            reply.status, 200,
            "request {i} was not retried away from the failing endpoint"
        );
        assert_eq!(reply.backend(), "b");
    }
    assert!(
        backends[0].requests() > 1,
        "the failing endpoint was never tried, so nothing was retried"
    );

    // A request failing everywhere is attempted exactly 1 + attempts times.
    let before: u64 = backends.iter().map(|b| b.requests()).sum();
    let reply = client
        .get(addr, "/status/500")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        reply.status, 500,
        "after the last retry the upstream's answer passes through"
    );
    let tries = backends.iter().map(|b| b.requests()).sum::<u64>() - before;
    assert_eq!(tries, 4, "retries.attempts = 3 means 4 tries in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_90_10() {
    let (_mesh, _backends, addr) = web_mesh("split", ServicePort::new("http-web", PORT), |ns| {
        vec![
            subsets(ns),
            VirtualService::new("web", ns)
                .host("web")
                .http(
                    HttpRoute::new()
                        .to(Destination::new("web").subset("v1").weight(90))
                        .to(Destination::new("web").subset("v2").weight(10)),
                )
                .into(),
        ]
    })
    .await;
    // The VirtualService was there before the gateway started, so /ready implies the split.
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "a first 200", |r| r.status == 200).await;

    const TOTAL: usize = 2000;
    const CLIENTS: usize = 4;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let client = HttpClient::http1();
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..TOTAL / CLIENTS {
                let reply = client
                    .get(addr, "/")
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}"));
                assert_eq!(reply.status, 200);
                *counts.entry(reply.backend().to_string()).or_default() += 1;
            }
            counts
        }));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        for (backend, n) in task.await.unwrap_or_else(|e| panic!("{e}")) {
            *counts.entry(backend).or_default() += n;
        }
    }
    let v1 = counts.get("a").copied().unwrap_or(0);
    let v2 = counts.get("b").copied().unwrap_or(0);
    assert_eq!(
        v1 + v2,
        TOTAL,
        "responses from unexpected backends: {counts:?}"
    );
    let share = v1 as f64 / TOTAL as f64;
    assert!(
        (0.85..=0.95).contains(&share),
        "v1 got {:.1} % ({counts:?}), want 90 ± 5 %",
        share * 100.0
    );
}

#[tokio::test]
async fn header_match_routes_to_a_subset() {
    let (_mesh, _backends, addr) = web_mesh("hdr", ServicePort::new("http-web", PORT), |ns| {
        vec![
            subsets(ns),
            VirtualService::new("web", ns)
                .host("web")
                .http(
                    HttpRoute::new()
                        .name("jason")
                        .matching(Match::new().header_exact("end-user", "jason"))
                        .to(Destination::new("web").subset("v2")),
                )
                .http(
                    HttpRoute::new()
                        .matching(Match::new().uri_regex("/books/[0-9]+"))
                        .to(Destination::new("web").subset("v2")),
                )
                .http(HttpRoute::new().to(Destination::new("web").subset("v1")))
                .into(),
        ]
    })
    .await;
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "the subset routes", |r| {
        r.backend() == "a"
    })
    .await;
    for _ in 0..10 {
        let plain = client
            .get(addr, "/")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(plain.backend(), "a", "no match: v1");
        let jason = client
            .request(http::Method::GET, addr, "/", &[("end-user", "jason")])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(jason.backend(), "b", "end-user: jason goes to v2");
        let book = client
            .get(addr, "/books/42")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(book.backend(), "b", "regex match /books/[0-9]+ goes to v2");
        let not_book = client
            .get(addr, "/books/42/reviews")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(not_book.backend(), "a", "the regex is a full match");
    }
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_endpoint() {
    let mut mesh = Mesh::new("cf");
    let backends = mesh.backends(&["a", "b"]).await;
    // b is listed as ready but its process is gone before any traffic: every connect to it
    // is refused, and the default retry policy (connect-failure) must hide that. (Stopping
    // it after it served would test stale pooled connections instead, a different race.)
    backends[1].stop();
    let objects = mesh.service_objects(
        "web",
        ServicePort::new("http-web", PORT),
        &[(&backends[0], "v1"), (&backends[1], "v1")],
    );
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    let client = HttpClient::http1();
    wait_for_reply(&client, addr, "/", "the listener to serve", |r| {
        r.status == 200
    })
    .await;
    client
        .assert_all_served_by(addr, 20, "a", "every request")
        .await;
}

#[tokio::test]
async fn app_protocol_takes_precedence_over_the_port_name() {
    // Named like opaque TCP, declared h2c: the port is HTTP/2, upstream included.
    let port = ServicePort::new("tcp-web", PORT).app_protocol("kubernetes.io/h2c");
    let (_mesh, _backends, addr) = web_mesh("approto", port, |_| vec![]).await;
    let reply = wait_for_reply(&HttpClient::h2c(), addr, "/", "a 200 over h2c", |r| {
        r.status == 200
    })
    .await;
    assert_eq!(
        reply.header("x-version"),
        "HTTP/2.0",
        "appProtocol kubernetes.io/h2c means an HTTP/2 upstream"
    );
}

#[tokio::test]
async fn opaque_tcp_port_is_proxied_per_connection() {
    let (_mesh, backends, addr) =
        web_mesh("tcp", ServicePort::new("tcp-web", PORT), |_| vec![]).await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        // One keep-alive connection per client: a TCP proxy picks the endpoint once per
        // connection, so every request on it lands on the same backend.
        let client = HttpClient::http1();
        let first = wait_for_reply(&client, addr, "/", "a 200 through the TCP proxy", |r| {
            r.status == 200
        })
        .await;
        for _ in 0..5 {
            let reply = client
                .get(addr, "/")
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(
                reply.backend(),
                first.backend(),
                "requests on one TCP connection split across endpoints"
            );
        }
        seen.insert(first.backend().to_string());
    }
    assert_eq!(
        seen.len(),
        2,
        "connections are balanced over both endpoints: {seen:?}"
    );
    assert!(backends.iter().all(|b| b.requests() > 0));
}

#[tokio::test]
async fn opted_out_services_get_no_listener() {
    let mut mesh = Mesh::new("optout");
    let ns = mesh.ns.clone();
    let quiet_ns = format!("{ns}-off");
    let backend = mesh.backends(&["a"]).await.remove(0);
    let port = backend.addr().port();
    let service = |name: &str, namespace: &str| -> Vec<serde_json::Value> {
        vec![
            Service::new(name, namespace)
                .port(ServicePort::new("http", PORT).target(port))
                .into(),
            EndpointSlice::new(&format!("{name}-x1"), namespace, name)
                .port("http", port)
                .endpoint(manifests::Endpoint::new(backend.addr().ip()))
                .into(),
        ]
    };
    let mut objects = service("web", &ns);
    objects.extend(service("hidden", &ns));
    objects[2] = Service::new("hidden", &ns)
        .label("corridor.io/mesh", "disabled")
        .port(ServicePort::new("http", PORT).target(port))
        .into();
    objects.push(
        manifests::Namespace::new(&quiet_ns)
            .label("corridor.io/mesh", "disabled")
            .into(),
    );
    objects.extend(service("web", &quiet_ns));
    mesh.write("all.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;

    mesh.service_addr("web", PORT).await;
    let listeners = mesh
        .admin_get("/listeners?format=json")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .text();
    assert!(
        !listeners.contains(&format!("hidden.{ns}.")),
        "a Service labelled corridor.io/mesh=disabled was meshed: {listeners}"
    );
    assert!(
        !listeners.contains(&format!(".{quiet_ns}.")),
        "a namespace labelled corridor.io/mesh=disabled was meshed: {listeners}"
    );
}

#[tokio::test]
async fn endpoint_dying_with_pooled_connections_fails_no_request() {
    let (_mesh, backends, addr) =
        web_mesh("stale", ServicePort::new("http-web", PORT), |_| vec![]).await;
    let client = HttpClient::http1();
    // Both endpoints serve, so the gateway holds pooled keep-alive connections to both.
    wait_for_reply(&client, addr, "/", "a first 200", |r| r.status == 200).await;
    for _ in 0..10 {
        client
            .get(addr, "/")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    assert!(backends.iter().all(|b| b.requests() > 0));
    // b's process dies (closing its connections) while its endpoint is still listed: an
    // idempotent request that meets a dead pooled connection is resent, and connects that
    // are refused are retried on a.
    backends[1].stop();
    client
        .assert_all_served_by(addr, 20, "a", "every request")
        .await;
}
