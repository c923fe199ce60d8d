//! The gRPC echo server: any unary method on any path is answered with the request
//! message as it came (bytes, never parsed), through tonic's server framing; an injected
//! error is status UNAVAILABLE.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpStream, time::Instant};
use tracing::debug;

use super::{Backend, INJECTED};
use crate::load::grpc::RawCodec;

/// Serves one h2c connection.
pub(super) async fn connection(stream: TcpStream, backend: Arc<Backend>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let backend = backend.clone();
        async move {
            let arrived = Instant::now();
            let plan = backend.faults.plan();
            backend.log_call(|| format!("call grpc path={}", req.uri().path()));
            let echo = tower::service_fn(move |call: tonic::Request<Bytes>| async move {
                super::clock::sleep_until(arrived + plan.wait).await;
                if plan.fail {
                    return Err(tonic::Status::unavailable(INJECTED));
                }
                Ok(tonic::Response::new(call.into_inner()))
            });
            let resp = tonic::server::Grpc::new(RawCodec).unary(echo, req).await;
            Ok::<_, Infallible>(resp)
        }
    });
    let served = auto::Builder::new(TokioExecutor::new())
        .http2_only()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        debug!(error = %e, "connection failed");
    }
}
