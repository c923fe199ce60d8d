//! Fail-open input in a cluster (DESIGN.md §2): the gateway pods, found by label in
//! Corridor's namespace. The pool is available while at least one of them is Ready and
//! not being deleted; when none is, DNS answers the real ClusterIPs again.

use std::{collections::BTreeMap, sync::Arc};

use ::kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio::{sync::watch, task::JoinHandle};

use crate::probe::Metrics;

/// Label on [`Metrics`] watch restarts for this watch.
const WATCH_NAME: &str = "GatewayPod";

/// True when the pod can take traffic: condition Ready is True and no deletion has
/// started (a terminating pod is draining, and kube-proxy stops sending to it).
pub fn pod_available(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches the pods matching `selector` in `namespace` and publishes whether any is
/// available. Starts false: names are not rewritten before a gateway is known to be up.
pub fn watch_gateway_pods(
    client: Client,
    namespace: &str,
    selector: &str,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().labels(selector);
    let (namespace, selector) = (namespace.to_string(), selector.to_string());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
        let mut pods: BTreeMap<String, bool> = BTreeMap::new();
        let mut listing: BTreeMap<String, bool> = BTreeMap::new();
        let mut failing = false;
        loop {
            let item = tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                item = stream.next() => item,
            };
            let Some(item) = item else { return };
            let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
            match item {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    listing.insert(name(&p), pod_available(&p));
                }
                Ok(watcher::Event::InitDone) => {
                    pods = std::mem::take(&mut listing);
                    if failing {
                        tracing::info!(%namespace, %selector, "gateway pod watch recovered");
                        failing = false;
                    }
                }
                Ok(watcher::Event::Apply(p)) => {
                    pods.insert(name(&p), pod_available(&p));
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&name(&p));
                }
                Err(e) => {
                    metrics.watch_restarted(WATCH_NAME);
                    if !failing {
                        tracing::warn!(%namespace, %selector, error = %e, "gateway pod watch failed; keeping the last availability and retrying");
                        failing = true;
                    }
                    continue;
                }
            }
            let available = pods.values().any(|up| *up);
            tx.send_if_modified(|v| {
                let changed = *v != available;
                *v = available;
                changed
            });
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeApi;
    use serde_json::json;
    use std::time::Duration;

    fn pod(name: &str, ready: &str, deleting: bool) -> serde_json::Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "corridor-system", "labels": {"app": "gw"}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        p
    }

    async fn becomes(rx: &mut watch::Receiver<bool>, want: bool) {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v == want))
            .await
            .expect("availability in time")
            .unwrap();
    }

    #[tokio::test]
    async fn available_while_some_pod_is_ready_and_not_terminating() {
        let fake = FakeApi::start().await.unwrap();
        fake.apply(pod("gw-1", "False", false)).unwrap();
        let other = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "corridor-system", "labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        fake.apply(other).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let (mut rx, _task) = watch_gateway_pods(
            fake.client(),
            "corridor-system",
            "app=gw",
            Arc::default(),
            shutdown,
        );
        fake.apply(pod("gw-1", "True", false)).unwrap();
        becomes(&mut rx, true).await;
        fake.apply(pod("gw-1", "True", true)).unwrap();
        becomes(&mut rx, false).await;
        fake.apply(pod("gw-2", "True", false)).unwrap();
        becomes(&mut rx, true).await;
        assert!(fake.delete("v1", "Pod", "corridor-system", "gw-2"));
        becomes(&mut rx, false).await;
    }
}
