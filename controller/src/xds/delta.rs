//! Delta ADS streams: per-type subscriptions (wildcard by default for LDS and CDS,
//! explicit names for RDS and EDS), only changed resources sent, removals named,
//! `initial_resource_versions` honoured on reconnect.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Closed, Nonces, Outbox, Session,
    pool::StreamAcks,
    snapshot::{Snapshot, TYPE_URLS},
    wildcard_type,
};
use corridor_proto::{
    envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource},
    type_url,
};

/// One type's subscription on this stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client holds: name → version.
    known: BTreeMap<String, String>,
}

/// One Delta stream.
pub(super) struct DeltaStream {
    tx: Outbox<DeltaDiscoveryResponse>,
    nonces: Nonces,
    node: String,
    types: BTreeMap<String, TypeState>,
    /// Listener answers, for the gateway pool's availability.
    acks: StreamAcks,
}

impl DeltaStream {
    pub fn new(tx: Outbox<DeltaDiscoveryResponse>, nonces: Nonces, acks: StreamAcks) -> Self {
        Self {
            tx,
            nonces,
            node: String::new(),
            types: BTreeMap::new(),
            acks,
        }
    }

    async fn on_request(
        &mut self,
        r: DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<(), Closed> {
        if self.node.is_empty()
            && let Some(node) = &r.node
        {
            self.node = node.id.clone();
            tracing::info!(node = %self.node, "Delta client connected");
        }
        if snapshot.get(&r.type_url).is_none() {
            tracing::debug!(node = %self.node, type_url = %r.type_url, "request for a type this server does not serve");
            return Ok(());
        }
        let short = type_url::short(&r.type_url);
        if let Some(error) = &r.error_detail {
            tracing::warn!(
                node = %self.node, r#type = short, nonce = %r.response_nonce,
                "client rejected the configuration (NACK): {}", error.message
            );
        } else if !r.response_nonce.is_empty() {
            tracing::debug!(node = %self.node, r#type = short, nonce = %r.response_nonce, "ACK");
        }
        self.acks
            .answered(&r.type_url, &r.response_nonce, r.error_detail.is_some());
        let first = !self.types.contains_key(&r.type_url);
        let state = self.types.entry(r.type_url.clone()).or_default();
        if first {
            state.known = r.initial_resource_versions.clone().into_iter().collect();
            state.wildcard = wildcard_type(&r.type_url) && r.resource_names_subscribe.is_empty();
        }
        let mut newly = Vec::new();
        for name in &r.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else if state.names.insert(name.clone()) {
                newly.push(name.clone());
            }
        }
        for name in &r.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
                state.known.remove(name);
            }
        }
        // A client explicitly asking for a resource that does not exist is told so.
        let absent: Vec<String> = newly
            .into_iter()
            .filter(|n| !state.known.contains_key(n))
            .filter(|n| {
                snapshot
                    .get(&r.type_url)
                    .is_some_and(|t| !t.resources.contains_key(n))
            })
            .collect();
        self.push(&r.type_url, snapshot, first, absent).await
    }

    async fn on_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Closed> {
        let subscribed: Vec<String> = TYPE_URLS
            .iter()
            .filter(|t| self.types.contains_key(**t))
            .map(|t| t.to_string())
            .collect();
        for type_url in subscribed {
            self.push(&type_url, snapshot, false, Vec::new()).await?;
        }
        Ok(())
    }

    /// Sends what the client lacks for one type; with `always`, even an empty response.
    async fn push(
        &mut self,
        type_url: &str,
        snapshot: &Snapshot,
        always: bool,
        mut removed: Vec<String>,
    ) -> Result<(), Closed> {
        let (Some(resources), Some(state)) = (snapshot.get(type_url), self.types.get_mut(type_url))
        else {
            return Ok(());
        };
        let mut candidates: BTreeSet<&String> = state.names.iter().collect();
        if state.wildcard {
            candidates.extend(resources.resources.keys());
        }
        let known_names: Vec<String> = state.known.keys().cloned().collect();
        let mut changed = Vec::new();
        for name in candidates {
            if let Some(res) = resources.resources.get(name)
                && state.known.get(name) != Some(&res.version)
            {
                state.known.insert(name.clone(), res.version.clone());
                changed.push(Resource {
                    name: name.clone(),
                    version: res.version.clone(),
                    resource: Some(res.body.clone()),
                    ..Default::default()
                });
            }
        }
        for name in known_names {
            let subscribed = state.wildcard || state.names.contains(&name);
            if !subscribed {
                state.known.remove(&name);
            } else if !resources.resources.contains_key(&name) {
                state.known.remove(&name);
                removed.push(name);
            }
        }
        if changed.is_empty() && removed.is_empty() && !always {
            return Ok(());
        }
        let nonce = self.nonces.next();
        self.acks.sent(type_url, &nonce);
        tracing::debug!(
            node = %self.node, r#type = type_url::short(type_url), version = %resources.version,
            changed = changed.len(), removed = removed.len(), %nonce, "sending"
        );
        let response = DeltaDiscoveryResponse {
            system_version_info: resources.version.clone(),
            resources: changed,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}

impl Session for DeltaStream {
    type Request = DeltaDiscoveryRequest;

    fn node(&self) -> &str {
        &self.node
    }

    async fn handle_request(
        &mut self,
        r: DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<(), Closed> {
        self.on_request(r, snapshot).await
    }

    async fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Closed> {
        self.on_snapshot(snapshot).await
    }
}
