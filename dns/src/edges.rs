//! CoreDNS's HTTP edges, so existing probes and scrapes work unchanged: `/health` (the
//! health plugin, :8080), `/ready` (the ready plugin, :8181: 200 once a name table is
//! loaded) and `/metrics` (the prometheus plugin, :9153). Each address serves every path;
//! an address given for several roles is bound once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{HEALTH_DURATION, Metrics};
use crate::server::SharedZone;

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct EdgeState {
    /// The zone; ready once it is loaded.
    pub zone: SharedZone,
    /// Where the name table comes from (for the not-ready message).
    pub xds: String,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
}

/// The bound address of each role.
#[derive(Debug, Clone, Copy)]
pub struct EdgeAddrs {
    /// `/health`.
    pub health: SocketAddr,
    /// `/ready`.
    pub ready: SocketAddr,
    /// `/metrics`.
    pub metrics: SocketAddr,
}

/// Binds the three roles' addresses (sharing one listener where they are equal and not
/// port 0) and serves them until `stop` turns true.
pub async fn start(
    wanted: EdgeAddrs,
    state: EdgeState,
    stop: watch::Receiver<bool>,
) -> std::io::Result<EdgeAddrs> {
    let mut bound: BTreeMap<SocketAddr, SocketAddr> = BTreeMap::new();
    let mut addr_of = async |want: SocketAddr| -> std::io::Result<SocketAddr> {
        if want.port() != 0
            && let Some(a) = bound.get(&want)
        {
            return Ok(*a);
        }
        let listener = TcpListener::bind(want).await?;
        let local = listener.local_addr()?;
        bound.insert(want, local);
        tokio::spawn(serve(listener, state.clone(), stop.clone()));
        Ok(local)
    };
    Ok(EdgeAddrs {
        health: addr_of(wanted.health).await?,
        ready: addr_of(wanted.ready).await?,
        metrics: addr_of(wanted.metrics).await?,
    })
}

async fn serve(listener: TcpListener, state: EdgeState, mut stop: watch::Receiver<bool>) {
    let state = Arc::new(state);
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "health/ready/metrics accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(state: &EdgeState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/health" => {
            let started = Instant::now();
            let r = text(StatusCode::OK, "OK");
            state
                .metrics
                .histogram(HEALTH_DURATION, Vec::new())
                .record(started.elapsed().as_secs_f64());
            r
        }
        "/ready" => {
            if state.zone.load().is_some() {
                text(StatusCode::OK, "OK")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "not ready: waiting for the first name table from the controller at {}\n",
                        state.xds
                    ),
                )
            }
        }
        "/metrics" => {
            state.metrics.upkeep();
            let mut r = text(StatusCode::OK, state.metrics.render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found: try /health, /ready or /metrics\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
