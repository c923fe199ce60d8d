//! One watch per API (kube-rs `watcher`, restarted with kube's default backoff), feeding
//! [`Reflected`](super::reflect::Reflected).
//!
//! A complete list (the first one, and every relist after a 410 Gone) replaces the
//! kind's objects, so objects deleted while the watch was down disappear. An API the
//! cluster does not serve (404 on list: a CRD not installed) is tried in its older
//! versions, then counts as off: its objects are dropped, that is logged once, and it is
//! looked for again every [`WatchOptions::recheck`], so installing the CRD later turns
//! it on without a restart. An API the controller may not list (403: the chart can leave
//! Secrets out of its RBAC) is off the same way.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use ::kube::{
    Api, Client,
    api::DynamicObject,
    runtime::{WatchStreamExt, watcher},
};
use futures::StreamExt;
use tokio::sync::watch;

use super::{
    apis::WatchedApi,
    reflect::{Read, Shared, read},
};
use crate::{
    probe::{Metrics, ReadyTask},
    resources::Kind,
    source::trim,
};

/// Default period at which an API found missing is looked for again: a CRD installed
/// after the controller starts is picked up within half a minute, and a cluster without
/// it sees one list request per API per half minute.
pub const API_RECHECK: Duration = Duration::from_secs(30);

/// Pause before listing again an API whose watch found it gone.
const RELIST_PAUSE: Duration = Duration::from_secs(1);

/// How the watches behave.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How often an API found missing is looked for again.
    pub recheck: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            recheck: API_RECHECK,
        }
    }
}

/// Kinds whose first complete list (or the finding that the API is off) is still to
/// come.
pub type Pending = watch::Sender<BTreeSet<Kind>>;

/// What one watch task needs.
pub struct WatchTask {
    /// The client.
    pub client: Client,
    /// The API watched.
    pub api: &'static WatchedApi,
    /// Where objects go.
    pub shared: Arc<Shared>,
    /// Cleared at the first complete list.
    pub ready: Option<ReadyTask>,
    /// Kinds not synced yet.
    pub pending: Arc<Pending>,
    /// Restart counters.
    pub metrics: Arc<Metrics>,
    /// Options.
    pub opts: WatchOptions,
}

impl WatchTask {
    fn synced(&mut self) {
        self.ready.take();
        self.pending.send_if_modified(|p| p.remove(&self.api.kind));
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let api = self.api;
        let mut version_index = 0;
        let mut off_logged = false;
        'versions: loop {
            let version = api.versions[version_index];
            let objects: Api<DynamicObject> =
                Api::all_with(self.client.clone(), &api.resource(version));
            let mut config = watcher::Config::default();
            if api.kind == Kind::Secret {
                config = config.fields(&trim::ignored_secret_types_selector());
            }
            let mut stream = std::pin::pin!(watcher(objects, config).default_backoff());
            let mut buffer: Vec<Read> = Vec::new();
            let mut failing = false;
            loop {
                let item = tokio::select! {
                    _ = shutdown.wait_for(|v| *v) => return,
                    item = stream.next() => item,
                };
                let Some(item) = item else {
                    continue 'versions;
                };
                match item {
                    Ok(watcher::Event::Init) => buffer.clear(),
                    Ok(watcher::Event::InitApply(o)) => buffer.push(read(api, version, o)),
                    Ok(watcher::Event::InitDone) => {
                        let reads = std::mem::take(&mut buffer);
                        let first = self.shared.lock().version(api.kind) != Some(version);
                        if first {
                            tracing::info!(api = %api.describe(), version, objects = reads.len(), "watching");
                        } else if failing {
                            tracing::info!(api = %api.describe(), objects = reads.len(), "watch recovered (relisted)");
                        }
                        failing = false;
                        off_logged = false;
                        self.shared.update(|r| {
                            r.set_version(api.kind, Some(version));
                            r.replace_kind(api.kind, reads)
                        });
                        self.synced();
                    }
                    Ok(watcher::Event::Apply(o)) => {
                        let read = read(api, version, o);
                        self.shared.update(|r| r.apply(read));
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let read = read(api, version, o);
                        self.shared.update(|r| r.delete(&read.object));
                    }
                    Err(watcher::Error::InitialListFailed(e))
                        if is_not_found(&e) || is_forbidden(&e) =>
                    {
                        if is_not_found(&e) && version_index + 1 < api.versions.len() {
                            version_index += 1;
                            continue 'versions;
                        }
                        if !off_logged {
                            if is_forbidden(&e) {
                                tracing::warn!(
                                    api = %api.describe(),
                                    recheck = ?self.opts.recheck,
                                    "not allowed to list it (RBAC): this API is off until list and watch are granted"
                                );
                            } else {
                                tracing::info!(
                                    api = %api.describe(),
                                    recheck = ?self.opts.recheck,
                                    "not served by this cluster (is its CRD installed?): this API is off until it appears"
                                );
                            }
                            off_logged = true;
                        }
                        let had = self.shared.lock().version(api.kind).is_some();
                        if had {
                            self.shared.update(|r| {
                                r.set_version(api.kind, None);
                                r.replace_kind(api.kind, Vec::new());
                                true
                            });
                        }
                        self.synced();
                        tokio::select! {
                            _ = shutdown.wait_for(|v| *v) => return,
                            () = tokio::time::sleep(self.opts.recheck) => {}
                        }
                        version_index = 0;
                        continue 'versions;
                    }
                    Err(watcher::Error::WatchStartFailed(e)) if is_not_found(&e) => {
                        // Gone while watched (its CRD deleted): start over with a list,
                        // after a pause so that a server answering lists but not watches
                        // is not hammered.
                        tracing::info!(api = %api.describe(), "no longer served; listing again");
                        self.metrics.watch_restarted(api.kind_name);
                        tokio::select! {
                            _ = shutdown.wait_for(|v| *v) => return,
                            () = tokio::time::sleep(RELIST_PAUSE) => {}
                        }
                        continue 'versions;
                    }
                    Err(e) => {
                        self.metrics.watch_restarted(api.kind_name);
                        let expired = matches!(&e, watcher::Error::WatchError(s) if s.code == 410);
                        if expired {
                            tracing::debug!(api = %api.describe(), "watch expired (410 Gone); relisting");
                        } else if !failing {
                            tracing::warn!(api = %api.describe(), error = %e, "watch failed; retrying with backoff (is the API server reachable, and may this service account list and watch it?)");
                        } else {
                            tracing::debug!(api = %api.describe(), error = %e, "watch failed again");
                        }
                        failing |= !expired;
                    }
                }
            }
        }
    }
}

fn is_not_found(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(s) if s.code == 404)
}

fn is_forbidden(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(s) if s.code == 403)
}
