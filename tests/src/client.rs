//! HTTP clients for talking to the gateway: HTTP/1.1 with keep-alive, and h2c with prior
//! knowledge. Both are hyper-util's pooled client, so a test reuses its connections the way
//! a real service would.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest a single request (response head and body) may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The HTTP version the response came with.
    pub version: http::Version,
}

impl Reply {
    /// The `x-backend` header set by [`crate::Backend`], or "" when absent.
    pub fn backend(&self) -> &str {
        self.header("x-backend")
    }

    /// A header as text, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl HttpClient {
    /// HTTP/1.1 with keep-alive.
    pub fn http1() -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { inner }
    }

    /// HTTP/2 over cleartext with prior knowledge (no upgrade).
    pub fn h2c() -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        HttpClient { inner }
    }

    /// Sends `n` sequential `GET /` to `addr` and asserts each is a 200 from `backend`
    /// (`why` goes into the failure message).
    pub async fn assert_all_served_by(&self, addr: SocketAddr, n: usize, backend: &str, why: &str) {
        for i in 0..n {
            let reply = self
                .get(addr, "/")
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e:#}"));
            assert_eq!(
                (reply.status.as_u16(), reply.backend()),
                (200, backend),
                "request {i} of {n}: {why}"
            );
        }
    }

    /// `GET http://addr/path`.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::GET, addr, path, &[]).await
    }

    /// A body-less request with extra headers.
    pub async fn request(
        &self,
        method: Method,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .context("building request")?;
        let exchange = async {
            let response = self.inner.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
                version: parts.version,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("no response from {addr}{path} within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("request to {addr}{path}"))
    }
}

/// Sends `GET path` to `addr` until a reply satisfies `accept`, and returns it (panics after
/// [`crate::PATIENCE`]). Transport errors count as "not yet".
pub async fn wait_for_reply(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    what: &str,
    accept: impl Fn(&Reply) -> bool,
) -> Reply {
    let accept = &accept;
    crate::eventually(crate::PATIENCE, what, || async move {
        let reply = client.get(addr, path).await?;
        if accept(&reply) {
            Ok(reply)
        } else {
            anyhow::bail!(
                "got {} from {:?}: {}",
                reply.status,
                reply.backend(),
                reply.text()
            )
        }
    })
    .await
}

/// Sends `GET path` to `addr` back to back until a reply satisfies `shows_change`, and
/// returns how long after `since` that reply arrived (panics after `patience`).
pub async fn time_until_change(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    since: std::time::Instant,
    patience: Duration,
    shows_change: impl Fn(&Reply) -> bool,
) -> Duration {
    let shows_change = &shows_change;
    crate::eventually(patience, "the change to show in a reply", || async move {
        let reply = client.get(addr, path).await?;
        if shows_change(&reply) {
            Ok(since.elapsed())
        } else {
            anyhow::bail!("still {} from {:?}", reply.status, reply.backend())
        }
    })
    .await
}
