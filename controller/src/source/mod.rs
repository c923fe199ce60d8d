//! Sources of objects and the pipeline that turns them into published snapshots:
//! manifests directory → store → admission → translator → watch channel.

pub mod file;

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc, time::Duration};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::{
    admission::Admission,
    store::ObjectKey,
    translate::{TranslateOptions, gateway_addresses, translate},
    xds::snapshot::Snapshot,
};

use file::ManifestDir;

/// Longest a stream of file events can postpone a push: under continuous writes the
/// controller still publishes at this multiple of the debounce.
const MAX_DEBOUNCE_FACTOR: u32 = 10;

/// Everything needed to go from files to a snapshot, owned by one task.
#[derive(Debug)]
pub struct Pipeline {
    dir: ManifestDir,
    admission: Admission,
    opts: TranslateOptions,
    /// Gateway addresses last logged, so that only changes are logged.
    addresses: BTreeMap<ObjectKey, Ipv4Addr>,
}

impl Pipeline {
    /// A pipeline over a manifests directory.
    pub fn new(dir: ManifestDir, opts: TranslateOptions) -> Self {
        Self {
            dir,
            admission: Admission::default(),
            opts,
            addresses: BTreeMap::new(),
        }
    }

    /// Rescans the directory; when anything changed, returns the new snapshot.
    pub fn refresh(&mut self) -> Option<Snapshot> {
        if !self.dir.rescan() {
            return None;
        }
        Some(self.translate())
    }

    /// Translates what is known now.
    pub fn translate(&mut self) -> Snapshot {
        let (mut store, origins) = self.dir.store();
        let origin = |r: &crate::resources::ObjectRef| {
            origins
                .get(r)
                .map_or_else(|| "<unknown file>".to_string(), |p| p.display().to_string())
        };
        self.admission.admit(&mut store, &self.opts, &origin);
        self.log_addresses(&store);
        translate(&store, &self.opts)
    }

    /// Logs which gateway address each newly meshed service got, and unmeshed services.
    fn log_addresses(&mut self, store: &crate::store::Store) {
        let now = gateway_addresses(store, &self.opts);
        for (key, addr) in &now {
            if self.addresses.get(key) != Some(addr) {
                tracing::info!(service = %key, gateway_address = %addr, "service meshed");
            }
        }
        for key in self.addresses.keys().filter(|k| !now.contains_key(*k)) {
            tracing::info!(service = %key, "service no longer meshed");
        }
        self.addresses = now;
    }
}

/// Watches the directory (events, plus a periodic rescan as a safety net), debounces,
/// and publishes every changed snapshot on `tx`. Ends when `shutdown` flips to true.
pub async fn run(
    mut pipeline: Pipeline,
    tx: watch::Sender<Arc<Snapshot>>,
    debounce: Duration,
    rescan: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (event_tx, mut events) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = event_tx.send(());
        }
    })
    .and_then(|mut w| {
        w.watch(pipeline.dir.root(), RecursiveMode::Recursive)
            .map(|()| w)
    });
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the manifests directory; relying on the periodic rescan");
            None
        }
    };
    let mut ticker = tokio::time::interval(rescan);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(()) = events.recv() => {
                let deadline = tokio::time::Instant::now() + debounce * MAX_DEBOUNCE_FACTOR;
                loop {
                    tokio::select! {
                        Some(()) = events.recv() => if tokio::time::Instant::now() >= deadline { break },
                        _ = tokio::time::sleep(debounce) => break,
                    }
                }
            }
            _ = ticker.tick() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        let task = tokio::task::spawn_blocking(move || {
            let snapshot = pipeline.refresh();
            (pipeline, snapshot)
        });
        let snapshot;
        (pipeline, snapshot) = match task.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "translation task failed; the file source stops");
                return;
            }
        };
        if let Some(s) = snapshot {
            publish(&tx, s);
        }
    }
}

/// Publishes a snapshot when it differs from the current one.
pub fn publish(tx: &watch::Sender<Arc<Snapshot>>, snapshot: Snapshot) {
    let changed = !tx.borrow().same_content(&snapshot);
    if changed {
        tracing::info!(resources = %snapshot.summary(), "publishing a new snapshot");
        tx.send_replace(Arc::new(snapshot));
    } else {
        tracing::debug!("files changed but the snapshot did not");
    }
}
