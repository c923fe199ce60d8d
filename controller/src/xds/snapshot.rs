//! Versioned snapshots of every xDS resource, as published to the ADS streams.

use std::{collections::BTreeMap, sync::Arc};

use corridor_proto::{google::protobuf::Any, type_url};
use prost::{Message, Name};

use crate::addressing::fnv1a;

/// The type URLs a snapshot always holds, in the order a push should send them (clusters
/// and their endpoints before the listeners and routes that refer to them, the pod table
/// before the listeners whose authorization filters read it, then the DNS name table, so
/// names move to a gateway address after its listener went out).
pub const TYPE_URLS: [&str; 7] = [
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::WORKLOAD,
    type_url::LISTENER,
    type_url::ROUTE,
    type_url::META_ROUTE,
    type_url::NAME_TABLE,
];

/// One resource: its name, its version (a hash of its content) and its encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Resource name (listener name, cluster name, ...).
    pub name: String,
    /// Content hash, hex.
    pub version: String,
    /// The encoded message.
    pub body: Any,
}

impl Resource {
    /// Wraps a message. `canonical` must describe, deterministically, any part of the
    /// message whose encoding is not deterministic (protobuf maps are encoded in hash-map
    /// order, so metadata `Struct`s are hashed from their sorted form instead): the
    /// version is the hash of `unordered_free` (the message with those parts cleared)
    /// followed by `canonical`.
    pub fn with_canonical<M: Message + Name>(
        name: String,
        message: &M,
        unordered_free: &M,
        canonical: &[u8],
    ) -> Self {
        let mut bytes = unordered_free.encode_to_vec();
        bytes.extend_from_slice(canonical);
        Self {
            name,
            version: format!("{:016x}", fnv1a(&bytes)),
            body: Any {
                type_url: M::type_url(),
                value: message.encode_to_vec(),
            },
        }
    }

    /// Wraps a message whose encoding is deterministic (no map fields set).
    pub fn new<M: Message + Name>(name: String, message: &M) -> Self {
        let value = message.encode_to_vec();
        Self {
            name,
            version: format!("{:016x}", fnv1a(&value)),
            body: Any {
                type_url: M::type_url(),
                value,
            },
        }
    }
}

/// All resources of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeSnapshot {
    /// Changes exactly when the content of this type changes (hash of names and versions).
    pub version: String,
    /// Resources by name.
    pub resources: BTreeMap<String, Arc<Resource>>,
}

impl TypeSnapshot {
    /// Builds a type snapshot and computes its version.
    pub fn from_resources(resources: impl IntoIterator<Item = Resource>) -> Self {
        let resources: BTreeMap<String, Arc<Resource>> = resources
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        let mut bytes = Vec::new();
        for (name, r) in &resources {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(r.version.as_bytes());
            bytes.push(0);
        }
        Self {
            version: format!("{:016x}", fnv1a(&bytes)),
            resources,
        }
    }
}

/// Every resource the controller serves, by type URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Type snapshots by type URL.
    pub types: BTreeMap<String, TypeSnapshot>,
}

impl Snapshot {
    /// The resources of one type (empty for a type the controller does not serve).
    pub fn get(&self, type_url: &str) -> Option<&TypeSnapshot> {
        self.types.get(type_url)
    }

    /// True when both snapshots hold the same resources at the same versions (the
    /// encodings themselves may differ: protobuf maps encode in hash-map order).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(&other.types)
                .all(|((ta, a), (tb, b))| ta == tb && a.version == b.version)
    }

    /// A short summary for logs: resource count and version per type.
    pub fn summary(&self) -> String {
        self.types
            .iter()
            .map(|(t, s)| {
                format!(
                    "{}={}@{}",
                    type_url::short(t),
                    s.resources.len(),
                    &s.version[..8.min(s.version.len())]
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
