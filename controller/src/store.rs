//! The typed store: every object the controller knows, by kind, keyed by namespace/name.
//! Sources (the manifests directory today, the Kubernetes API later) fill it; the
//! translator reads it. Ordered maps keep translation deterministic.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service},
    discovery::v1::EndpointSlice,
};

use crate::resources::{
    AuthorizationPolicy, DestinationRule, Kind, MetaRouter, Object, ObjectRef, RedisDestination,
    RedisService, Secret, VirtualService,
};

/// Namespace and name of a namespaced object (for Namespaces, the namespace is empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl From<&ObjectRef> for ObjectKey {
    fn from(r: &ObjectRef) -> Self {
        ObjectKey::new(r.namespace.clone(), r.name.clone())
    }
}

/// All objects, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// Namespaces by name (key namespace is empty).
    pub namespaces: BTreeMap<ObjectKey, Namespace>,
    /// Services.
    pub services: BTreeMap<ObjectKey, Service>,
    /// Pods (for subset labels).
    pub pods: BTreeMap<ObjectKey, Pod>,
    /// EndpointSlices.
    pub endpoint_slices: BTreeMap<ObjectKey, EndpointSlice>,
    /// VirtualServices.
    pub virtual_services: BTreeMap<ObjectKey, VirtualService>,
    /// DestinationRules.
    pub destination_rules: BTreeMap<ObjectKey, DestinationRule>,
    /// Aeraki MetaRouters (stored; translated for Dubbo/Thrift listeners by issue 4's
    /// MetaProtocol work).
    pub meta_routers: BTreeMap<ObjectKey, MetaRouter>,
    /// Secrets (the credentials RedisServices and RedisDestinations refer to).
    pub secrets: BTreeMap<ObjectKey, Secret>,
    /// Aeraki RedisServices.
    pub redis_services: BTreeMap<ObjectKey, RedisService>,
    /// Aeraki RedisDestinations.
    pub redis_destinations: BTreeMap<ObjectKey, RedisDestination>,
    /// Istio AuthorizationPolicies (stored; enforced by issue 8's authorization work).
    pub authorization_policies: BTreeMap<ObjectKey, AuthorizationPolicy>,
}

impl Store {
    /// Inserts (or replaces) an object.
    pub fn insert(&mut self, object: Object) {
        let key = ObjectKey::from(&object.object_ref());
        match object {
            Object::Namespace(o) => drop(self.namespaces.insert(key, *o)),
            Object::Service(o) => drop(self.services.insert(key, *o)),
            Object::Pod(o) => drop(self.pods.insert(key, *o)),
            Object::EndpointSlice(o) => drop(self.endpoint_slices.insert(key, *o)),
            Object::VirtualService(o) => drop(self.virtual_services.insert(key, *o)),
            Object::DestinationRule(o) => drop(self.destination_rules.insert(key, *o)),
            Object::MetaRouter(o) => drop(self.meta_routers.insert(key, *o)),
            Object::Secret(o) => drop(self.secrets.insert(key, *o)),
            Object::RedisService(o) => drop(self.redis_services.insert(key, *o)),
            Object::RedisDestination(o) => drop(self.redis_destinations.insert(key, *o)),
            Object::AuthorizationPolicy(o) => drop(self.authorization_policies.insert(key, *o)),
        }
    }

    /// Removes an object; true when it was there.
    pub fn remove(&mut self, object: &ObjectRef) -> bool {
        let key = ObjectKey::from(object);
        match object.kind {
            Kind::Namespace => self.namespaces.remove(&key).is_some(),
            Kind::Service => self.services.remove(&key).is_some(),
            Kind::Pod => self.pods.remove(&key).is_some(),
            Kind::EndpointSlice => self.endpoint_slices.remove(&key).is_some(),
            Kind::VirtualService => self.virtual_services.remove(&key).is_some(),
            Kind::DestinationRule => self.destination_rules.remove(&key).is_some(),
            Kind::MetaRouter => self.meta_routers.remove(&key).is_some(),
            Kind::Secret => self.secrets.remove(&key).is_some(),
            Kind::RedisService => self.redis_services.remove(&key).is_some(),
            Kind::RedisDestination => self.redis_destinations.remove(&key).is_some(),
            Kind::AuthorizationPolicy => self.authorization_policies.remove(&key).is_some(),
        }
    }

    /// Total number of objects.
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.services.len()
            + self.pods.len()
            + self.endpoint_slices.len()
            + self.virtual_services.len()
            + self.destination_rules.len()
            + self.meta_routers.len()
            + self.secrets.len()
            + self.redis_services.len()
            + self.redis_destinations.len()
            + self.authorization_policies.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Labels of a namespace, when the Namespace object is known.
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces
            .get(&ObjectKey::new("", namespace))
            .and_then(|n| n.metadata.labels.as_ref())
    }

    /// Resolves a host as Istio does for a resource in `from_namespace`: `name` (that
    /// namespace), `name.ns`, `name.ns.svc`, or `name.ns.svc.<domain>`. Only known Services
    /// resolve.
    pub fn resolve_host(
        &self,
        host: &str,
        from_namespace: &str,
        domain: &str,
    ) -> Option<ObjectKey> {
        let host = host.trim_end_matches('.');
        let svc_suffix = format!(".svc.{domain}");
        let stripped = host
            .strip_suffix(svc_suffix.as_str())
            .or_else(|| host.strip_suffix(".svc"))
            .unwrap_or(host);
        let key = match stripped.split_once('.') {
            None => ObjectKey::new(from_namespace, stripped),
            Some((name, ns)) if !ns.contains('.') => ObjectKey::new(ns, name),
            Some(_) => return None,
        };
        self.services.contains_key(&key).then_some(key)
    }
}

/// Builds a store from multi-document YAML (tests only).
#[cfg(test)]
pub(crate) fn store_from_yaml(text: &str) -> Store {
    let mut store = Store::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
            .expect("test YAML parses");
        for object in crate::resources::parse_document(value) {
            store.insert(object.expect("test object is valid"));
        }
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(ns: &str, name: &str) -> Object {
        Object::Service(Box::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    #[test]
    fn resolves_short_qualified_and_fqdn_hosts() {
        let mut s = Store::default();
        s.insert(svc("default", "reviews"));
        s.insert(svc("prod", "ratings"));
        let d = "cluster.local";
        assert_eq!(
            s.resolve_host("reviews", "default", d),
            Some(ObjectKey::new("default", "reviews"))
        );
        assert_eq!(s.resolve_host("reviews", "prod", d), None);
        assert_eq!(
            s.resolve_host("ratings.prod", "default", d),
            Some(ObjectKey::new("prod", "ratings"))
        );
        assert_eq!(
            s.resolve_host("ratings.prod.svc", "x", d),
            Some(ObjectKey::new("prod", "ratings"))
        );
        assert_eq!(
            s.resolve_host("ratings.prod.svc.cluster.local", "x", d),
            Some(ObjectKey::new("prod", "ratings"))
        );
        assert_eq!(s.resolve_host("example.com", "default", d), None);
        assert!(s.remove(&ObjectRef {
            kind: Kind::Service,
            namespace: "prod".into(),
            name: "ratings".into()
        }));
        assert_eq!(s.resolve_host("ratings.prod", "default", d), None);
    }
}
