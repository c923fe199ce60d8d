//! The listener's [`Backend`]: routes from the current snapshot's MetaProtocol route
//! configuration, endpoints from its clusters, one multiplexed connection per endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::call::{Backend, CallOutcome, CallRecord, Decision, Lease, Unreachable};
use super::upstream::{Multiplexed, UpstreamError};
use crate::cluster::lb;
use crate::codec::{Codec, Edit, Metadata};
use crate::policy::chain::{Chain, Check};
use crate::policy::reject::{Reject, RejectKind};
use crate::policy::request::{Request, Source};
use crate::proxy::Shared;
use crate::proxy::attempts;
use crate::proxy::exchange::{ClusterActive, EndpointActive};
use crate::proxy::retry::RetryActive;
use crate::router::{pick_cluster, select_meta};
use crate::telemetry::metrics::{Outcome, RequestProtocol, ServiceMetrics};

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
        CallOutcome::Answered(status) if status >= 500 && call.retries > 0 => (status, F::URX),
        CallOutcome::Answered(status) => (status, 0),
        CallOutcome::Local(kind) => {
            let outline = kind.outline();
            (outline.http, outline.flag)
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
    fn admit(&self, source: &Source, request: &Metadata) -> Check {
        if self.chain.is_empty() {
            return Check::Done(Ok(()));
        }
        let req = Request {
            protocol: self.protocol,
            source,
            attrs: request,
        };
        // Before routing: MetaProtocol routes carry nothing the filters read.
        self.chain.check(&req, None)
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
        let mirrors = route
            .policy
            .mirrors
            .iter()
            .filter(|m| m.fraction >= 1.0 || rng.random_bool(m.fraction))
            .map(|m| m.cluster.clone())
            .collect();
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
        })
    }

    fn record(&self, request: &Metadata, call: &CallRecord) {
        let (status, flags) = istio_outcome(call);
        crate::telemetry::access_log::emit_meta(
            &self.name,
            self.protocol.as_str(),
            request,
            call,
            status,
            flags,
        );
        let outcome = Outcome {
            status,
            flags,
            grpc_status: None,
            protocol: self.protocol,
        };
        self.metrics.record(outcome, |h| {
            h.requests.increment(1);
            h.duration.record(call.took.as_secs_f64() * 1000.0);
            h.request_bytes.record(call.request_bytes as f64);
            h.response_bytes.record(call.response_bytes as f64);
        });
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

    async fn connection(&self, cluster: &str, avoid: &[SocketAddr]) -> Result<Lease, Unreachable> {
        let snapshot = self.shared.snapshot.load_full();
        let Some(state) = snapshot.clusters.get(cluster) else {
            return Err(Unreachable::NoEndpoint(local(
                RejectKind::NoCluster,
                format!("cluster {cluster} not found"),
            )));
        };
        let Some(endpoint) = lb::pick(state, avoid, &mut rand::rng()) else {
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
