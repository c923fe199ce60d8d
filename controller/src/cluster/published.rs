//! The gateway address Services as the API holds them (through the store): whose each
//! one is, which gateway ports it holds, and its ClusterIPs.
//!
//! Both the translator (listeners, DNS) and the desired-state computation read them
//! through [`Published`], so they agree on every contested case: several Services for one
//! owner, two Services naming the same gateway port, an unreadable annotation.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use k8s_openapi::api::core::v1::Service;

use super::{
    MANAGED_BY, MANAGED_BY_LABEL, PORTS_ANNOTATION, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL,
    ports::decode_ports,
};
use crate::store::{ObjectKey, Store};

/// One gateway address Service of the own namespace.
#[derive(Debug, Clone)]
pub struct AddressService<'a> {
    /// The Service's name.
    pub name: &'a str,
    /// The meshed service it stands for (its owner labels).
    pub owner: ObjectKey,
    /// Original port → gateway port, from the ports annotation (empty when unreadable).
    pub ports: BTreeMap<u16, u16>,
    /// Its ClusterIPs, once the API server allocated them.
    pub cluster_ips: Vec<IpAddr>,
    /// Being deleted: its ports and name stay taken, but it stands for no one.
    pub terminating: bool,
    /// The object itself.
    pub object: &'a Service,
}

/// The address Services of one namespace, with every contest settled.
#[derive(Debug, Default)]
pub struct Published<'a> {
    /// Every address Service, by name.
    all: BTreeMap<&'a str, AddressService<'a>>,
    /// The Service that stands for each owner: the first by name that is not terminating.
    primary: BTreeMap<ObjectKey, &'a str>,
    /// Gateway port → (owner, original port) it serves. Primaries claim first, in name
    /// order, so a duplicate or a late claim never takes a port from a primary.
    holders: BTreeMap<u16, (ObjectKey, u16)>,
    /// Names of the other Services of the namespace (the chart's, say).
    foreign: BTreeSet<&'a str>,
}

impl<'a> Published<'a> {
    /// Reads the address Services of `namespace`: Services labelled
    /// `app.kubernetes.io/managed-by=corridor` with both owner labels.
    pub fn read(store: &'a Store, namespace: &str) -> Self {
        let mut out = Published::default();
        let in_namespace = store
            .services
            .range(ObjectKey::new(namespace, "")..)
            .take_while(|(k, _)| k.namespace == namespace);
        for (key, svc) in in_namespace {
            match address_service(key, svc) {
                Some(a) => drop(out.all.insert(key.name.as_str(), a)),
                None => drop(out.foreign.insert(key.name.as_str())),
            }
        }
        for a in out.all.values().filter(|a| !a.terminating) {
            out.primary.entry(a.owner.clone()).or_insert(a.name);
        }
        let primaries: BTreeSet<&str> = out.primary.values().copied().collect();
        let (first, rest): (Vec<_>, Vec<_>) =
            out.all.values().partition(|a| primaries.contains(a.name));
        for a in first.into_iter().chain(rest) {
            for (&original, &gateway) in &a.ports {
                out.holders
                    .entry(gateway)
                    .or_insert_with(|| (a.owner.clone(), original));
            }
        }
        out
    }

    /// Every address Service, in name order.
    pub fn services(&self) -> impl Iterator<Item = &AddressService<'a>> {
        self.all.values()
    }

    /// The address Service that stands for `owner`.
    pub fn of(&self, owner: &ObjectKey) -> Option<&AddressService<'a>> {
        self.primary.get(owner).and_then(|name| self.all.get(name))
    }

    /// True when `name` is the name of the primary address Service of some owner.
    pub fn is_primary(&self, name: &str) -> bool {
        self.all
            .get(name)
            .is_some_and(|a| self.primary.get(&a.owner).is_some_and(|p| *p == name))
    }

    /// The gateway port that `owner`'s `port` holds undisputed: its address Service maps
    /// it, and no Service that claims first maps the same gateway port.
    pub fn gateway_port(&self, owner: &ObjectKey, port: u16) -> Option<u16> {
        let gateway = *self.of(owner)?.ports.get(&port)?;
        let (holder, original) = self.holders.get(&gateway)?;
        (holder == owner && *original == port).then_some(gateway)
    }

    /// Every gateway port some address Service names, terminating ones included.
    pub fn claimed_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.all.values().flat_map(|a| a.ports.values().copied())
    }

    /// True when a Service of the namespace, ours or not, already has `name`.
    pub fn name_taken(&self, name: &str) -> bool {
        self.all.contains_key(name) || self.foreign.contains(name)
    }

    /// The address Service called `name`, whether it stands for its owner or not.
    pub fn get(&self, name: &str) -> Option<&AddressService<'a>> {
        self.all.get(name)
    }
}

/// The Service as an address Service, when it carries the labels of one.
fn address_service<'a>(key: &'a ObjectKey, svc: &'a Service) -> Option<AddressService<'a>> {
    let labels = svc.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let owner = ObjectKey::new(
        labels.get(SERVICE_NAMESPACE_LABEL)?.as_str(),
        labels.get(SERVICE_NAME_LABEL)?.as_str(),
    );
    let annotation = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PORTS_ANNOTATION));
    let ports = match annotation.map(|text| decode_ports(text)) {
        Some(Ok(ports)) => ports,
        Some(Err(e)) => {
            // Treated as holding no ports: the owner gets fresh ones and the Service is
            // rewritten with a readable annotation.
            tracing::warn!(service = %key, error = %e, "address Service has an unreadable port allocation");
            BTreeMap::new()
        }
        None => BTreeMap::new(),
    };
    let spec = svc.spec.as_ref();
    let ips: Vec<&String> = match spec.and_then(|s| s.cluster_ips.as_ref()) {
        Some(ips) if !ips.is_empty() => ips.iter().collect(),
        _ => spec
            .and_then(|s| s.cluster_ip.as_ref())
            .into_iter()
            .collect(),
    };
    Some(AddressService {
        name: key.name.as_str(),
        owner,
        ports,
        cluster_ips: ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        terminating: svc.metadata.deletion_timestamp.is_some(),
        object: svc,
    })
}
