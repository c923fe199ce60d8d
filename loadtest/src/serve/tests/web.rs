//! The HTTP and gRPC backends on port 0, called with hyper (HTTP/1.1 and h2c) and
//! tonic: echoes, the backend header, injected errors, the call log's shape.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header::CONTENT_TYPE};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::super::*;
use crate::load::{
    Target,
    grpc::{GrpcTarget, bytes_field_message},
};

async fn backend(protocol: Protocol, error_rate: f64) -> Echo {
    start(EchoConfig {
        name: Some("web-1".into()),
        error_rate,
        ..EchoConfig::new(protocol)
    })
    .await
    .unwrap()
}

/// POSTs `body` over HTTP/1.1 or h2c: status, `x-backend`, content type, body.
async fn post(
    addr: SocketAddr,
    http2: bool,
    body: &'static str,
) -> (StatusCode, String, Option<String>, Bytes) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let req = Request::post(format!("http://{addr}/echo"))
        .header(CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = if http2 {
        let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        s.send_request(req).await.unwrap()
    };
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v: &hyper::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let backend = header(BACKEND_HEADER).unwrap_or_default();
    let content_type = header(CONTENT_TYPE);
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, backend, content_type, body)
}

#[tokio::test]
async fn http_echoes_the_body_over_http1_and_h2c() {
    let echo = backend(Protocol::Http, 0.0).await;
    for http2 in [false, true] {
        let (status, backend, content_type, body) = post(echo.addr(), http2, "ping").await;
        assert_eq!(status, StatusCode::OK, "http2={http2}");
        assert_eq!(backend, "web-1");
        assert_eq!(content_type.as_deref(), Some("text/plain"));
        assert_eq!(body, "ping");
    }
    echo.shutdown().await;
}

#[tokio::test]
async fn http_injected_errors_are_503() {
    let echo = backend(Protocol::Http, 1.0).await;
    let (status, backend, _, body) = post(echo.addr(), false, "ping").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(backend, "web-1");
    assert_eq!(body, INJECTED);
    echo.shutdown().await;
}

#[tokio::test]
async fn grpc_echoes_any_method_and_injects_unavailable() {
    let echo = backend(Protocol::Grpc, 0.0).await;
    let payload = bytes_field_message(300);
    for method in ["/echo.Echo/Say", "/other.pkg.Thing/Do"] {
        let target = GrpcTarget::new(echo.addr(), method, payload.clone()).unwrap();
        let conn = target.connect().await.unwrap();
        let answer = target.call_with(&conn, payload.clone()).await.unwrap();
        assert_eq!(answer.unwrap(), payload, "{method}");
    }
    echo.shutdown().await;

    let failing = backend(Protocol::Grpc, 1.0).await;
    let target = GrpcTarget::new(failing.addr(), "/e.E/M", Bytes::new()).unwrap();
    let conn = target.connect().await.unwrap();
    let status = target
        .call_with(&conn, Bytes::new())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), INJECTED);
    failing.shutdown().await;
}
