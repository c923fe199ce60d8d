//! The fake API server's objects: one table per resource, one resourceVersion counter
//! for all of them (as etcd has), and a history of events that watches replay from.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    ResourceDef,
    selector::{FieldSelector, LabelSelector},
};

/// Events a slow watch may fall behind by before it is closed (it then re-watches from
/// its last resourceVersion, as after any closed stream).
const WATCH_BUFFER: usize = 1024;

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    pub(super) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The `Status` object the server answers with.
    pub fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One change, with the object before and after (after = the last state for deletions).
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object before the change (None for creations).
    pub old: Option<Arc<Value>>,
    /// The object after the change.
    pub new: Arc<Value>,
}

/// What a watch sees: namespace, label and field selectors.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this namespace (namespaced requests).
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Filter {
    /// True when the object is in view.
    pub fn matches(&self, object: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(ns)
        });
        ns_ok && self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event as this watch reports it: an object that starts matching is ADDED, one
    /// that stops matching is DELETED (as the API server does for filtered watches).
    pub fn view(&self, event: &Event) -> Option<(EventType, Arc<Value>)> {
        let now = self.matches(&event.new);
        let before = event.old.as_deref().is_some_and(|o| self.matches(o));
        match (event.kind, before, now) {
            (EventType::Deleted, _, true) => Some((EventType::Deleted, event.new.clone())),
            (EventType::Deleted, _, false) => None,
            (_, false, true) => Some((EventType::Added, event.new.clone())),
            (_, true, true) => Some((EventType::Modified, event.new.clone())),
            (_, true, false) => Some((EventType::Deleted, event.new.clone())),
            (_, false, false) => None,
        }
    }
}

/// The objects of one resource and its watch plumbing.
#[derive(Debug)]
pub struct Table {
    /// The resource.
    pub def: &'static ResourceDef,
    /// Versions served now; empty means the resource is not installed (404).
    pub served: Vec<&'static str>,
    /// Objects by (namespace, name); the namespace is empty for cluster-scoped ones.
    pub objects: BTreeMap<(String, String), Value>,
    history: Vec<Event>,
    events: broadcast::Sender<Event>,
    /// Answer the next watch with 410 Gone.
    pub gone_next: bool,
    /// Number of list requests served.
    pub lists: u64,
    /// Number of watch requests served.
    pub watches: u64,
}

/// How a watch starts.
#[derive(Debug)]
pub enum WatchStart {
    /// The requested resourceVersion is no longer in the history: 410 Gone.
    Gone(String),
    /// Events to replay, then live ones.
    Events(Vec<Event>, broadcast::Receiver<Event>),
}

/// All tables and the resourceVersion counter.
#[derive(Debug)]
pub struct State {
    rv: u64,
    /// Events at or before this resourceVersion are gone from the history.
    compacted: u64,
    next_uid: u64,
    next_cluster_ip: u32,
    tables: Vec<Table>,
}

impl State {
    /// Every resource of `defs`, all served, empty.
    pub fn new(defs: &'static [ResourceDef]) -> Self {
        let tables = defs
            .iter()
            .map(|def| Table {
                def,
                served: def.versions.to_vec(),
                objects: BTreeMap::new(),
                history: Vec::new(),
                events: broadcast::channel(WATCH_BUFFER).0,
                gone_next: false,
                lists: 0,
                watches: 0,
            })
            .collect();
        Self {
            rv: 1,
            compacted: 0,
            next_uid: 1,
            next_cluster_ip: 0,
            tables,
        }
    }

    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Index of the table of `group`/`plural`, served or not.
    pub fn index(&self, group: &str, plural: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.def.group == group && t.def.plural == plural)
    }

    /// Index of the table of `group`/`kind`.
    pub fn index_of_kind(&self, group: &str, kind: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.def.group == group && t.def.kind == kind)
    }

    /// The resource of the table at `index`.
    pub fn def(&self, index: usize) -> &'static ResourceDef {
        self.tables[index].def
    }

    /// The objects of a table as served in its preferred version.
    pub fn objects_of(&self, index: usize) -> Vec<Value> {
        let t = &self.tables[index];
        let version = t.served.first().copied().unwrap_or(t.def.versions[0]);
        t.objects
            .values()
            .map(|o| t.def.present(o, version, false))
            .collect()
    }

    /// The table at `index`.
    pub fn table(&mut self, index: usize) -> &mut Table {
        &mut self.tables[index]
    }

    /// Index of a served table, or the API server's 404 for an unknown resource.
    pub fn served(&self, group: &str, version: &str, plural: &str) -> Result<usize, ApiError> {
        self.index(group, plural)
            .filter(|&i| self.tables[i].served.contains(&version))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            })
    }

    /// Drops the history: watches from an older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        for t in &mut self.tables {
            t.history.clear();
        }
    }

    /// Objects of a table in view of `filter`, and the list's resourceVersion.
    pub fn list(&mut self, index: usize, filter: &Filter) -> (Vec<Value>, u64) {
        let t = &mut self.tables[index];
        t.lists += 1;
        let items = t
            .objects
            .values()
            .filter(|o| filter.matches(o))
            .cloned()
            .collect();
        (items, self.rv)
    }

    /// Starts a watch from `from` (None or 0: the current objects as ADDED events first).
    pub fn watch(&mut self, index: usize, from: Option<u64>) -> WatchStart {
        let (rv, compacted) = (self.rv, self.compacted);
        let t = &mut self.tables[index];
        t.watches += 1;
        if std::mem::take(&mut t.gone_next) {
            return WatchStart::Gone(format!(
                "too old resource version: {} ({rv})",
                from.unwrap_or(0)
            ));
        }
        let replay = match from.filter(|&v| v != 0) {
            None => t
                .objects
                .values()
                .map(|o| Event {
                    rv,
                    kind: EventType::Added,
                    old: None,
                    new: Arc::new(o.clone()),
                })
                .collect(),
            Some(v) if v < compacted => {
                return WatchStart::Gone(format!("too old resource version: {v} ({rv})"));
            }
            Some(v) => t.history.iter().filter(|e| e.rv > v).cloned().collect(),
        };
        WatchStart::Events(replay, t.events.subscribe())
    }

    /// Records a change: bumps the resourceVersion, stamps it on the new object, keeps the
    /// event for later watches and sends it to open ones. `new` None deletes.
    pub fn commit(
        &mut self,
        index: usize,
        key: (String, String),
        new: Option<Value>,
    ) -> Option<Value> {
        self.rv += 1;
        let rv = self.rv;
        let t = &mut self.tables[index];
        let old = t.objects.remove(&key);
        let (kind, stored) = match (new, &old) {
            (Some(mut n), _) => {
                n["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                t.objects.insert(key, n.clone());
                let kind = if old.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (kind, n)
            }
            (None, Some(o)) => {
                let mut gone = o.clone();
                gone["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                (EventType::Deleted, gone)
            }
            (None, None) => return None,
        };
        let event = Event {
            rv,
            kind,
            old: old.map(Arc::new),
            new: Arc::new(stored.clone()),
        };
        t.history.push(event.clone());
        let _ = t.events.send(event);
        Some(stored)
    }

    /// A fresh ClusterIP from the fake's service range, 10.96.128.0/17 (the first half of
    /// kubeadm's 10.96.0.0/16 is left to the addresses tests choose themselves).
    pub fn cluster_ip(&mut self) -> String {
        self.next_cluster_ip += 1;
        let n = self.next_cluster_ip;
        format!("10.96.{}.{}", 128 + (n >> 8) % 128, n & 0xff)
    }

    /// A fresh object UID.
    pub fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The object without the parts that do not count as its specification (metadata,
/// status, type fields): when this changes, `metadata.generation` goes up.
pub fn spec_part(object: &Value) -> Value {
    let mut o = object.clone();
    if let Value::Object(m) = &mut o {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "h": [1]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "h": [1]}));
    }

    #[test]
    fn filtered_watches_see_objects_enter_and_leave() {
        let filter = Filter {
            labels: LabelSelector::parse("app=gw").unwrap(),
            ..Default::default()
        };
        let obj = |app: &str| Arc::new(json!({"metadata": {"labels": {"app": app}}}));
        let ev = |old: Option<Arc<Value>>, new| Event {
            rv: 2,
            kind: EventType::Modified,
            old,
            new,
        };
        assert_eq!(
            filter.view(&ev(Some(obj("x")), obj("gw"))).unwrap().0,
            EventType::Added
        );
        assert_eq!(
            filter.view(&ev(Some(obj("gw")), obj("x"))).unwrap().0,
            EventType::Deleted
        );
        assert_eq!(
            filter.view(&ev(Some(obj("gw")), obj("gw"))).unwrap().0,
            EventType::Modified
        );
        assert!(filter.view(&ev(Some(obj("x")), obj("y"))).is_none());
    }
}
