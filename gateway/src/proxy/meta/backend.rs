//! The listener's [`Backend`]: routes from the current snapshot's MetaProtocol route
//! configuration, endpoints from its clusters, one multiplexed connection per endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::call::{Backend, CallOutcome, CallRecord, Decision, Lease, Unreachable};
use super::upstream::{Multiplexed, UpstreamError};
use crate::cluster::{ClusterState, lb};
use crate::codec::{Codec, Edit, Metadata};
use crate::policy::chain::{Chain, Check};
use crate::policy::mirror;
use crate::policy::reject::{Reject, RejectKind};
use crate::policy::request::{Request, Source};
use crate::policy::route::RoutePolicy;
use crate::proxy::Shared;
use crate::proxy::attempts;
use crate::proxy::exchange::{ClusterActive, EndpointActive};
use crate::proxy::retry::RetryActive;
use crate::router::{pick_cluster, select_meta};
use crate::telemetry::access_log::Line;
use crate::telemetry::metrics::{Metrics, RequestProtocol, ServiceMetrics};
use crate::telemetry::record::{self, PeerRef, Record};
use crate::telemetry::tcp::TcpMetrics;
use crate::telemetry::trace::{Span, TRACEPARENT};

/// What a Dubbo/Thrift listener's connections need.
#[derive(Debug)]
pub struct MetaListener {
    /// Listener name.
    pub name: String,
    /// MetaProtocol RDS name, looked up in the snapshot on each request.
    pub route_config: String,
    /// The protocol's codec.
    pub codec: Arc<dyn Codec>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Request metrics with this service's labels.
    pub metrics: ServiceMetrics,
    /// The `request_protocol` label.
    pub protocol: RequestProtocol,
    /// The request filters before the router.
    pub chain: Chain,
}

/// Istio's labels for a codec-based call, in HTTP's terms as Envoy reports local replies:
/// an answer is its codec's HTTP equivalent (200, 500, 503, ...) and `URX` when retries
/// ran out on it; a local reply is the status and response flag Envoy uses for the same
/// cause.
pub fn istio_outcome(call: &CallRecord) -> (u16, u16) {
    use crate::proxy::local_reply::ResponseFlags as F;
    match call.outcome {
        CallOutcome::Answered(status) if status >= 500 && call.retries > 0 => {
            (status, F::URX | call.flags)
        }
        CallOutcome::Answered(status) => (status, call.flags),
        CallOutcome::Local(kind) => {
            let outline = kind.outline();
            (outline.http, outline.flag | call.flags)
        }
    }
}

/// A call's timeout when its route sets none: Envoy's default route timeout, so a hung
/// upstream never holds a caller forever.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

fn local(kind: RejectKind, message: String) -> Reject {
    Reject::new(kind, message)
}

impl Backend for MetaListener {
    fn admit(
        &self,
        source: &Source,
        request: &Metadata,
        route: Option<&RoutePolicy>,
        flags: &mut u16,
    ) -> Check {
        if self.chain.is_empty() {
            return Check::Done(Ok(()));
        }
        // The connection's peer, looked up in the current pod table for each call.
        let source = Source::resolved(source.addr, &self.shared.snapshot.load());
        let req = Request {
            protocol: self.protocol,
            source: &source,
            attrs: request,
        };
        self.chain.check(&req, route, flags)
    }

    fn metrics(&self) -> Option<&Metrics> {
        Some(&self.shared.metrics)
    }

    fn route(&self, request: &Metadata) -> Result<Decision, Reject> {
        let snapshot = self.shared.snapshot.load();
        let Some(rc) = snapshot.meta_routes.get(&self.route_config) else {
            return Err(local(
                RejectKind::NoRoute,
                format!("no route configuration {} (yet)", self.route_config),
            ));
        };
        let Some(route) = select_meta(rc, request) else {
            let method = request.get("method").unwrap_or("?");
            return Err(local(
                RejectKind::NoRoute,
                format!("no route for method {method} on {}", self.name),
            ));
        };
        let mut rng = rand::rng();
        let cluster = pick_cluster(&route.target, &mut rng).clone();
        let mirrors = mirror::sample(&route.policy.mirrors, &mut rng);
        let set = |pairs: &[(String, String)]| Edit {
            request_id: None,
            set: pairs.to_vec(),
        };
        if !route.request_mutation.is_empty() && !self.codec.can_mutate(request) {
            // Nowhere to write them (Thrift without THeader): said here rather than
            // dropped silently.
            tracing::debug!(
                listener = %self.name,
                route = %route.name,
                "request mutation not applied: this caller's transport carries no headers"
            );
        }
        Ok(Decision {
            route: route.name.clone(),
            cluster,
            request_edit: set(&route.request_mutation),
            response_edit: set(&route.response_mutation),
            timeout: Some(route.policy.timeout.unwrap_or(DEFAULT_CALL_TIMEOUT)),
            retry: route.policy.retry.clone(),
            mirrors,
            policy: route.policy.clone(),
        })
    }

    fn record(&self, request: &Metadata, call: &CallRecord) {
        let (http_code, flags) = istio_outcome(call);
        let record = Record {
            protocol: self.protocol,
            response_code: call.response_code,
            http_code,
            grpc_status: None,
            flags,
            source: call.source,
            destination: call.destination,
            route: call.route.as_deref(),
            cluster: call.cluster.as_deref(),
            upstream: call.upstream,
            duration: call.took,
            request_bytes: call.request_bytes as u64,
            response_bytes: call.response_bytes as u64,
            span: call.span.as_ref(),
        };
        let line = Line::Meta {
            listener: &self.name,
            request,
        };
        record::finish(&self.metrics, &self.shared.tracer, &record, line);
    }

    fn tcp_metrics(&self) -> Option<&TcpMetrics> {
        Some(self.metrics.tcp())
    }

    fn source_peer(&self, source: &Source) -> PeerRef {
        record::source_of(source.addr, &self.shared.snapshot.load())
    }

    fn trace(&self, request: &Metadata) -> Option<Span> {
        let incoming = request.get(TRACEPARENT).map(str::as_bytes);
        self.shared.tracer.start(incoming)
    }

    fn admit_retry(&self, cluster: &str) -> Option<RetryActive> {
        let snapshot = self.shared.snapshot.load();
        RetryActive::admit(snapshot.clusters.get(cluster)?, &self.shared.metrics)
    }

    fn admit_cluster(&self, cluster: &str) -> Result<Option<ClusterActive>, Reject> {
        let snapshot = self.shared.snapshot.load();
        let Some(state) = snapshot.clusters.get(cluster) else {
            return Ok(None);
        };
        match attempts::admit_request(state) {
            Some(active) => Ok(Some(active)),
            None => Err(local(
                RejectKind::Overflow,
                format!("{cluster} is at its circuit breaker's max_requests"),
            )),
        }
    }

    fn cluster_state(&self, cluster: &str) -> Option<Arc<ClusterState>> {
        self.shared.snapshot.load().clusters.get(cluster).cloned()
    }

    async fn connection(
        &self,
        cluster: &str,
        avoid: &[SocketAddr],
        key: Option<u64>,
    ) -> Result<Lease, Unreachable> {
        let snapshot = self.shared.snapshot.load_full();
        let Some(state) = snapshot.clusters.get(cluster) else {
            return Err(Unreachable::NoEndpoint(local(
                RejectKind::NoCluster,
                format!("cluster {cluster} not found"),
            )));
        };
        let zone = &self.shared.zone;
        let Some(endpoint) = lb::pick(state, avoid, key, zone, &mut rand::rng()) else {
            return Err(Unreachable::NoEndpoint(local(
                RejectKind::NoHealthyUpstream,
                format!("no healthy endpoint in {cluster}"),
            )));
        };
        let lease = |connection: Multiplexed| Lease {
            connection,
            active: Some(EndpointActive::new(endpoint.clone())),
        };
        let mut slot = endpoint.mux.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(lease(c.clone()));
        }
        let c = Multiplexed::connect(
            endpoint.addr,
            self.codec.clone(),
            state.config.connect_timeout,
        )
        .await
        .map_err(|e| match e {
            UpstreamError::Connect { reason, .. } => Unreachable::Connect(endpoint.addr, reason),
            other => Unreachable::Connect(endpoint.addr, other.to_string()),
        })?;
        *slot = Some(c.clone());
        Ok(lease(c))
    }
}
