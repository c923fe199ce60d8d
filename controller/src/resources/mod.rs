//! The Kubernetes and Istio objects the controller understands, and how one manifest
//! document becomes one typed [`Object`].

pub mod aeraki;
pub mod authz;
pub mod duration;
pub mod istio;
pub mod redis;
pub mod secret;

use std::fmt;

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service},
    discovery::v1::EndpointSlice,
};
use serde_yaml_ng::Value;

pub use aeraki::MetaRouter;
pub use authz::AuthorizationPolicy;
pub use istio::{DestinationRule, VirtualService};
pub use redis::{RedisDestination, RedisService};
pub use secret::Secret;

/// Namespace given to namespaced objects whose manifest names none, as `kubectl` does.
pub const DEFAULT_OBJECT_NAMESPACE: &str = "default";

/// The kinds the controller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Service.
    Service,
    /// core/v1 Pod.
    Pod,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.istio.io VirtualService.
    VirtualService,
    /// networking.istio.io DestinationRule.
    DestinationRule,
    /// metaprotocol.aeraki.io MetaRouter.
    MetaRouter,
    /// core/v1 Secret (credentials for Redis auth).
    Secret,
    /// redis.aeraki.io RedisService.
    RedisService,
    /// redis.aeraki.io RedisDestination.
    RedisDestination,
    /// security.istio.io AuthorizationPolicy.
    AuthorizationPolicy,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Identifies an object in logs and in the store: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One accepted object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A Namespace.
    Namespace(Box<Namespace>),
    /// A Service.
    Service(Box<Service>),
    /// A Pod.
    Pod(Box<Pod>),
    /// An EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// A VirtualService.
    VirtualService(Box<VirtualService>),
    /// A DestinationRule.
    DestinationRule(Box<DestinationRule>),
    /// A MetaRouter.
    MetaRouter(Box<MetaRouter>),
    /// A Secret.
    Secret(Box<Secret>),
    /// A RedisService.
    RedisService(Box<RedisService>),
    /// A RedisDestination.
    RedisDestination(Box<RedisDestination>),
    /// An AuthorizationPolicy.
    AuthorizationPolicy(Box<AuthorizationPolicy>),
}

/// Why a document could not become an object.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct DocumentError {
    /// The object, when the document says enough to name it.
    pub object: Option<ObjectRef>,
    /// What is wrong.
    pub reason: String,
}

/// Collapses a multi-line message (parser errors often span lines) into one log line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns one parsed manifest document into objects: none for an unknown kind or an empty
/// document, several for a `List`. Errors are per document; a `List` fails item by item.
pub fn parse_document(doc: Value) -> Vec<Result<Object, DocumentError>> {
    if doc.is_null() {
        return Vec::new();
    }
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == "List" || kind.ends_with("List") && doc.get("items").is_some() {
        let items = match doc.get("items").and_then(Value::as_sequence) {
            Some(items) => items.clone(),
            None => return Vec::new(),
        };
        return items.into_iter().flat_map(parse_document).collect();
    }
    match parse_object(doc) {
        Ok(Some(o)) => vec![Ok(o)],
        Ok(None) => Vec::new(),
        Err(e) => vec![Err(e)],
    }
}

fn parse_object(doc: Value) -> Result<Option<Object>, DocumentError> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind_name = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let kind = match (group, version, kind_name.as_str()) {
        ("", "v1", "Namespace") => Kind::Namespace,
        ("", "v1", "Service") => Kind::Service,
        ("", "v1", "Pod") => Kind::Pod,
        ("discovery.k8s.io", "v1", "EndpointSlice") => Kind::EndpointSlice,
        (istio::GROUP, v, "VirtualService") if istio::VERSIONS.contains(&v) => Kind::VirtualService,
        (istio::GROUP, v, "DestinationRule") if istio::VERSIONS.contains(&v) => {
            Kind::DestinationRule
        }
        (aeraki::GROUP, v, "MetaRouter") if aeraki::VERSIONS.contains(&v) => Kind::MetaRouter,
        ("", "v1", "Secret") => Kind::Secret,
        (redis::GROUP, v, "RedisService") if redis::VERSIONS.contains(&v) => Kind::RedisService,
        (redis::GROUP, v, "RedisDestination") if redis::VERSIONS.contains(&v) => {
            Kind::RedisDestination
        }
        (authz::GROUP, v, "AuthorizationPolicy") if authz::VERSIONS.contains(&v) => {
            Kind::AuthorizationPolicy
        }
        _ => {
            tracing::debug!(
                api_version,
                kind = kind_name,
                "ignoring a kind the controller does not use"
            );
            return Ok(None);
        }
    };
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let namespace = match kind {
        Kind::Namespace => String::new(),
        _ => meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_OBJECT_NAMESPACE)
            .to_string(),
    };
    let object = ObjectRef {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let fail = |reason: String| DocumentError {
        object: Some(object.clone()),
        reason,
    };
    if name.is_empty() {
        return Err(fail("metadata.name is missing".to_string()));
    }
    fn typed<T: serde::de::DeserializeOwned>(doc: Value) -> Result<Box<T>, String> {
        serde_yaml_ng::from_value(doc)
            .map(Box::new)
            .map_err(|e| e.to_string())
    }
    let ns = Some(namespace);
    let parsed = match kind {
        Kind::Namespace => typed::<Namespace>(doc).map(Object::Namespace),
        Kind::Service => typed::<Service>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::Service(o)
        }),
        Kind::Pod => typed::<Pod>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::Pod(o)
        }),
        Kind::EndpointSlice => typed::<EndpointSlice>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::EndpointSlice(o)
        }),
        Kind::VirtualService => typed::<VirtualService>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::VirtualService(o)
        }),
        Kind::DestinationRule => typed::<DestinationRule>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::DestinationRule(o)
        }),
        Kind::MetaRouter => typed::<MetaRouter>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::MetaRouter(o)
        }),
        Kind::Secret => typed::<Secret>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::Secret(o)
        }),
        Kind::RedisService => typed::<RedisService>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::RedisService(o)
        }),
        Kind::RedisDestination => typed::<RedisDestination>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::RedisDestination(o)
        }),
        Kind::AuthorizationPolicy => typed::<AuthorizationPolicy>(doc).map(|mut o| {
            o.metadata.namespace = ns;
            Object::AuthorizationPolicy(o)
        }),
    };
    parsed.map(Some).map_err(fail)
}

impl Object {
    /// The object's kind, namespace and name.
    pub fn object_ref(&self) -> ObjectRef {
        let (kind, meta) = match self {
            Object::Namespace(o) => (Kind::Namespace, &o.metadata),
            Object::Service(o) => (Kind::Service, &o.metadata),
            Object::Pod(o) => (Kind::Pod, &o.metadata),
            Object::EndpointSlice(o) => (Kind::EndpointSlice, &o.metadata),
            Object::VirtualService(o) => (Kind::VirtualService, &o.metadata),
            Object::DestinationRule(o) => (Kind::DestinationRule, &o.metadata),
            Object::MetaRouter(o) => (Kind::MetaRouter, &o.metadata),
            Object::Secret(o) => (Kind::Secret, &o.metadata),
            Object::RedisService(o) => (Kind::RedisService, &o.metadata),
            Object::RedisDestination(o) => (Kind::RedisDestination, &o.metadata),
            Object::AuthorizationPolicy(o) => (Kind::AuthorizationPolicy, &o.metadata),
        };
        ObjectRef {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Result<Object, DocumentError>> {
        serde_yaml_ng::Deserializer::from_str(text)
            .flat_map(|d| parse_document(serde::Deserialize::deserialize(d).unwrap()))
            .collect()
    }

    #[test]
    fn parses_known_kinds_and_ignores_others() {
        let out = docs(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
        );
        assert_eq!(out.len(), 2);
        let refs: Vec<String> = out
            .iter()
            .map(|o| o.as_ref().unwrap().object_ref().to_string())
            .collect();
        assert_eq!(refs, vec!["Service default/a", "Namespace prod"]);
    }

    #[test]
    fn a_bad_object_names_itself() {
        let out = docs(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {ports: [{port: nope}]}\n",
        );
        let err = out.into_iter().next().unwrap().unwrap_err();
        assert_eq!(err.object.unwrap().to_string(), "Service x/a");
        assert!(!err.reason.is_empty());
    }

    #[test]
    fn lists_are_flattened() {
        let out = docs(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n",
        );
        assert_eq!(out.len(), 1);
    }
}
