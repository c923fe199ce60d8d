//! The leader's writes besides status conditions: drivers that run
//! [`crate::cluster`]'s gateway address Services and CoreDNS hook while this replica
//! leads, after every translation (so they see the same admitted store as xDS), and again
//! after a failure or periodically (someone else may edit what the leader keeps).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ::kube::Client;
use tokio::{sync::watch, task::JoinHandle};

use super::KubeError;
use crate::{
    cluster::{
        address::{AddressOptions, plan},
        hook::{Hook, HookOutcome, ensure_hook},
        parse_selector,
        reconcile::reconcile,
    },
    config::{ClusterConfig, DnsMode},
    store::{ObjectKey, Store},
};

/// Wait before retrying a pass that failed.
const RETRY: Duration = Duration::from_secs(5);
/// Period of the CoreDNS hook check: the ConfigMap is not watched, and an operator or a
/// CoreDNS upgrade may rewrite it.
const HOOK_RECHECK: Duration = Duration::from_secs(60);
/// Port of corridor-dns when its Service names none.
const DNS_PORT: u16 = 53;

/// What the drivers need.
#[derive(Clone)]
pub struct LeaderContext {
    /// The API client.
    pub client: Client,
    /// Whether this replica leads; nothing is written otherwise.
    pub leader: watch::Receiver<bool>,
    /// The admitted store of every translation.
    pub stores: watch::Receiver<Arc<Store>>,
    /// Corridor's namespace.
    pub namespace: String,
    /// The cluster DNS domain.
    pub cluster_domain: String,
    /// Cluster-mode settings.
    pub cluster: ClusterConfig,
    /// Stops the drivers.
    pub shutdown: watch::Receiver<bool>,
}

/// Runs `pass` whenever this replica leads and the store changed (or a retry or the
/// `recheck` period is due); `pass` returns true when it wants a retry.
fn drive<F, Fut>(mut ctx: LeaderContext, recheck: Option<Duration>, mut pass: F) -> JoinHandle<()>
where
    F: FnMut(Client, Arc<Store>) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        loop {
            let mut wait = recheck;
            if *ctx.leader.borrow_and_update() {
                let store = ctx.stores.borrow_and_update().clone();
                if pass(ctx.client.clone(), store).await {
                    wait = Some(RETRY);
                }
            }
            let leading = *ctx.leader.borrow();
            tokio::select! {
                _ = ctx.shutdown.wait_for(|v| *v) => return,
                r = ctx.leader.changed() => if r.is_err() { return },
                r = ctx.stores.changed() => if r.is_err() { return },
                () = tokio::time::sleep(wait.unwrap_or(RETRY)), if leading && wait.is_some() => {}
            }
        }
    })
}

/// Keeps the gateway address Services ([`crate::cluster::address`]) while leading.
pub fn keep_address_services(ctx: LeaderContext) -> Result<JoinHandle<()>, KubeError> {
    let opts = AddressOptions {
        namespace: ctx.namespace.clone(),
        selector: parse_selector(&ctx.cluster.gateway_selector)
            .map_err(|e| KubeError::Settings(e.to_string()))?,
        ports: ctx.cluster.gateway_ports,
    };
    Ok(drive(ctx, None, move |client, store| {
        let opts = opts.clone();
        async move {
            let diff = plan(&store, &opts);
            if diff.is_empty() {
                return false;
            }
            let report = reconcile(client, &opts.namespace, &diff).await;
            !report.errors.is_empty()
        }
    }))
}

/// Keeps the CoreDNS stub block ([`crate::cluster::hook`]) while leading, in
/// `--dns-mode stub`; does nothing in the other modes.
pub fn keep_coredns_hook(ctx: LeaderContext) -> Result<Option<JoinHandle<()>>, KubeError> {
    if ctx.cluster.dns_mode != DnsMode::Stub {
        return Ok(None);
    }
    let (cm_namespace, cm_name) = configmap(&ctx.cluster)?;
    let dns = ObjectKey::new(ctx.namespace.clone(), ctx.cluster.dns_service.clone());
    let zone = ctx.cluster_domain.clone();
    let mut reported_missing = false;
    Ok(Some(drive(
        ctx,
        Some(HOOK_RECHECK),
        move |client, store| {
            let target = dns_target(&store, &dns);
            if target.is_none() && !reported_missing {
                tracing::warn!(service = %dns, "corridor-dns's Service has no ClusterIP yet; the CoreDNS hook waits for it (is --dns-service right?)");
            }
            reported_missing = target.is_none();
            let (ns, name, zone) = (cm_namespace.clone(), cm_name.clone(), zone.clone());
            async move {
                let Some(target) = target else { return false };
                match ensure_hook(client, &ns, &name, &Hook::Stub { zone, target }).await {
                    Ok(HookOutcome::Changed) => {
                        tracing::info!(configmap = %format!("{ns}/{name}"), %target, "CoreDNS hook written");
                        false
                    }
                    Ok(HookOutcome::Unchanged) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot keep the CoreDNS hook; retrying");
                        true
                    }
                }
            }
        },
    )))
}

/// Removes the CoreDNS stub block (`--uninstall-coredns-hook`).
pub async fn remove_coredns_hook(client: Client, cluster: &ClusterConfig) -> Result<(), KubeError> {
    let (ns, name) = configmap(cluster)?;
    let outcome = ensure_hook(client, &ns, &name, &Hook::Absent)
        .await
        .map_err(|e| KubeError::Hook(Box::new(e)))?;
    match outcome {
        HookOutcome::Changed => {
            tracing::info!(configmap = %format!("{ns}/{name}"), "CoreDNS hook removed")
        }
        HookOutcome::Unchanged => {
            tracing::info!(configmap = %format!("{ns}/{name}"), "no CoreDNS hook to remove")
        }
    }
    Ok(())
}

fn configmap(cluster: &ClusterConfig) -> Result<(String, String), KubeError> {
    cluster
        .coredns_configmap()
        .map(|(ns, name)| (ns.to_string(), name.to_string()))
        .ok_or_else(|| {
            KubeError::Settings(format!(
                "--coredns-configmap {:?} is not namespace/name",
                cluster.coredns_configmap
            ))
        })
}

/// corridor-dns's ClusterIP and DNS port, from its Service in the store.
fn dns_target(store: &Store, service: &ObjectKey) -> Option<SocketAddr> {
    let spec = store.services.get(service)?.spec.as_ref()?;
    let ip = spec.cluster_ip.as_deref()?.parse().ok()?;
    let ports = spec.ports.as_deref().unwrap_or_default();
    let port = ports
        .iter()
        .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "UDP")
        .or_else(|| ports.first())
        .and_then(|p| u16::try_from(p.port).ok())
        .unwrap_or(DNS_PORT);
    Some(SocketAddr::new(ip, port))
}
