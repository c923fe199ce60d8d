//! The HTTP echo server: HTTP/1.1 and HTTP/2 over cleartext (prior knowledge) on one
//! port. Every request is answered 200 with its own body and content type, and the
//! backend's name in `x-backend`; an injected error is a 503.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderName, HeaderValue},
    service::service_fn,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpStream, time::Instant};
use tracing::debug;

use super::{Backend, INJECTED};

/// The header naming the backend that answered.
pub const BACKEND_HEADER: HeaderName = HeaderName::from_static("x-backend");

/// `x-backend` of a backend started without `--name`.
const UNNAMED: &str = "echo";

/// Serves one connection, HTTP/1.1 or h2c as the client's first bytes say.
pub(super) async fn connection(stream: TcpStream, backend: Arc<Backend>) {
    let _ = stream.set_nodelay(true);
    let name = backend.config.name.as_deref().unwrap_or(UNNAMED);
    let name = HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static(UNNAMED));
    let service = service_fn(move |req| answer(req, backend.clone(), name.clone()));
    let served = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        debug!(error = %e, "connection failed");
    }
}

async fn answer(
    req: Request<Incoming>,
    backend: Arc<Backend>,
    name: HeaderValue,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let plan = backend.faults.plan();
    backend.log_call(|| {
        format!(
            "call http method={} path={}",
            req.method(),
            req.uri().path()
        )
    });
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    // A body that breaks off is answered with what came: the client is gone anyway.
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    super::clock::sleep_until(arrived + plan.wait).await;
    let mut resp = if plan.fail {
        let mut resp = Response::new(Full::new(Bytes::from_static(INJECTED.as_bytes())));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        resp
    } else {
        let mut resp = Response::new(Full::new(body));
        if let Some(content_type) = content_type {
            resp.headers_mut().insert(CONTENT_TYPE, content_type);
        }
        resp
    };
    resp.headers_mut().insert(BACKEND_HEADER, name);
    Ok(resp)
}
