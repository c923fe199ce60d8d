//! What the watches have seen: the store the Kubernetes source hands the pipeline, built
//! object by object through the same parsing as the file source
//! ([`crate::resources::parse_document`], then [`crate::source::trim::admit`]).
//!
//! No kube-rs reflector cache is kept besides it: each object is converted into its
//! typed form as it arrives and the API's JSON is dropped, so memory holds one trimmed
//! copy of each object.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard},
};

use ::kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::apis::WatchedApi;
use crate::{
    admission::{Verdict, Verdicts},
    resources::{DEFAULT_OBJECT_NAMESPACE, Kind, Object, ObjectRef, one_line, parse_document},
    source::trim,
    store::{ObjectKey, Store},
};

/// One object as read from the API.
#[derive(Debug)]
pub struct Read {
    /// Which object.
    pub object: ObjectRef,
    /// The typed object (None: not kept, see [`trim::admit`]), or why it could not be read.
    pub parsed: Result<Option<Object>, String>,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Its `status.conditions` (routing kinds).
    pub conditions: Option<Vec<Value>>,
}

/// Converts an object of `api` served in `version`.
pub fn read(api: &WatchedApi, version: &str, object: DynamicObject) -> Read {
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    // List items of built-in kinds come without apiVersion and kind.
    value["apiVersion"] = Value::String(api.api_version(version));
    value["kind"] = Value::String(api.kind_name.to_string());
    let namespace = match api.kind {
        Kind::Namespace => String::new(),
        _ => object
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_OBJECT_NAMESPACE.to_string()),
    };
    let object_ref = ObjectRef {
        kind: api.kind,
        namespace,
        name: object.metadata.name.clone().unwrap_or_default(),
    };
    let conditions = api
        .routing
        .then(|| {
            value
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
        })
        .flatten();
    let parsed = serde_yaml_ng::to_value(&value)
        .map_err(|e| e.to_string())
        .and_then(|doc| match parse_document(doc).pop() {
            Some(Ok(o)) => Ok(trim::admit(o)),
            Some(Err(e)) => Err(e.reason),
            None => Err("not an object the controller reads".to_string()),
        });
    Read {
        object: object_ref,
        parsed,
        generation: object.metadata.generation,
        conditions,
    }
}

/// The objects seen so far, and what the status writer needs to know about them.
#[derive(Debug, Default)]
pub struct Reflected {
    store: Store,
    /// Every object listed or watched, by kind, stored or not (for relists).
    keys: BTreeMap<Kind, BTreeSet<ObjectKey>>,
    /// The objects in the store.
    stored: BTreeSet<ObjectRef>,
    unreadable: Verdicts,
    conditions: BTreeMap<ObjectRef, Vec<Value>>,
    versions: BTreeMap<Kind, &'static str>,
}

impl Reflected {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Routing objects whose current version does not parse, and why.
    pub fn unreadable(&self) -> &Verdicts {
        &self.unreadable
    }

    /// `status.conditions` of each routing object, as the API holds them.
    pub fn conditions(&self) -> &BTreeMap<ObjectRef, Vec<Value>> {
        &self.conditions
    }

    /// The version each kind is watched (and written) in.
    pub fn version(&self, kind: Kind) -> Option<&'static str> {
        self.versions.get(&kind).copied()
    }

    /// Records the served version of a kind (None: the API is off).
    pub fn set_version(&mut self, kind: Kind, version: Option<&'static str>) {
        match version {
            Some(v) => drop(self.versions.insert(kind, v)),
            None => drop(self.versions.remove(&kind)),
        }
    }

    /// Adds or updates one object; true when anything changed. One that does not parse
    /// keeps its last good version in the store (as a file that fails to parse does).
    pub fn apply(&mut self, read: Read) -> bool {
        let key = ObjectKey::from(&read.object);
        let mut changed = match read.conditions {
            Some(c) => self.conditions.insert(read.object.clone(), c.clone()) != Some(c),
            None => self.conditions.remove(&read.object).is_some(),
        };
        match read.parsed {
            Ok(Some(object)) => {
                changed |= self.unreadable.remove(&read.object).is_some();
                self.keys.entry(read.object.kind).or_default().insert(key);
                self.stored.insert(read.object);
                changed |= !holds(&self.store, &object);
                self.store.insert(object);
            }
            Ok(None) => changed |= self.delete(&read.object),
            Err(reason) => {
                let kept = self.stored.contains(&read.object);
                let repeat = self.unreadable.get(&read.object).is_some_and(|v| {
                    v.rejection.as_deref() == Some(reason.as_str())
                        && v.generation == read.generation
                });
                if !repeat {
                    let keeping = if kept {
                        "keeping its last good version"
                    } else {
                        "no earlier version to keep"
                    };
                    tracing::warn!("{}: {}; {keeping}", read.object, one_line(&reason));
                }
                self.keys.entry(read.object.kind).or_default().insert(key);
                if is_routing(read.object.kind) {
                    changed |= !repeat;
                    self.unreadable
                        .insert(read.object, Verdict::rejected(read.generation, reason));
                }
            }
        }
        changed
    }

    /// Removes one object; true when it was known.
    pub fn delete(&mut self, object: &ObjectRef) -> bool {
        let mut known = self.store.remove(object);
        self.stored.remove(object);
        if let Some(keys) = self.keys.get_mut(&object.kind) {
            known |= keys.remove(&ObjectKey::from(object));
        }
        known |= self.unreadable.remove(object).is_some();
        known |= self.conditions.remove(object).is_some();
        known
    }

    /// Replaces every object of `kind` with `reads` (a complete list): objects not in it
    /// are gone. True when anything changed.
    pub fn replace_kind(&mut self, kind: Kind, reads: Vec<Read>) -> bool {
        let listed: BTreeSet<ObjectKey> =
            reads.iter().map(|r| ObjectKey::from(&r.object)).collect();
        let gone: Vec<ObjectKey> = self
            .keys
            .get(&kind)
            .map(|keys| keys.difference(&listed).cloned().collect())
            .unwrap_or_default();
        let mut changed = false;
        for key in gone {
            changed |= self.delete(&ObjectRef {
                kind,
                namespace: key.namespace,
                name: key.name,
            });
        }
        for read in reads {
            changed |= self.apply(read);
        }
        changed
    }
}

/// True when `store` holds exactly `object`.
fn holds(store: &Store, object: &Object) -> bool {
    let r = object.object_ref();
    let key = ObjectKey::from(&r);
    match object {
        Object::Namespace(o) => store.namespaces.get(&key) == Some(o),
        Object::Service(o) => store.services.get(&key) == Some(o),
        Object::Pod(o) => store.pods.get(&key) == Some(o),
        Object::EndpointSlice(o) => store.endpoint_slices.get(&key) == Some(o),
        Object::VirtualService(o) => store.virtual_services.get(&key) == Some(o),
        Object::DestinationRule(o) => store.destination_rules.get(&key) == Some(o),
        Object::MetaRouter(o) => store.meta_routers.get(&key) == Some(o),
        Object::Secret(o) => store.secrets.get(&key) == Some(o),
        Object::RedisService(o) => store.redis_services.get(&key) == Some(o),
        Object::RedisDestination(o) => store.redis_destinations.get(&key) == Some(o),
        Object::AuthorizationPolicy(o) => store.authorization_policies.get(&key) == Some(o),
    }
}

/// True for the kinds whose status the leader writes.
fn is_routing(kind: Kind) -> bool {
    super::apis::watched(kind).is_some_and(|a| a.routing)
}

/// [`Reflected`] shared between the watch tasks, the pipeline and the status writer,
/// with change notifications.
#[derive(Debug)]
pub struct Shared {
    reflected: Mutex<Reflected>,
    changes: mpsc::UnboundedSender<()>,
    revision: watch::Sender<u64>,
}

impl Shared {
    /// Shared state; every change sends a message on `changes` (the pipeline's trigger).
    pub fn new(changes: mpsc::UnboundedSender<()>) -> Self {
        Self {
            reflected: Mutex::new(Reflected::default()),
            changes,
            revision: watch::channel(0).0,
        }
    }

    /// Reads the state.
    pub fn lock(&self) -> MutexGuard<'_, Reflected> {
        self.reflected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state and, when `change` says it changed anything, tells everyone who
    /// follows it.
    pub fn update(&self, change: impl FnOnce(&mut Reflected) -> bool) {
        let changed = change(&mut self.lock());
        if changed {
            self.revision.send_modify(|r| *r += 1);
            let _ = self.changes.send(());
        }
    }

    /// The revision, bumped on every change.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::apis::watched;

    fn vs(hosts: &str, resource_version: &str, conditions: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": resource_version, "generation": 1},
            "spec": {"hosts": [hosts]}, "status": {"conditions": conditions}}))
        .unwrap()
    }

    #[test]
    fn only_real_changes_count() {
        let api = watched(Kind::VirtualService).unwrap();
        let mut r = Reflected::default();
        assert!(r.apply(read(api, "v1", vs("a", "1", serde_json::json!([])))));
        assert!(
            !r.apply(read(api, "v1", vs("a", "2", serde_json::json!([])))),
            "a new resourceVersion alone"
        );
        let accepted = serde_json::json!([{"type": "Accepted", "status": "True"}]);
        assert!(
            r.apply(read(api, "v1", vs("a", "3", accepted.clone()))),
            "conditions are followed"
        );
        assert!(!r.apply(read(api, "v1", vs("a", "4", accepted.clone()))));
        assert!(
            r.apply(read(api, "v1", vs("b", "5", accepted))),
            "a spec change"
        );
        assert_eq!(
            r.store().virtual_services[&ObjectKey::new("ns", "r")]
                .spec
                .hosts,
            vec!["b"]
        );
        let object = ObjectRef {
            kind: Kind::VirtualService,
            namespace: "ns".into(),
            name: "r".into(),
        };
        assert!(r.delete(&object));
        assert!(!r.delete(&object));
    }
}
