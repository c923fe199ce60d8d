//! The Kubernetes source: a watch per API (see [`super::watch`]) filling one
//! [`Reflected`](super::reflect::Reflected), read by the pipeline like the manifests
//! directory.

use std::{collections::BTreeSet, sync::Arc};

use ::kube::Client;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    apis::WATCHED,
    reflect::Shared,
    watch::{WatchOptions, WatchTask},
};
use crate::{
    admission::Verdicts,
    probe::{Metrics, Readiness},
    resources::{Kind, ObjectRef},
    source::{Source, Triggers},
    store::Store,
};

/// The pipeline's view of the watches.
#[derive(Debug)]
pub struct KubeSource {
    shared: Arc<Shared>,
    revisions: watch::Receiver<u64>,
}

impl Source for KubeSource {
    fn refresh(&mut self) -> bool {
        self.revisions.has_changed().unwrap_or(false) && {
            self.revisions.mark_unchanged();
            true
        }
    }

    fn store(&self) -> Store {
        self.shared.lock().store().clone()
    }

    fn origin(&self, _object: &ObjectRef) -> String {
        "the Kubernetes API".to_string()
    }

    fn unreadable(&self) -> Verdicts {
        self.shared.lock().unreadable().clone()
    }
}

/// The running watches.
#[derive(Debug)]
pub struct Watches {
    /// What the watches have seen (the status writer reads the conditions there).
    pub shared: Arc<Shared>,
    changes: Option<mpsc::UnboundedReceiver<()>>,
    pending: watch::Receiver<BTreeSet<Kind>>,
    /// The watch tasks; they end on shutdown.
    pub task: JoinHandle<()>,
}

impl Watches {
    /// Starts a watch for every API of [`WATCHED`]. Each registers a readiness task
    /// that clears with its first complete list (or the finding that the API is off).
    pub fn start(
        client: Client,
        readiness: &Arc<Readiness>,
        metrics: Arc<Metrics>,
        opts: WatchOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Watches {
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(changes_tx));
        let pending =
            Arc::new(watch::channel(WATCHED.iter().map(|a| a.kind).collect::<BTreeSet<_>>()).0);
        let pending_rx = pending.subscribe();
        let tasks: Vec<JoinHandle<()>> = WATCHED
            .iter()
            .map(|api| {
                let task = WatchTask {
                    client: client.clone(),
                    api,
                    shared: shared.clone(),
                    ready: Some(readiness.task(format!("initial list of {}", api.kind_name))),
                    pending: pending.clone(),
                    metrics: metrics.clone(),
                    opts: opts.clone(),
                };
                tokio::spawn(task.run(shutdown.clone()))
            })
            .collect();
        let task = tokio::spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
        });
        Watches {
            shared,
            changes: Some(changes),
            pending: pending_rx,
            task,
        }
    }

    /// Waits until every API has been listed once (or found off). Logs which are still
    /// pending every `every`, so a controller that cannot reach the API server says so.
    pub async fn synced(&mut self, every: std::time::Duration) {
        loop {
            let waited = tokio::time::timeout(every, self.pending.wait_for(BTreeSet::is_empty))
                .await
                .map(|r| r.is_ok());
            match waited {
                Ok(_) => return,
                Err(_) => {
                    let names: Vec<String> = self
                        .pending
                        .borrow()
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    tracing::warn!(pending = %names.join(", "), "still waiting for the initial lists (is the API server reachable?)");
                }
            }
        }
    }

    /// The pipeline's source and what triggers it. The source starts "changed", so the
    /// first refresh translates.
    pub fn source(&mut self, debounce: std::time::Duration) -> (KubeSource, Triggers) {
        let mut revisions = self.shared.revisions();
        revisions.mark_changed();
        let source = KubeSource {
            shared: self.shared.clone(),
            revisions,
        };
        let (_, closed) = mpsc::unbounded_channel();
        let triggers = Triggers {
            changes: self.changes.take().unwrap_or(closed),
            debounce,
            rescan: None,
        };
        (source, triggers)
    }
}
