//! The harness and the peers on their own, without Corridor: if these fail, every other
//! end-to-end failure is suspect.

use std::time::Duration;

use corridor_tests::manifests::{self, Endpoint, EndpointSlice, Service, ServicePort};
use corridor_tests::python::{GrpcServer, grpc_client};
use corridor_tests::{Backend, HttpClient, Load};

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn backend_answers_http1_and_h2c() -> anyhow::Result<()> {
    let backend = Backend::start("alpha", loopback()).await?;
    let h1 = HttpClient::http1();
    let reply = h1.get(backend.addr(), "/hello").await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "alpha");
    assert_eq!(reply.backend(), "alpha");
    assert_eq!(reply.header("x-path"), "/hello");
    assert_eq!(reply.header("x-version"), "HTTP/1.1");

    let reply = HttpClient::h2c().get(backend.addr(), "/").await?;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.header("x-version"), "HTTP/2.0");

    assert_eq!(h1.get(backend.addr(), "/status/418").await?.status, 418);
    assert_eq!(h1.get(backend.addr(), "/delay/20").await?.status, 200);
    backend.set_status(Some(503));
    assert_eq!(h1.get(backend.addr(), "/").await?.status, 503);
    backend.set_status(None);
    assert_eq!(h1.get(backend.addr(), "/").await?.status, 200);
    assert_eq!(backend.requests(), 6);
    Ok(())
}

#[tokio::test]
async fn stopped_backend_refuses_connections() -> anyhow::Result<()> {
    let backend = Backend::start("beta", loopback()).await?;
    let client = HttpClient::http1();
    client.get(backend.addr(), "/").await?;
    backend.stop();
    corridor_tests::eventually(Duration::from_secs(5), "backend to stop", || {
        let client = HttpClient::http1();
        let addr = backend.addr();
        async move {
            match client.get(addr, "/").await {
                Ok(reply) => anyhow::bail!("still answering {}", reply.status),
                Err(_) => Ok(()),
            }
        }
    })
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_driver_records_successes_and_failures() -> anyhow::Result<()> {
    let backend = Backend::start("gamma", loopback()).await?;
    let load = Load::start(backend.addr(), "/", 3);
    load.wait_for_more(100, Duration::from_secs(10)).await?;
    let report = load.stop().await;
    report.assert_no_failures("against a healthy backend");
    assert!(report.successes() >= 100);
    assert_eq!(
        report.by_backend().get("gamma").copied(),
        Some(report.successes())
    );

    backend.set_status(Some(500));
    let load = Load::start(backend.addr(), "/", 2);
    load.wait_for_more(10, Duration::from_secs(10)).await?;
    let report = load.stop().await;
    assert_eq!(report.successes(), 0);
    assert!(report.failures().len() >= 10);
    Ok(())
}

#[test]
fn manifests_render_as_kubernetes_yaml() -> anyhow::Result<()> {
    let text = manifests::yaml([
        Service::new("web", "ns1")
            .port(ServicePort::new("http-web", 80).target(8080))
            .into(),
        EndpointSlice::new("web-1", "ns1", "web")
            .port("http-web", 8080)
            .endpoint(Endpoint::new("10.0.0.1").pod("web-a").zone("z1"))
            .into(),
    ]);
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .map(serde_yaml_ng::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(docs.len(), 2, "{text}");
    assert_eq!(docs[0]["kind"], "Service");
    assert_eq!(docs[0]["spec"]["ports"][0]["name"], "http-web");
    assert_eq!(docs[0]["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(
        docs[1]["metadata"]["labels"]["kubernetes.io/service-name"],
        "web"
    );
    assert_eq!(docs[1]["endpoints"][0]["targetRef"]["name"], "web-a");
    assert_eq!(docs[1]["endpoints"][0]["conditions"]["ready"], true);
    Ok(())
}

#[tokio::test]
async fn grpc_peer_serves_and_calls_directly() -> anyhow::Result<()> {
    let server = GrpcServer::start("direct", loopback()).await?;
    let calls = grpc_client(server.addr, &["--method", "unary", "--message", "ping"]).await?;
    assert_eq!(calls[0].code(), "OK");
    assert_eq!(calls[0].messages(), vec!["ping"]);
    assert_eq!(calls[0].trailer("x-served-by"), "direct");

    let calls = grpc_client(
        server.addr,
        &["--method", "stream", "--message", "m", "--count", "3"],
    )
    .await?;
    assert_eq!(calls[0].messages(), vec!["m-0", "m-1", "m-2"]);

    let calls = grpc_client(
        server.addr,
        &["--fail-code", "5", "--fail-message", "no such thing"],
    )
    .await?;
    assert_eq!(calls[0].code(), "NOT_FOUND");
    assert_eq!(calls[0].details(), "no such thing");
    assert_eq!(calls[0].trailer("x-served-by"), "direct");
    Ok(())
}

#[test]
fn envoy_from_the_venv_is_1_40() -> anyhow::Result<()> {
    let output = std::process::Command::new(corridor_tests::envoy::envoy_binary())
        .arg("--version")
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("/1.40."), "unexpected envoy version: {text}");
    Ok(())
}
