//! Delta ADS client.
//!
//! One stream carries the gateway's types. LDS, CDS and the pod table (WDS) are wildcard
//! subscriptions; RDS, EDS
//! and MetaProtocol RDS (Dubbo/Thrift routes)
//! subscribe to exactly the names the accepted listeners and clusters reference, and
//! unsubscribe when nothing references them any more. Each response is applied resource
//! by resource: good resources take effect, rejected ones keep their last good version,
//! and the reply is an ACK or a NACK whose `error_detail` names every rejected resource.
//! Versions of accepted resources are sent again on reconnect, so the server only resends
//! what changed. While disconnected the gateway keeps serving what it has.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use corridor_proto::envoy::config::core::v3::Node;
use corridor_proto::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use corridor_proto::google::rpc::Status;
use corridor_proto::type_url;
use corridor_proto::xds_client::{self, Backoff};
use metrics::Label;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::handlers::XdsState;
use crate::drain::DrainWatch;
use crate::readiness::BlockReady;
use crate::telemetry::metrics::{Metrics, XDS_ACKS, XDS_NACKS, XDS_STREAM_TERMINATIONS};

/// Where and as whom to fetch configuration.
#[derive(Debug, Clone)]
pub struct XdsConfig {
    /// Control plane address (`host:port`, or a URL).
    pub address: String,
    /// Node id of this replica.
    pub node_id: String,
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum Termination {
    #[error(
        "cannot connect to the control plane at {0}: {1} (is corridor-controller running and listening there?)"
    )]
    Connect(String, String),
    #[error("the control plane refused the stream: {0}")]
    Rpc(tonic::Status),
    #[error("stream error: {0}")]
    Stream(tonic::Status),
    #[error("the control plane closed the stream")]
    Closed,
    #[error("shutting down")]
    Shutdown,
}

impl Termination {
    fn reason(&self) -> String {
        match self {
            Termination::Connect(..) => "connect".into(),
            Termination::Rpc(s) | Termination::Stream(s) => {
                format!("{:?}", s.code()).to_ascii_lowercase()
            }
            Termination::Closed => "closed".into(),
            Termination::Shutdown => "shutdown".into(),
        }
    }
}

#[derive(Debug, Default)]
struct TypeState {
    /// Accepted resources and their versions (sent on reconnect).
    known: HashMap<String, String>,
    /// Explicit subscriptions (RDS, EDS).
    subscribed: BTreeSet<String>,
    /// Names the server answered for (accepted, rejected or removed).
    received: BTreeSet<String>,
    /// Whether any response of this type arrived.
    responded: bool,
}

/// The ADS client task.
pub struct XdsClient {
    config: XdsConfig,
    state: XdsState,
    metrics: Arc<Metrics>,
    ready: Option<BlockReady>,
    shutdown: DrainWatch,
    types: BTreeMap<&'static str, TypeState>,
}

impl std::fmt::Debug for XdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsClient")
            .field("config", &self.config)
            .finish()
    }
}

fn static_type(t: &str) -> Option<&'static str> {
    [
        type_url::LISTENER,
        type_url::ROUTE,
        type_url::CLUSTER,
        type_url::ENDPOINT,
        type_url::META_ROUTE,
        type_url::WORKLOAD,
    ]
    .into_iter()
    .find(|s| *s == t)
}

impl XdsClient {
    /// A client that applies into `state`, and drops `ready` once the first complete
    /// configuration is applied.
    pub fn new(
        config: XdsConfig,
        state: XdsState,
        metrics: Arc<Metrics>,
        ready: BlockReady,
        shutdown: DrainWatch,
    ) -> Self {
        let types = [
            type_url::LISTENER,
            type_url::CLUSTER,
            type_url::ROUTE,
            type_url::ENDPOINT,
            type_url::META_ROUTE,
            type_url::WORKLOAD,
        ]
        .into_iter()
        .map(|t| (t, TypeState::default()))
        .collect();
        XdsClient {
            config,
            state,
            metrics,
            ready: Some(ready),
            shutdown,
            types,
        }
    }

    /// Runs until shutdown, reconnecting with jittered exponential backoff.
    pub async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let mut progressed = false;
            let end = self.run_stream(&mut progressed).await;
            if matches!(end, Termination::Shutdown) {
                return;
            }
            self.metrics
                .counter(
                    XDS_STREAM_TERMINATIONS,
                    vec![Label::new("reason", end.reason())],
                )
                .increment(1);
            if progressed {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::warn!(error = %end, retry_in = ?delay, "xDS stream ended; serving the last good configuration");
            let shutdown = self.shutdown.clone().signaled();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown => return,
            }
        }
    }

    async fn run_stream(&mut self, progressed: &mut bool) -> Termination {
        let shutdown = self.shutdown.clone().signaled();
        tokio::select! {
            t = self.stream(progressed) => t,
            _ = shutdown => Termination::Shutdown,
        }
    }

    async fn stream(&mut self, progressed: &mut bool) -> Termination {
        let mut client = match xds_client::connect(&self.config.address).await {
            Ok(c) => c,
            Err(e) => return Termination::Connect(self.config.address.clone(), e),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        for req in self.initial_requests() {
            let _ = tx.send(req);
        }
        let mut responses = match client
            .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return Termination::Rpc(s),
        };
        tracing::info!(address = %self.config.address, node = %self.config.node_id, "xDS stream established");
        loop {
            match responses.message().await {
                Ok(Some(resp)) => {
                    *progressed = true;
                    for req in self.handle(resp) {
                        if tx.send(req).is_err() {
                            return Termination::Closed;
                        }
                    }
                }
                Ok(None) => return Termination::Closed,
                Err(s) => return Termination::Stream(s),
            }
        }
    }

    /// The first request of each type on a new stream, with the versions already held.
    fn initial_requests(&mut self) -> Vec<DeltaDiscoveryRequest> {
        let node = Node {
            id: self.config.node_id.clone(),
            cluster: "corridor-gateway".into(),
            user_agent_name: "corridor-gateway".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        // The pod table first: the server answers in request order, so the table is in
        // place before the listeners whose authorization filters read it start serving.
        for t in [
            type_url::WORKLOAD,
            type_url::LISTENER,
            type_url::CLUSTER,
            type_url::ROUTE,
            type_url::ENDPOINT,
            type_url::META_ROUTE,
        ] {
            let Some(ts) = self.types.get_mut(t) else {
                continue;
            };
            ts.responded = false;
            let wildcard =
                t == type_url::LISTENER || t == type_url::CLUSTER || t == type_url::WORKLOAD;
            if !wildcard && ts.subscribed.is_empty() {
                continue;
            }
            let mut req = DeltaDiscoveryRequest {
                type_url: t.to_string(),
                // An empty first request is the (legacy) wildcard subscription.
                resource_names_subscribe: if wildcard {
                    Vec::new()
                } else {
                    ts.subscribed.iter().cloned().collect()
                },
                initial_resource_versions: ts.known.clone(),
                ..Default::default()
            };
            if out.is_empty() {
                req.node = Some(node.clone());
            }
            out.push(req);
        }
        out
    }

    /// Applies one response; returns the ACK/NACK and any subscription changes.
    fn handle(&mut self, resp: DeltaDiscoveryResponse) -> Vec<DeltaDiscoveryRequest> {
        let Some(t) = static_type(&resp.type_url) else {
            tracing::warn!(type_url = %resp.type_url, "ignoring response of an unknown type");
            return vec![nack(&resp, format!("unsupported type {}", resp.type_url))];
        };
        let applied = self.state.apply(
            t,
            &resp.system_version_info,
            &resp.resources,
            &resp.removed_resources,
        );
        let short = type_url::short(t);
        if let Some(ts) = self.types.get_mut(t) {
            ts.responded = true;
            for (name, version) in &applied.accepted {
                ts.known.insert(name.clone(), version.clone());
                ts.received.insert(name.clone());
            }
            for (name, _) in &applied.rejected {
                ts.received.insert(name.clone());
            }
            for name in &applied.removed {
                ts.known.remove(name);
                ts.received.insert(name.clone());
            }
        }
        let mut out = Vec::new();
        if applied.rejected.is_empty() {
            tracing::debug!(
                r#type = short,
                accepted = applied.accepted.len(),
                removed = applied.removed.len(),
                "ACK"
            );
            self.metrics
                .counter(XDS_ACKS, vec![Label::new("type", short)])
                .increment(1);
            out.push(DeltaDiscoveryRequest {
                type_url: t.to_string(),
                response_nonce: resp.nonce.clone(),
                ..Default::default()
            });
        } else {
            let detail = applied
                .rejected
                .iter()
                .map(|(n, why)| format!("{n}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(r#type = short, rejected = applied.rejected.len(), accepted = applied.accepted.len(), %detail, "NACK: rejected resources keep their last good version");
            self.metrics
                .counter(XDS_NACKS, vec![Label::new("type", short)])
                .increment(1);
            out.push(nack(&resp, detail));
        }
        out.extend(self.resubscribe());
        self.check_ready();
        out
    }

    /// Brings the RDS and EDS subscriptions in line with what is referenced.
    fn resubscribe(&mut self) -> Vec<DeltaDiscoveryRequest> {
        let (routes, endpoints, meta_routes) = match self.state.store.lock() {
            Ok(s) => (
                s.referenced_routes(),
                s.referenced_endpoints(),
                s.referenced_meta_routes(),
            ),
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for (t, wanted) in [
            (type_url::ROUTE, routes),
            (type_url::ENDPOINT, endpoints),
            (type_url::META_ROUTE, meta_routes),
        ] {
            let Some(ts) = self.types.get_mut(t) else {
                continue;
            };
            let add: Vec<String> = wanted.difference(&ts.subscribed).cloned().collect();
            let remove: Vec<String> = ts.subscribed.difference(&wanted).cloned().collect();
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            for n in &remove {
                ts.known.remove(n);
                ts.received.remove(n);
            }
            ts.subscribed = wanted;
            if !remove.is_empty() {
                self.state.forget(t, &remove);
            }
            out.push(DeltaDiscoveryRequest {
                type_url: t.to_string(),
                resource_names_subscribe: add,
                resource_names_unsubscribe: remove,
                ..Default::default()
            });
        }
        out
    }

    /// Opens the readiness gate once LDS and CDS answered and every referenced RDS and
    /// EDS resource arrived.
    fn check_ready(&mut self) {
        let Some(ready) = &self.ready else { return };
        let mut pending = Vec::new();
        for t in [type_url::LISTENER, type_url::CLUSTER] {
            if !self.types.get(t).is_some_and(|ts| ts.responded) {
                pending.push(type_url::short(t).to_string());
            }
        }
        for t in [type_url::ROUTE, type_url::ENDPOINT, type_url::META_ROUTE] {
            if let Some(ts) = self.types.get(t) {
                let missing = ts.subscribed.difference(&ts.received).count();
                if missing > 0 {
                    pending.push(format!("{} ({missing} resources)", type_url::short(t)));
                }
            }
        }
        if pending.is_empty() {
            tracing::info!("first complete xDS configuration applied");
            self.ready = None;
        } else {
            ready.rename(format!("xds: waiting for {}", pending.join(", ")));
        }
    }
}

fn nack(resp: &DeltaDiscoveryResponse, message: String) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: resp.type_url.clone(),
        response_nonce: resp.nonce.clone(),
        // google.rpc.Code INVALID_ARGUMENT
        error_detail: Some(Status {
            code: 3,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
