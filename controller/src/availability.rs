//! What the ADS server serves: the source's latest snapshot with the gateway pool's
//! availability stamped on the DNS name table.
//!
//! The translator cannot know whether a gateway can take traffic, and waiting for the
//! next source change (or its debounce) would leave names pointing at a dead pool, so
//! availability joins here and every flip is republished at once: DNS replicas fail open
//! to the real ClusterIPs within one push. Where availability comes from is the
//! caller's choice: gateway streams acknowledging listeners in file mode
//! ([`crate::xds::pool`]), gateway pod readiness in a cluster.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{translate::with_gateway_available, xds::snapshot::Snapshot};

/// The snapshot to serve for a source snapshot and an availability.
pub fn stamp(source: &Snapshot, available: bool) -> Arc<Snapshot> {
    Arc::new(with_gateway_available(source, available))
}

/// Publishes on `served` now, then whenever the source publishes or availability flips,
/// until `shutdown` turns true or the source ends. Logs every change of availability
/// (the first value included, so the log says whether names start rewritten).
pub async fn run(
    mut source: watch::Receiver<Arc<Snapshot>>,
    mut available: watch::Receiver<bool>,
    served: watch::Sender<Arc<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = None;
    // When availability's sender goes away its last value stands, and the source is
    // still followed.
    let mut watching = true;
    while !*shutdown.borrow() {
        let up = *available.borrow_and_update();
        if last != Some(up) {
            last = Some(up);
            if up {
                tracing::info!("gateway pool available");
            } else {
                tracing::info!("gateway pool unavailable: names fail open to their ClusterIPs");
            }
        }
        let current = source.borrow_and_update().clone();
        let next = stamp(&current, up);
        served.send_if_modified(|s| {
            let changed = !s.same_content(&next);
            if changed {
                tracing::debug!(resources = %next.summary(), gateway_available = up, "serving a new snapshot");
                *s = next;
            }
            changed
        });
        tokio::select! {
            _ = shutdown.changed() => break,
            changed = source.changed() => if changed.is_err() { break },
            changed = available.changed(), if watching => watching = changed.is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        store::store_from_yaml,
        translate::{TranslateOptions, translate},
    };
    use corridor_proto::{corridor::dns::v1::NameTable, type_url};
    use prost::Message;

    fn gateway_available(s: &Snapshot) -> bool {
        let table = &s.get(type_url::NAME_TABLE).unwrap().resources["cluster.local"];
        NameTable::decode(table.body.value.as_slice())
            .unwrap()
            .gateway_available
    }

    /// Waits for the next served snapshot, failing instead of hanging when none comes.
    async fn next(served: &mut watch::Receiver<Arc<Snapshot>>) {
        tokio::time::timeout(std::time::Duration::from_secs(10), served.changed())
            .await
            .expect("a served snapshot in time")
            .unwrap();
    }

    #[tokio::test]
    async fn flips_and_source_changes_are_served_with_the_current_availability() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: { name: a, namespace: default }\nspec: { clusterIP: 10.96.0.1, ports: [ { port: 80 } ] }\n";
        let first = translate(&store_from_yaml(yaml), &TranslateOptions::default());
        let (source_tx, source) = watch::channel(Arc::new(first.clone()));
        let (available_tx, available) = watch::channel(false);
        let (served_tx, mut served) = watch::channel(stamp(&first, false));
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run(source, available, served_tx, shutdown));

        available_tx.send_replace(true);
        next(&mut served).await;
        assert!(gateway_available(&served.borrow_and_update()));

        let second = translate(
            &store_from_yaml(&yaml.replace("10.96.0.1", "10.96.0.2")),
            &TranslateOptions::default(),
        );
        source_tx.send_replace(Arc::new(second));
        next(&mut served).await;
        let now = served.borrow_and_update().clone();
        assert!(
            gateway_available(&now),
            "a source change keeps the availability"
        );
        assert!(
            !now.same_content(&stamp(&first, true)),
            "and serves the new content"
        );

        available_tx.send_replace(false);
        next(&mut served).await;
        assert!(!gateway_available(&served.borrow_and_update()));

        stop.send_replace(true);
        task.await.unwrap();
    }
}
