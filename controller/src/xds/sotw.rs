//! State-of-the-World ADS streams: LDS and CDS answer with every resource, RDS and EDS
//! with the requested names; each response carries the type's version and a fresh nonce.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Closed, Nonces, Outbox, Session,
    pool::StreamAcks,
    snapshot::{Snapshot, TYPE_URLS},
    wildcard_type,
};
use corridor_proto::{
    envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse},
    type_url,
};

/// What one type's subscription looks like on this stream.
#[derive(Debug, Default)]
struct TypeState {
    /// `None` = wildcard (every resource).
    names: Option<BTreeSet<String>>,
    /// Version of the last response sent.
    sent_version: Option<String>,
    /// Nonce of the last response sent; requests echoing another nonce are stale.
    nonce: Option<String>,
}

/// One SotW stream.
pub(super) struct SotwStream {
    tx: Outbox<DiscoveryResponse>,
    nonces: Nonces,
    node: String,
    types: BTreeMap<String, TypeState>,
    /// Listener answers, for the gateway pool's availability.
    acks: StreamAcks,
}

impl SotwStream {
    pub fn new(tx: Outbox<DiscoveryResponse>, nonces: Nonces, acks: StreamAcks) -> Self {
        Self {
            tx,
            nonces,
            node: String::new(),
            types: BTreeMap::new(),
            acks,
        }
    }

    async fn on_request(&mut self, r: DiscoveryRequest, snapshot: &Snapshot) -> Result<(), Closed> {
        if self.node.is_empty()
            && let Some(node) = &r.node
        {
            self.node = node.id.clone();
            tracing::info!(node = %self.node, "SotW client connected");
        }
        if snapshot.get(&r.type_url).is_none() {
            tracing::debug!(node = %self.node, type_url = %r.type_url, "request for a type this server does not serve");
            return Ok(());
        }
        let short = type_url::short(&r.type_url);
        let state = self.types.entry(r.type_url.clone()).or_default();
        // A nonce from before this stream (a client reconnecting) is not stale: it is the
        // first request of this type here and must be answered.
        if !r.response_nonce.is_empty()
            && state.nonce.is_some()
            && state.nonce.as_deref() != Some(r.response_nonce.as_str())
        {
            tracing::debug!(node = %self.node, r#type = short, nonce = %r.response_nonce, "ignoring a request with a stale nonce");
            return Ok(());
        }
        self.acks
            .answered(&r.type_url, &r.response_nonce, r.error_detail.is_some());
        if let Some(error) = &r.error_detail {
            tracing::warn!(
                node = %self.node, r#type = short, nonce = %r.response_nonce, kept_version = %r.version_info,
                "client rejected the configuration (NACK): {}", error.message
            );
        } else if !r.response_nonce.is_empty() {
            tracing::debug!(node = %self.node, r#type = short, version = %r.version_info, "ACK");
        }
        let wildcard = r.resource_names.iter().any(|n| n == "*")
            || (r.resource_names.is_empty() && wildcard_type(&r.type_url));
        let names = (!wildcard).then(|| r.resource_names.iter().cloned().collect::<BTreeSet<_>>());
        let first = state.nonce.is_none();
        let names_changed = state.names != names;
        state.names = names;
        let behind = r.error_detail.is_none()
            && state.sent_version.as_deref()
                != snapshot.get(&r.type_url).map(|t| t.version.as_str());
        if first || names_changed || behind {
            self.send(&r.type_url, snapshot).await?;
        }
        Ok(())
    }

    async fn on_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Closed> {
        for type_url in TYPE_URLS {
            let Some(state) = self.types.get(type_url) else {
                continue;
            };
            let current = snapshot.get(type_url).map(|t| t.version.as_str());
            if state.sent_version.as_deref() != current {
                self.send(type_url, snapshot).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, type_url: &str, snapshot: &Snapshot) -> Result<(), Closed> {
        let Some(resources) = snapshot.get(type_url) else {
            return Ok(());
        };
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(());
        };
        let bodies = match &state.names {
            None => resources
                .resources
                .values()
                .map(|r| r.body.clone())
                .collect::<Vec<_>>(),
            Some(names) => names
                .iter()
                .filter_map(|n| resources.resources.get(n))
                .map(|r| r.body.clone())
                .collect(),
        };
        let nonce = self.nonces.next();
        state.sent_version = Some(resources.version.clone());
        state.nonce = Some(nonce.clone());
        self.acks.sent(type_url, &nonce);
        tracing::debug!(node = %self.node, r#type = type_url::short(type_url), version = %resources.version, count = bodies.len(), %nonce, "sending");
        let response = DiscoveryResponse {
            version_info: resources.version.clone(),
            resources: bodies,
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}

impl Session for SotwStream {
    type Request = DiscoveryRequest;

    fn node(&self) -> &str {
        &self.node
    }

    async fn handle_request(
        &mut self,
        r: DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<(), Closed> {
        self.on_request(r, snapshot).await
    }

    async fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Closed> {
        self.on_snapshot(snapshot).await
    }
}
