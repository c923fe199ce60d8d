//! Sources of objects and the pipeline that turns them into published snapshots:
//! source (manifests directory or Kubernetes API) → store → admission → translator →
//! watch channel.

pub mod file;
pub mod trim;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use crate::{
    admission::{Admission, Verdicts},
    probe::Metrics,
    resources::ObjectRef,
    store::{ObjectKey, Store},
    translate::{TranslateOptions, gateway_addresses, translate},
    xds::snapshot::Snapshot,
};

/// Longest a stream of change events can postpone a push: under continuous changes the
/// controller still publishes at this multiple of the debounce.
const MAX_DEBOUNCE_FACTOR: u32 = 10;

/// Where objects come from. Implementations parse every object through
/// [`crate::resources::parse_document`] and [`trim::admit`], so both sources build the
/// same store from the same objects.
pub trait Source: Send + 'static {
    /// Brings the source up to date; true when any object may have changed.
    fn refresh(&mut self) -> bool;

    /// The objects known now.
    fn store(&self) -> Store;

    /// Where an object came from, for log lines (a file path, the API server).
    fn origin(&self, object: &ObjectRef) -> String;

    /// Routing objects whose current version could not be read at all (the store keeps
    /// their last good version, if any), and why.
    fn unreadable(&self) -> Verdicts {
        Verdicts::new()
    }
}

/// Everything needed to go from a source to a snapshot, owned by one task.
pub struct Pipeline {
    source: Box<dyn Source>,
    admission: Admission,
    opts: TranslateOptions,
    /// Gateway addresses last logged, so that only changes are logged.
    addresses: BTreeMap<ObjectKey, Ipv4Addr>,
    store: watch::Sender<Arc<Store>>,
    verdicts: watch::Sender<Arc<Verdicts>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline over a source.
    pub fn new(source: impl Source, opts: TranslateOptions) -> Self {
        Self {
            source: Box::new(source),
            admission: Admission::default(),
            opts,
            addresses: BTreeMap::new(),
            store: watch::channel(Arc::new(Store::default())).0,
            verdicts: watch::channel(Arc::new(Verdicts::new())).0,
        }
    }

    /// The admitted store of every translation (what the translator saw), for the
    /// leader's writers.
    pub fn stores(&self) -> watch::Receiver<Arc<Store>> {
        self.store.subscribe()
    }

    /// The verdict on every routing object after each translation, for status
    /// conditions.
    pub fn verdicts(&self) -> watch::Receiver<Arc<Verdicts>> {
        self.verdicts.subscribe()
    }

    /// Brings the source up to date; when anything changed, returns the new snapshot.
    pub fn refresh(&mut self) -> Option<Snapshot> {
        if !self.source.refresh() {
            return None;
        }
        Some(self.translate())
    }

    /// Translates what is known now.
    pub fn translate(&mut self) -> Snapshot {
        let mut store = self.source.store();
        let source = &self.source;
        self.admission
            .admit(&mut store, &self.opts, &|r| source.origin(r));
        self.log_addresses(&store);
        let snapshot = translate(&store, &self.opts);

        let mut verdicts = self.admission.verdicts();
        verdicts.extend(self.source.unreadable());
        self.verdicts.send_if_modified(|v| {
            let changed = **v != verdicts;
            if changed {
                *v = Arc::new(verdicts);
            }
            changed
        });
        self.store.send_replace(Arc::new(store));
        snapshot
    }

    /// Logs which gateway address each newly meshed service got, and unmeshed services.
    fn log_addresses(&mut self, store: &Store) {
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

/// What makes the pipeline look at its source again.
#[derive(Debug)]
pub struct Triggers {
    /// A message per change (file event, watch event); bursts are debounced.
    pub changes: mpsc::UnboundedReceiver<()>,
    /// Quiet period after a change before translating.
    pub debounce: Duration,
    /// Safety-net period at which the source is refreshed anyway.
    pub rescan: Option<Duration>,
}

/// Refreshes the source on every (debounced) change and on the rescan period, and
/// publishes every changed snapshot on `tx`. Ends when `shutdown` flips to true.
pub async fn run(
    mut pipeline: Pipeline,
    tx: watch::Sender<Arc<Snapshot>>,
    mut triggers: Triggers,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let debounce = triggers.debounce;
    // A week stands in for "never" when there is no rescan.
    let period = triggers
        .rescan
        .unwrap_or(Duration::from_secs(7 * 24 * 3600));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut open = true;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            event = triggers.changes.recv(), if open => {
                if event.is_none() {
                    open = false;
                    continue;
                }
                let deadline = tokio::time::Instant::now() + debounce * MAX_DEBOUNCE_FACTOR;
                loop {
                    tokio::select! {
                        Some(()) = triggers.changes.recv() => if tokio::time::Instant::now() >= deadline { break },
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
                tracing::error!(error = %e, "translation task failed; the source stops");
                return;
            }
        };
        if let Some(s) = snapshot
            && publish(&tx, s)
        {
            metrics.snapshots_published.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Publishes a snapshot when it differs from the current one; true when it did.
pub fn publish(tx: &watch::Sender<Arc<Snapshot>>, snapshot: Snapshot) -> bool {
    let changed = !tx.borrow().same_content(&snapshot);
    if changed {
        tracing::info!(resources = %snapshot.summary(), "publishing a new snapshot");
        tx.send_replace(Arc::new(snapshot));
    } else {
        tracing::debug!("the source changed but the snapshot did not");
    }
    changed
}
