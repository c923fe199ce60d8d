//! One request/response exchange: what the access log and metrics report, plus the
//! resources held until the response body is done (active-request counters, the pooled
//! connection, the configuration snapshot). Everything is recorded when it drops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use hyper::client::conn::http1;

use super::HttpListener;
use super::body::RequestBody;
use super::local_reply::ResponseFlags;
use crate::cluster::{ClusterState, Endpoint, Snapshot};
use crate::telemetry::access_log::Line;
use crate::telemetry::metrics::RequestProtocol;
use crate::telemetry::record::{self, PeerRef, Record};
use crate::telemetry::trace::Span;

/// Counts a request as active on its cluster while alive.
#[derive(Debug)]
pub struct ClusterActive(pub Arc<ClusterState>);

impl ClusterActive {
    /// Increments the cluster's active requests.
    pub fn new(c: Arc<ClusterState>) -> Self {
        c.counters.active_rq.fetch_add(1, Ordering::Relaxed);
        c.counters.total_rq.fetch_add(1, Ordering::Relaxed);
        ClusterActive(c)
    }
}

impl Drop for ClusterActive {
    fn drop(&mut self) {
        self.0.counters.active_rq.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request as active on an endpoint while alive.
#[derive(Debug)]
pub struct EndpointActive(pub Arc<Endpoint>);

impl EndpointActive {
    /// Increments the endpoint's active requests.
    pub fn new(e: Arc<Endpoint>) -> Self {
        e.active_rq.fetch_add(1, Ordering::Relaxed);
        e.total_rq.fetch_add(1, Ordering::Relaxed);
        EndpointActive(e)
    }
}

impl Drop for EndpointActive {
    fn drop(&mut self) {
        self.0.active_rq.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The record of one exchange.
#[derive(Debug)]
pub struct Exchange {
    pub(crate) listener: Arc<HttpListener>,
    _snapshot: Arc<Snapshot>,
    /// When the request arrived.
    pub start: Instant,
    /// Request method.
    pub method: Method,
    /// Request URI as received.
    pub uri: Uri,
    /// `Host` header, when the URI has no authority (HTTP/1.1).
    pub host: Option<HeaderValue>,
    /// Downstream protocol.
    pub version: Version,
    /// `x-request-id`.
    pub request_id: HeaderValue,
    /// Route name (none before routing; the access log shows `-`). An `Option` rather
    /// than a `-` string so that starting an exchange allocates nothing.
    pub route: Option<Arc<str>>,
    /// Upstream cluster.
    pub cluster: Option<Arc<str>>,
    /// Upstream endpoint of the last try.
    pub upstream: Option<SocketAddr>,
    /// Status sent downstream.
    pub status: u16,
    /// Response flags bit set.
    pub flags: u16,
    /// Whether the request is gRPC.
    pub grpc: bool,
    /// gRPC status from headers or trailers.
    pub grpc_status: Option<u16>,
    /// Request body bytes read from downstream (allocated only for non-empty bodies).
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// Response body bytes sent downstream.
    pub bytes_out: u64,
    /// The calling workload.
    pub source: PeerRef,
    /// The workload of the endpoint of the last try.
    pub destination: PeerRef,
    /// The gateway's span, when the request is traced (boxed: the exchange is moved on
    /// every request, traced or not).
    pub span: Option<Box<Span>>,
    pub(crate) cluster_active: Option<ClusterActive>,
    pub(crate) endpoint_active: Option<EndpointActive>,
    pub(crate) pool_return: Option<(Arc<Endpoint>, http1::SendRequest<RequestBody>)>,
    complete: bool,
}

impl Exchange {
    /// Starts the record of a request.
    pub fn new(
        listener: Arc<HttpListener>,
        snapshot: Arc<Snapshot>,
        start: Instant,
        parts: &http::request::Parts,
        request_id: HeaderValue,
        grpc: bool,
    ) -> Self {
        let host = if parts.uri.authority().is_none() {
            parts.headers.get(http::header::HOST).cloned()
        } else {
            None
        };
        Exchange {
            listener,
            _snapshot: snapshot,
            start,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            host,
            version: parts.version,
            request_id,
            route: None,
            cluster: None,
            upstream: None,
            status: 0,
            flags: 0,
            grpc,
            grpc_status: None,
            bytes_in: None,
            bytes_out: 0,
            source: PeerRef::unknown(),
            destination: PeerRef::unknown(),
            span: None,
            cluster_active: None,
            endpoint_active: None,
            pool_return: None,
            complete: false,
        }
    }

    /// The request authority for logs.
    pub fn authority(&self) -> &str {
        match (self.uri.authority(), &self.host) {
            (Some(a), _) => a.as_str(),
            (None, Some(h)) => h.to_str().unwrap_or("-"),
            (None, None) => "-",
        }
    }

    /// The upstream finished its response: the connection can serve another request.
    pub fn upstream_complete(&mut self) {
        self.complete = true;
        if let Some((ep, sender)) = self.pool_return.take() {
            ep.pool.checkin(sender);
        }
    }

    /// The upstream response broke off mid-body.
    pub fn upstream_reset(&mut self) {
        self.flags |= ResponseFlags::UC;
        self.pool_return = None;
    }

    /// Reads `grpc-status` from response headers or trailers.
    pub fn observe_grpc_status(&mut self, headers: &HeaderMap) {
        if let Some(s) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.grpc_status = Some(s);
        }
    }

    /// Request body bytes read so far.
    pub fn request_bytes(&self) -> u64 {
        self.bytes_in
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed))
    }

    /// The counter request bodies add to.
    pub fn bytes_in_counter(&mut self) -> Arc<AtomicU64> {
        self.bytes_in
            .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone()
    }

    /// Marks the response as complete without an upstream body.
    pub(crate) fn mark_complete(&mut self) {
        self.complete = true;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // The body was dropped before its end: the client went away (or hyper gave up).
        if !self.complete && self.cluster.is_some() && self.flags & ResponseFlags::UC == 0 {
            self.flags |= ResponseFlags::DC;
        }
        let r = Record {
            protocol: if self.grpc {
                RequestProtocol::Grpc
            } else {
                RequestProtocol::Http
            },
            response_code: self.status,
            http_code: self.status,
            grpc_status: self.grpc_status,
            flags: self.flags,
            source: self.source,
            destination: self.destination,
            route: self.route.as_deref(),
            cluster: self.cluster.as_deref(),
            upstream: self.upstream,
            duration: self.start.elapsed(),
            request_bytes: self.request_bytes(),
            response_bytes: self.bytes_out,
            span: self.span.as_deref(),
        };
        let listener = &self.listener;
        record::finish(
            &listener.metrics,
            &listener.shared.tracer,
            &r,
            Line::Http(self),
        );
    }
}
