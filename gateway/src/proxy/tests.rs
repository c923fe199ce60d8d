//! The proxy end to end in one process: hand-driven ADS, real hyper backends and clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use corridor_proto::envoy::config::cluster::v3 as cl;
use corridor_proto::envoy::config::route::v3 as rt;
use corridor_proto::google::protobuf::Duration as PbDuration;
use corridor_proto::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::app::{Bound, Config, build};
use crate::testing::*;

type TestClient = Client<HttpConnector, Full<Bytes>>;

struct Harness {
    ads: TestAds,
    gw: Bound,
    addr: SocketAddr,
    h1: TestClient,
    h2: TestClient,
}

impl Harness {
    async fn start(
        routes: Vec<rt::Route>,
        clusters: Vec<(cl::Cluster, Vec<(SocketAddr, bool)>)>,
    ) -> Harness {
        let mut ads = TestAds::start().await;
        let mut c = Config::new(ads.addr.to_string());
        c.admin_address = "127.0.0.1:0".parse().unwrap();
        c.probe_address = Some("127.0.0.1:0".parse().unwrap());
        c.drain_timeout = Duration::from_secs(5);
        let gw = build(c).await.unwrap();
        ads.request_where(CLUSTER, |_| true).await;
        let listener = http_listener("svc", "127.0.0.1:0".parse().unwrap(), "svc");
        ads.push(LISTENER, vec![resource("svc", "1", listener)], vec![]);
        let cds = clusters
            .iter()
            .map(|(c, _)| resource(&c.name, "1", c.clone()))
            .collect();
        ads.push(CLUSTER, cds, vec![]);
        ads.push(
            ROUTE,
            vec![resource("svc", "1", route_config("svc", routes))],
            vec![],
        );
        let eds = clusters
            .iter()
            .map(|(c, eps)| resource(&c.name, "1", assignment(&c.name, eps)))
            .collect();
        ads.push(ENDPOINT, eds, vec![]);
        eventually(|| async { gw.ready().is_ready().then_some(()) }).await;
        let addr = gw.listeners()[0].1;
        let h1 = Client::builder(TokioExecutor::new()).build_http();
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        Harness {
            ads,
            gw,
            addr,
            h1,
            h2,
        }
    }

    fn req(&self, path: &str) -> Request<Full<Bytes>> {
        Request::get(format!("http://{}{path}", self.addr))
            .body(Full::default())
            .unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let resp = self.h1.request(self.req(path)).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn admin(&self, path: &str) -> String {
        let uri = format!("http://{}{path}", self.gw.admin_addr);
        let resp = self
            .h1
            .request(Request::get(uri).body(Full::default()).unwrap())
            .await
            .unwrap();
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
    }
}

fn timeout(ms: u64) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

#[tokio::test]
async fn routes_to_the_backend_with_request_id_and_forwarded_headers() {
    let be = backend(Arc::new(|req: Request<hyper::body::Incoming>| {
        Box::pin(async move {
            let h = req.headers();
            let body = format!(
                "id={} xff={} host={} path={}",
                h.contains_key("x-request-id"),
                h.get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
                h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("-"),
                req.uri().path(),
            );
            Response::new(full(body))
        })
    }))
    .await;
    let mut api = prefix_route("api", "/api/", "c");
    action_mut(&mut api).prefix_rewrite = "/v2/".into();
    let h = Harness::start(
        vec![api, prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(be, true)])],
    )
    .await;
    let (status, _, body) = h.get("/hello").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("id=true xff=127.0.0.1 host="), "{body}");
    assert!(body.ends_with("path=/hello"), "{body}");
    let (_, _, body) = h.get("/api/items?x=1").await;
    assert!(body.ends_with("path=/v2/items"), "{body}");

    // Metrics, listeners and config dump reflect the traffic and the configuration.
    let metrics = h.admin("/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
        .unwrap_or("");
    assert!(
        line.contains("destination_service=\"svc.default.svc.cluster.local\""),
        "{metrics}"
    );
    assert!(line.contains("request_protocol=\"http\""), "{line}");
    assert!(
        metrics.contains("istio_request_duration_milliseconds_bucket"),
        "{metrics}"
    );
    let listeners: serde_json::Value = serde_json::from_str(&h.admin("/listeners").await).unwrap();
    assert_eq!(
        listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"],
        h.addr.port()
    );
    let dump: serde_json::Value = serde_json::from_str(&h.admin("/config_dump").await).unwrap();
    assert_eq!(
        dump["configs"][1]["dynamic_listeners"][0]["active_state"]["listener"]["name"],
        "svc"
    );
    assert_eq!(
        dump["configs"][2]["dynamic_active_clusters"][0]["cluster"]["name"],
        "c"
    );
    assert_eq!(dump["configs"][0]["bootstrap"]["drain_timeout"], "5s");
    assert!(
        h.admin("/clusters")
            .await
            .contains(&format!("c::{be}::rq_total::2"))
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn no_route_is_404_and_unimplemented_for_grpc() {
    let be = text_backend(200, "ok").await;
    let h = Harness::start(
        vec![prefix_route("api", "/api", "c")],
        vec![(cluster("c", false), vec![(be, true)])],
    )
    .await;
    let (status, _, body) = h.get("/other").await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "no route"));
    let req = Request::post(format!("http://{}/pkg.Svc/Method", h.addr))
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap();
    let resp = h.h2.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn no_healthy_endpoint_is_503_and_unavailable_for_grpc() {
    let be = text_backend(200, "ok").await;
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(be, false)])],
    )
    .await;
    let (status, _, body) = h.get("/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream")
    );
    let req = Request::post(format!("http://{}/pkg.Svc/Method", h.addr))
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap();
    let resp = h.h2.request(req).await.unwrap();
    assert_eq!(resp.headers()["grpc-status"], "14");
    let metrics = h.admin("/metrics").await;
    assert!(metrics.contains("response_flags=\"UH\""), "{metrics}");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn connect_failure_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(closed, true)])],
    )
    .await;
    let (status, _, body) = h.get("/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "upstream connect error")
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn route_timeout_is_504() {
    let slow = backend(Arc::new(|_req| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Response::new(full("late"))
        })
    }))
    .await;
    let mut r = prefix_route("all", "/", "c");
    action_mut(&mut r).timeout = timeout(100);
    let h = Harness::start(vec![r], vec![(cluster("c", false), vec![(slow, true)])]).await;
    let (status, _, body) = h.get("/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn retries_a_503_on_the_other_endpoint() {
    let bad = text_backend(503, "bad").await;
    let good = text_backend(200, "good").await;
    let mut r = prefix_route("all", "/", "c");
    action_mut(&mut r).retry_policy = Some(retry_policy("5xx", 1));
    let h = Harness::start(
        vec![r],
        vec![(cluster("c", false), vec![(bad, true), (good, true)])],
    )
    .await;
    for _ in 0..6 {
        let (status, _, body) = h.get("/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    }
    // POST bodies are replayed on the retry.
    for _ in 0..4 {
        let req = Request::post(format!("http://{}/", h.addr))
            .body(Full::new(Bytes::from("payload")))
            .unwrap();
        let resp = h.h1.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let metrics = h.admin("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("corridor_upstream_rq_retry_total{cluster=\"c\"}")),
        "{metrics}"
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn h2c_passthrough_keeps_trailers() {
    let grpc = backend(Arc::new(|req: Request<hyper::body::Incoming>| {
        Box::pin(async move {
            assert_eq!(req.version(), http::Version::HTTP_2);
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let _ = req.into_body().collect().await;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            trailers.insert("x-authority", authority.parse().unwrap());
            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut resp = Response::new(StreamBody::new(futures::stream::iter(frames)).boxed());
            resp.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            resp
        })
    }))
    .await;
    let h = Harness::start(
        vec![prefix_route("all", "/", "g")],
        vec![(cluster("g", true), vec![(grpc, true)])],
    )
    .await;
    let req = Request::post(format!("http://{}/pkg.Svc/Method", h.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x00")))
        .unwrap();
    let resp = h.h2.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-authority"], h.addr.to_string().as_str());
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
    let metrics = h.admin("/metrics").await;
    assert!(metrics.contains("request_protocol=\"grpc\""), "{metrics}");
    assert!(metrics.contains("grpc_response_status=\"0\""), "{metrics}");
    h.gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let slow = backend(Arc::new(move |_req| {
        let s = s.clone();
        Box::pin(async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Response::new(full("done"))
        })
    }))
    .await;
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(slow, true)])],
    )
    .await;
    let client = h.h1.clone();
    let req = h.req("/");
    let inflight = tokio::spawn(async move { client.request(req).await });
    eventually(|| async { (started.load(Ordering::SeqCst) == 1).then_some(()) }).await;
    let addr = h.addr;
    h.gw.shutdown().await;
    let resp = inflight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"done"
    );
    // The listener no longer accepts.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn config_pushes_never_drop_in_flight_requests() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let slow = backend(Arc::new(move |_req| {
        let s = s.clone();
        Box::pin(async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Response::new(full("slow"))
        })
    }))
    .await;
    let other = text_backend(200, "other").await;
    let mut h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(slow, true)])],
    )
    .await;
    let client = h.h1.clone();
    let req = h.req("/");
    let inflight = tokio::spawn(async move { client.request(req).await });
    eventually(|| async { (started.load(Ordering::SeqCst) == 1).then_some(()) }).await;
    // Move the route to another cluster and take the slow endpoint away.
    h.ads.push(
        CLUSTER,
        vec![resource("c2", "1", cluster("c2", false))],
        vec![],
    );
    h.ads.push(
        ENDPOINT,
        vec![resource("c2", "1", assignment("c2", &[(other, true)]))],
        vec![],
    );
    h.ads.push(
        ROUTE,
        vec![resource(
            "svc",
            "2",
            route_config("svc", vec![prefix_route("all", "/", "c2")]),
        )],
        vec![],
    );
    h.ads.push(
        ENDPOINT,
        vec![resource("c", "2", assignment("c", &[]))],
        vec![],
    );
    eventually(|| async {
        let (_, _, body) = h.get("/").await;
        (body == "other").then_some(())
    })
    .await;
    let resp = inflight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"slow"
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn admin_drain_and_logging() {
    let be = text_backend(200, "ok").await;
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(be, true)])],
    )
    .await;
    assert_eq!(h.admin("/ready").await, "LIVE\n");
    assert_eq!(h.admin("/healthz").await, "OK\n");
    let post = |path: &str| {
        Request::post(format!("http://{}{path}", h.gw.admin_addr))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    // No reloadable subscriber in tests: the endpoint says so instead of pretending.
    let resp = h.h1.request(post("/logging?level=debug")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    let resp = h.h1.request(post("/drain")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.admin("/ready").await, "DRAINING\n");
    let addr = h.addr;
    eventually(|| async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    h.gw.shutdown().await;
}

#[tokio::test]
async fn probe_address_serves_only_the_read_only_endpoints() {
    let be = text_backend(200, "ok").await;
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(be, true)])],
    )
    .await;
    let probes = h.gw.probe_addr.unwrap();
    let call = |method: &str, path: &str| {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{probes}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let client = h.h1.clone();
        async move {
            let resp = client.request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(
        call("GET", "/ready").await,
        (StatusCode::OK, "LIVE\n".to_string())
    );
    assert_eq!(call("GET", "/healthz").await.0, StatusCode::OK);
    let (status, metrics) = call("GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("# TYPE"), "{metrics}");
    for (method, path) in [
        ("POST", "/drain"),
        ("GET", "/config_dump"),
        ("POST", "/logging?level=debug"),
    ] {
        assert_eq!(
            call(method, path).await.0,
            StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }
    assert_eq!(
        h.admin("/ready").await,
        "LIVE\n",
        "the probe port drained nothing"
    );
    h.gw.shutdown().await;
}

#[tokio::test]
async fn tcp_proxy_relays_bytes() {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let mut ads = TestAds::start().await;
    let mut c = Config::new(ads.addr.to_string());
    c.admin_address = "127.0.0.1:0".parse().unwrap();
    let gw = build(c).await.unwrap();
    ads.request_where(CLUSTER, |_| true).await;
    ads.push(
        LISTENER,
        vec![resource(
            "t",
            "1",
            tcp_listener("t", "127.0.0.1:0".parse().unwrap(), "tc"),
        )],
        vec![],
    );
    ads.push(
        CLUSTER,
        vec![resource("tc", "1", cluster("tc", false))],
        vec![],
    );
    ads.push(
        ENDPOINT,
        vec![resource("tc", "1", assignment("tc", &[(echo_addr, true)]))],
        vec![],
    );
    eventually(|| async { gw.ready().is_ready().then_some(()) }).await;
    let addr = gw.listeners()[0].1;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping over tcp").await.unwrap();
    let mut buf = [0u8; 13];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping over tcp");
    drop(s);
    gw.shutdown().await;
}

#[tokio::test]
async fn idempotent_requests_survive_a_pooled_connection_dying_under_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Answers the first request of each connection, then closes on the second one without
    // answering: what a keep-alive timeout racing with a new request looks like.
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = raw.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = s.read(&mut chunk).await;
                // Dropped: closed with the second request unanswered.
            });
        }
    });
    let h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(raw_addr, true)])],
    )
    .await;
    for i in 0..5 {
        let (status, _, body) = h.get("/").await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "ok"), "request {i}");
    }
    h.gw.shutdown().await;
}

#[tokio::test]
async fn a_route_to_a_new_cluster_waits_for_its_endpoints() {
    let a = text_backend(200, "a").await;
    let b = text_backend(200, "b").await;
    let mut h = Harness::start(
        vec![prefix_route("all", "/", "c")],
        vec![(cluster("c", false), vec![(a, true)])],
    )
    .await;
    // The controller's order: the new cluster, then the route; the endpoints only after
    // the gateway subscribes to them.
    let n = h.ads.push(
        CLUSTER,
        vec![resource("c2", "1", cluster("c2", false))],
        vec![],
    );
    h.ads
        .request_where(CLUSTER, |r| r.response_nonce == n)
        .await;
    let n = h.ads.push(
        ROUTE,
        vec![resource(
            "svc",
            "2",
            route_config("svc", vec![prefix_route("all", "/", "c2")]),
        )],
        vec![],
    );
    h.ads.request_where(ROUTE, |r| r.response_nonce == n).await;
    let (status, _, body) = h.get("/").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "a"),
        "the old route serves while c2 warms up"
    );
    let n = h.ads.push(
        ENDPOINT,
        vec![resource("c2", "1", assignment("c2", &[(b, true)]))],
        vec![],
    );
    h.ads
        .request_where(ENDPOINT, |r| r.response_nonce == n)
        .await;
    let (status, _, body) = h.get("/").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "b"));
    h.gw.shutdown().await;
}
