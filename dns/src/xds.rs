//! The name-table client: one Delta ADS stream subscribed (wildcard) to
//! `corridor.dns.v1.NameTable`. Each table received becomes a new [`Zone`], swapped in
//! whole; a table that cannot be used is NACKed and the last good zone keeps answering,
//! as it does while the controller is away.

use std::collections::HashMap;
use std::sync::Arc;

use corridor_proto::corridor::dns::v1::NameTable;
use corridor_proto::envoy::config::core::v3::Node;
use corridor_proto::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use corridor_proto::google::rpc::Status;
use corridor_proto::type_url;
use corridor_proto::xds_client::{self, Backoff};
use metrics::Label;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::metrics::{GATEWAY_AVAILABLE, Metrics, NAME_TABLE_UPDATES, XDS_STREAM_TERMINATIONS};
use crate::server::SharedZone;
use crate::zone::{Zone, ZoneOptions};

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum Termination {
    #[error("cannot connect to the controller at {0}: {1} (is corridor-controller running and listening there?)")]
    Connect(String, String),
    #[error("the controller refused the stream: {0}")]
    Rpc(tonic::Status),
    #[error("stream error: {0}")]
    Stream(tonic::Status),
    #[error("the controller closed the stream")]
    Closed,
}

impl Termination {
    fn reason(&self) -> String {
        match self {
            Termination::Connect(..) => "connect".into(),
            Termination::Rpc(s) | Termination::Stream(s) => format!("{:?}", s.code()).to_ascii_lowercase(),
            Termination::Closed => "closed".into(),
        }
    }
}

/// Fetches name tables and publishes zones.
#[derive(Debug)]
pub struct NameTableClient {
    address: String,
    node_id: String,
    opts: ZoneOptions,
    zone: SharedZone,
    metrics: Arc<Metrics>,
    /// Accepted resource versions, sent again on reconnect.
    known: HashMap<String, String>,
}

impl NameTableClient {
    /// A client for the controller at `address`, publishing into `zone`.
    pub fn new(address: String, node_id: String, opts: ZoneOptions, zone: SharedZone, metrics: Arc<Metrics>) -> Self {
        NameTableClient {
            address,
            node_id,
            opts,
            zone,
            metrics,
            known: HashMap::new(),
        }
    }

    /// Runs until `stop` turns true, reconnecting with jittered backoff.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let mut progressed = false;
            let end = tokio::select! {
                end = self.stream(&mut progressed) => end,
                _ = stop.wait_for(|s| *s) => return,
            };
            self.metrics
                .counter(XDS_STREAM_TERMINATIONS, vec![Label::new("reason", end.reason())])
                .increment(1);
            if progressed {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            let serving = if self.zone.load().is_some() { "answering from the last name table" } else { "no name table yet: cluster names get SERVFAIL" };
            tracing::warn!(error = %end, retry_in = ?delay, "xDS stream ended; {serving}");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn stream(&mut self, progressed: &mut bool) -> Termination {
        let mut client = match xds_client::connect(&self.address).await {
            Ok(c) => c,
            Err(e) => return Termination::Connect(self.address.clone(), e),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(DeltaDiscoveryRequest {
            node: Some(Node {
                id: self.node_id.clone(),
                cluster: "corridor-dns".into(),
                user_agent_name: "corridor-dns".into(),
                ..Default::default()
            }),
            type_url: type_url::NAME_TABLE.to_string(),
            initial_resource_versions: self.known.clone(),
            ..Default::default()
        });
        let mut responses = match client.delta_aggregated_resources(UnboundedReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Termination::Rpc(s),
        };
        tracing::info!(address = %self.address, node = %self.node_id, "xDS stream established");
        loop {
            match responses.message().await {
                Ok(Some(resp)) => {
                    *progressed = true;
                    if tx.send(self.handle(resp)).is_err() {
                        return Termination::Closed;
                    }
                }
                Ok(None) => return Termination::Closed,
                Err(s) => return Termination::Stream(s),
            }
        }
    }

    /// Applies one response and returns its ACK or NACK.
    fn handle(&mut self, resp: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
        let mut ack = DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        };
        match self.apply(&resp) {
            Ok(()) => {}
            Err(message) => {
                tracing::warn!(%message, "NACK: the last good name table keeps answering");
                // google.rpc.Code INVALID_ARGUMENT
                ack.error_detail = Some(Status { code: 3, message, details: Vec::new() });
            }
        }
        ack
    }

    fn apply(&mut self, resp: &DeltaDiscoveryResponse) -> Result<(), String> {
        if resp.type_url != type_url::NAME_TABLE {
            return Err(format!("unsupported type {}", resp.type_url));
        }
        for name in &resp.removed_resources {
            // A cluster without a table is not something to act on: keep answering.
            tracing::warn!(resource = %name, "the controller removed the name table; keeping the last one");
            self.known.remove(name);
        }
        let mut rejected = Vec::new();
        for r in &resp.resources {
            let Some(any) = &r.resource else {
                rejected.push(format!("{}: no resource body", r.name));
                continue;
            };
            let table = match NameTable::decode(any.value.as_slice()) {
                Ok(t) => t,
                Err(e) => {
                    rejected.push(format!("{}: cannot decode a NameTable: {e}", r.name));
                    continue;
                }
            };
            let zone = self.opts.zone.to_ascii();
            if table.zone.trim_end_matches('.').to_ascii_lowercase() != zone.trim_end_matches('.') {
                rejected.push(format!(
                    "{}: the table is for zone {:?} but this server answers {zone:?} (do --zone and the controller's --cluster-domain agree?)",
                    r.name, table.zone
                ));
                continue;
            }
            let services = table.services.len();
            let available = table.gateway_available;
            let built = Zone::new(&table, self.opts.clone());
            self.zone.store(Some(Arc::new(built)));
            self.known.insert(r.name.clone(), r.version.clone());
            self.metrics.counter(NAME_TABLE_UPDATES, Vec::new()).increment(1);
            self.metrics.gauge(GATEWAY_AVAILABLE, Vec::new()).set(if available { 1.0 } else { 0.0 });
            tracing::info!(version = %r.version, services, gateway_available = available, "name table applied");
        }
        if rejected.is_empty() { Ok(()) } else { Err(rejected.join("; ")) }
    }
}
