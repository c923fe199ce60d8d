//! Per-type handling of xDS resources: decode, convert to the model, keep the last good
//! version of each resource, publish a new snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use corridor_proto::envoy::config::cluster::v3::Cluster as PbCluster;
use corridor_proto::envoy::config::endpoint::v3::ClusterLoadAssignment;
use corridor_proto::envoy::config::listener::v3::Listener as PbListener;
use corridor_proto::envoy::config::route::v3::RouteConfiguration;
use corridor_proto::envoy::service::discovery::v3::Resource;
use corridor_proto::google::protobuf::Any;
use corridor_proto::type_url;

use crate::cluster::Snapshot;
use crate::listener::{ListenerChange, ListenerManager};
use crate::model::cluster::{Cluster, Endpoints};
use crate::model::listener::Listener;
use crate::model::meta_route::MetaRouteConfig;
use crate::model::route::RouteConfig;
use crate::model::{ModelError, decode_any};
use crate::policy::identity::{PodTable, Workload};
use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteConfiguration as PbMetaRouteConfiguration;
use corridor_proto::corridor::workload::v1::Workload as PbWorkload;

/// The accepted version of one resource.
#[derive(Debug, Clone)]
pub struct Entry<M> {
    /// Version the server gave it.
    pub version: String,
    /// The resource as received (for `/config_dump`).
    pub resource: Any,
    /// Converted model.
    pub model: Arc<M>,
    /// When it was accepted.
    pub last_updated: SystemTime,
}

/// Every accepted resource, by type and name.
#[derive(Debug, Default)]
pub struct ConfigStore {
    /// LDS.
    pub listeners: BTreeMap<String, Entry<Listener>>,
    /// RDS.
    pub routes: BTreeMap<String, Entry<RouteConfig>>,
    /// CDS.
    pub clusters: BTreeMap<String, Entry<Cluster>>,
    /// EDS.
    pub endpoints: BTreeMap<String, Entry<Endpoints>>,
    /// MetaProtocol RDS (Dubbo, Thrift routes).
    pub meta_routes: BTreeMap<String, Entry<MetaRouteConfig>>,
    /// The pod table's entries (WDS), by pod IP.
    pub workloads: BTreeMap<String, Entry<Workload>>,
    /// The pod table as the data path reads it, rebuilt when an entry changes.
    pub pod_table: Arc<PodTable>,
    /// Last `system_version_info` per type URL.
    pub system_versions: BTreeMap<String, String>,
    /// Route configurations whose newest version waits for its clusters to warm up,
    /// and since when.
    pub warming: BTreeMap<String, Instant>,
}

impl ConfigStore {
    /// RDS names the listeners reference.
    pub fn referenced_routes(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter_map(|e| e.model.route_config().map(str::to_string))
            .collect()
    }

    /// MetaProtocol RDS names the listeners reference.
    pub fn referenced_meta_routes(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter_map(|e| e.model.meta_route_config().map(str::to_string))
            .collect()
    }

    /// EDS names the clusters reference.
    pub fn referenced_endpoints(&self) -> BTreeSet<String> {
        self.clusters
            .values()
            .filter(|e| e.model.inline_endpoints.is_none())
            .map(|e| e.model.eds_name.clone())
            .collect()
    }
}

/// How long a new route configuration may wait for its clusters to get endpoints before
/// it applies anyway (Envoy's initial fetch timeout).
pub const WARMING_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of applying one response.
#[derive(Debug, Default)]
pub struct Applied {
    /// Accepted resources and their versions.
    pub accepted: Vec<(String, String)>,
    /// Rejected resources and why.
    pub rejected: Vec<(String, String)>,
    /// Removed names.
    pub removed: Vec<String>,
}

/// Applies xDS resources to the store, the listener manager and the published snapshot.
#[derive(Debug, Clone)]
pub struct XdsState {
    /// The store (read by the admin server; never locked across an await).
    pub store: Arc<Mutex<ConfigStore>>,
    /// The data path's snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Bound listeners.
    pub listeners: Arc<ListenerManager>,
}

/// A typed resource handler: how to convert one type.
trait Handler {
    type Proto: prost::Message + prost::Name + Default;
    type Model;
    fn convert(p: &Self::Proto) -> Result<Self::Model, ModelError>;
    fn name(p: &Self::Proto) -> &str;
}

struct Lds;
struct Rds;
struct MetaRds;
struct Cds;
struct Eds;
struct Wds;

impl Handler for Lds {
    type Proto = PbListener;
    type Model = Listener;
    fn convert(p: &PbListener) -> Result<Listener, ModelError> {
        Listener::try_from(p)
    }
    fn name(p: &PbListener) -> &str {
        &p.name
    }
}

impl Handler for Rds {
    type Proto = RouteConfiguration;
    type Model = RouteConfig;
    fn convert(p: &RouteConfiguration) -> Result<RouteConfig, ModelError> {
        RouteConfig::try_from(p)
    }
    fn name(p: &RouteConfiguration) -> &str {
        &p.name
    }
}

impl Handler for MetaRds {
    type Proto = PbMetaRouteConfiguration;
    type Model = MetaRouteConfig;
    fn convert(p: &PbMetaRouteConfiguration) -> Result<MetaRouteConfig, ModelError> {
        MetaRouteConfig::try_from(p)
    }
    fn name(p: &PbMetaRouteConfiguration) -> &str {
        &p.name
    }
}

impl Handler for Cds {
    type Proto = PbCluster;
    type Model = Cluster;
    fn convert(p: &PbCluster) -> Result<Cluster, ModelError> {
        Cluster::try_from(p)
    }
    fn name(p: &PbCluster) -> &str {
        &p.name
    }
}

impl Handler for Eds {
    type Proto = ClusterLoadAssignment;
    type Model = Endpoints;
    fn convert(p: &ClusterLoadAssignment) -> Result<Endpoints, ModelError> {
        Endpoints::try_from(p)
    }
    fn name(p: &ClusterLoadAssignment) -> &str {
        &p.cluster_name
    }
}

impl Handler for Wds {
    type Proto = PbWorkload;
    type Model = Workload;
    fn convert(p: &PbWorkload) -> Result<Workload, ModelError> {
        Workload::try_from(p)
    }
    fn name(p: &PbWorkload) -> &str {
        &p.ip
    }
}

/// Converts each resource on its own into `map`; rejected ones leave the last good
/// version in place. Returns what changed.
fn apply_typed<H: Handler>(
    map: &mut BTreeMap<String, Entry<H::Model>>,
    resources: &[Resource],
    removed: &[String],
    out: &mut Applied,
) -> Vec<String> {
    let mut changed = Vec::new();
    for r in resources {
        let name = r.name.clone();
        let Some(any) = &r.resource else {
            out.rejected.push((name, "resource body missing".into()));
            continue;
        };
        if let Some(old) = map.get(&name)
            && old.resource == *any
        {
            // Same encoding: nothing to do, but the (new) version is the server's now.
            out.accepted.push((name.clone(), r.version.clone()));
            if let Some(e) = map.get_mut(&name) {
                e.version = r.version.clone();
            }
            continue;
        }
        let converted = decode_any::<H::Proto>(any).and_then(|p| {
            if !name.is_empty() && H::name(&p) != name {
                return Err(ModelError::invalid(
                    "name",
                    format!("resource named {:?} carries {:?}", name, H::name(&p)),
                ));
            }
            H::convert(&p)
        });
        match converted {
            Ok(model) => {
                let entry = Entry {
                    version: r.version.clone(),
                    resource: any.clone(),
                    model: Arc::new(model),
                    last_updated: SystemTime::now(),
                };
                map.insert(name.clone(), entry);
                out.accepted.push((name.clone(), r.version.clone()));
                changed.push(name);
            }
            Err(e) => out.rejected.push((name, e.to_string())),
        }
    }
    for name in removed {
        if map.remove(name).is_some() {
            changed.push(name.clone());
        }
        out.removed.push(name.clone());
    }
    changed
}

impl XdsState {
    /// Applies one response's resources of `type_url`.
    pub fn apply(
        &self,
        type_url: &str,
        system_version: &str,
        resources: &[Resource],
        removed: &[String],
    ) -> Applied {
        let mut out = Applied::default();
        let Ok(mut store) = self.store.lock() else {
            out.rejected.extend(
                resources
                    .iter()
                    .map(|r| (r.name.clone(), "internal: store poisoned".to_string())),
            );
            return out;
        };
        if !system_version.is_empty() {
            store
                .system_versions
                .insert(type_url.to_string(), system_version.to_string());
        }
        match type_url {
            type_url::LISTENER => {
                let before: BTreeMap<String, Entry<Listener>> = store.listeners.clone();
                let changed =
                    apply_typed::<Lds>(&mut store.listeners, resources, removed, &mut out);
                let changes = changed
                    .iter()
                    .map(|n| match store.listeners.get(n) {
                        Some(e) => ListenerChange::Upsert(e.model.clone()),
                        None => ListenerChange::Remove(n.clone()),
                    })
                    .collect();
                for (name, err) in self.listeners.apply(changes) {
                    // Keep the last good version (if any): the new one never took effect.
                    match before.get(&name) {
                        Some(old) => store.listeners.insert(name.clone(), old.clone()),
                        None => store.listeners.remove(&name),
                    };
                    out.accepted.retain(|(n, _)| *n != name);
                    out.rejected.push((name, err.to_string()));
                }
                return out;
            }
            type_url::ROUTE => {
                apply_typed::<Rds>(&mut store.routes, resources, removed, &mut out);
            }
            type_url::META_ROUTE => {
                apply_typed::<MetaRds>(&mut store.meta_routes, resources, removed, &mut out);
            }
            type_url::CLUSTER => {
                apply_typed::<Cds>(&mut store.clusters, resources, removed, &mut out);
            }
            type_url::ENDPOINT => {
                apply_typed::<Eds>(&mut store.endpoints, resources, removed, &mut out);
            }
            type_url::WORKLOAD => {
                let changed =
                    apply_typed::<Wds>(&mut store.workloads, resources, removed, &mut out);
                if !changed.is_empty() {
                    store.pod_table = Arc::new(
                        store
                            .workloads
                            .values()
                            .map(|e| (e.model.ip, e.model.clone()))
                            .collect(),
                    );
                }
            }
            other => {
                out.rejected.extend(
                    resources
                        .iter()
                        .map(|r| (r.name.clone(), format!("unsupported type {other}"))),
                );
                return out;
            }
        }
        self.publish(&mut store);
        out
    }

    /// Drops resources the gateway no longer subscribes to.
    pub fn forget(&self, type_url: &str, names: &[String]) {
        let Ok(mut store) = self.store.lock() else {
            return;
        };
        for n in names {
            match type_url {
                type_url::ROUTE => {
                    store.routes.remove(n);
                }
                type_url::ENDPOINT => {
                    store.endpoints.remove(n);
                }
                type_url::META_ROUTE => {
                    store.meta_routes.remove(n);
                }
                _ => {}
            }
        }
        self.publish(&mut store);
    }

    /// Publishes a new snapshot. A route configuration update that sends traffic to a
    /// cluster whose endpoints have not arrived yet (its EDS subscription only starts when
    /// the cluster arrives, often after the route) keeps the previous version in service
    /// until they do, or until [`WARMING_TIMEOUT`]: switching at once would fail requests.
    fn publish(&self, store: &mut ConfigStore) {
        let prev = self.snapshot.load();
        let now = Instant::now();
        let warm = |c: &str| {
            store.clusters.get(c).is_some_and(|e| {
                e.model.inline_endpoints.is_some()
                    || store.endpoints.contains_key(&e.model.eds_name)
            })
        };
        let mut routes = BTreeMap::new();
        let mut warming = BTreeMap::new();
        for (name, e) in &store.routes {
            let old = prev
                .routes
                .get(name)
                .filter(|old| !Arc::ptr_eq(old, &e.model));
            let cold = e.model.clusters.iter().any(|c| !warm(c));
            let since = store.warming.get(name).copied().unwrap_or(now);
            let chosen = match old {
                Some(old) if cold && now.duration_since(since) < WARMING_TIMEOUT => {
                    if !store.warming.contains_key(name) {
                        tracing::debug!(route_config = %name, "new version waits for its clusters' endpoints");
                        self.republish_after(WARMING_TIMEOUT);
                    }
                    warming.insert(name.clone(), since);
                    old.clone()
                }
                _ => {
                    if cold && old.is_some() {
                        tracing::warn!(route_config = %name, "clusters still without endpoints after the warming timeout; applying anyway");
                    }
                    e.model.clone()
                }
            };
            routes.insert(name.clone(), chosen);
        }
        store.warming = warming;
        let clusters = store
            .clusters
            .iter()
            .map(|(k, e)| (k.clone(), e.model.clone()))
            .collect();
        let endpoints = store
            .endpoints
            .iter()
            .map(|(k, e)| (k.clone(), e.model.clone()))
            .collect();
        let mut next = Snapshot::build(&routes, &clusters, &endpoints, &prev);
        next.workloads = store.pod_table.clone();
        // MetaProtocol routes apply as they come (no warming yet: their clusters usually
        // arrive in the same push as the listener that references them).
        next.meta_routes = store
            .meta_routes
            .iter()
            .map(|(k, e)| (k.clone(), e.model.clone()))
            .collect();
        self.snapshot.store(Arc::new(next));
    }

    fn republish_after(&self, delay: Duration) {
        let state = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay + Duration::from_millis(10)).await;
            if let Ok(mut store) = state.store.lock() {
                state.publish(&mut store);
            }
        });
    }
}
