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

    /// Adds or updates one object. One that does not parse keeps its last good version
    /// in the store (as a file that fails to parse does).
    pub fn apply(&mut self, read: Read) {
        let key = ObjectKey::from(&read.object);
        match read.conditions {
            Some(c) => drop(self.conditions.insert(read.object.clone(), c)),
            None => drop(self.conditions.remove(&read.object)),
        }
        match read.parsed {
            Ok(Some(object)) => {
                self.unreadable.remove(&read.object);
                self.keys.entry(read.object.kind).or_default().insert(key);
                self.stored.insert(read.object);
                self.store.insert(object);
            }
            Ok(None) => self.delete(&read.object),
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
                    self.unreadable
                        .insert(read.object, Verdict::rejected(read.generation, reason));
                }
            }
        }
    }

    /// Removes one object.
    pub fn delete(&mut self, object: &ObjectRef) {
        self.store.remove(object);
        self.stored.remove(object);
        if let Some(keys) = self.keys.get_mut(&object.kind) {
            keys.remove(&ObjectKey::from(object));
        }
        self.unreadable.remove(object);
        self.conditions.remove(object);
    }

    /// Replaces every object of `kind` with `reads` (a complete list): objects not in it
    /// are gone.
    pub fn replace_kind(&mut self, kind: Kind, reads: Vec<Read>) {
        let listed: BTreeSet<ObjectKey> =
            reads.iter().map(|r| ObjectKey::from(&r.object)).collect();
        let gone: Vec<ObjectKey> = self
            .keys
            .get(&kind)
            .map(|keys| keys.difference(&listed).cloned().collect())
            .unwrap_or_default();
        for key in gone {
            self.delete(&ObjectRef {
                kind,
                namespace: key.namespace,
                name: key.name,
            });
        }
        for read in reads {
            self.apply(read);
        }
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

    /// Changes the state and tells everyone who follows it.
    pub fn update(&self, change: impl FnOnce(&mut Reflected)) {
        change(&mut self.lock());
        self.revision.send_modify(|r| *r += 1);
        let _ = self.changes.send(());
    }

    /// The revision, bumped on every change.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}
