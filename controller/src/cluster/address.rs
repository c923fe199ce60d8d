//! The gateway address Services the leader keeps (issue 6): one ClusterIP Service per
//! meshed service in Corridor's namespace, selecting the gateway pods, each original port
//! mapped to the gateway port allocated for it. [`desired`] says what they should be,
//! [`diff`] what to create, update and delete to get there; both are pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use serde::Serialize;

use super::{
    MANAGED_BY, MANAGED_BY_LABEL, PORTS_ANNOTATION, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL,
    name::{hashed_name, plain_name},
    ports::{PortAllocator, PortError, PortRange, encode_ports},
    published::Published,
};
use crate::{
    store::{ObjectKey, Store},
    translate::{Addressing, TranslateOptions, meshed_services},
};

/// Salts tried for a shortened name before giving up on an owner for this pass; two
/// owners' hashes clash with odds of about one in four billion, so one retry is plenty.
const MAX_NAME_SALTS: u32 = 16;

/// What the address Services depend on besides the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressOptions {
    /// Corridor's namespace: the address Services live there (and it is never meshed).
    pub namespace: String,
    /// Labels of the gateway pods, the address Services' selector.
    pub selector: BTreeMap<String, String>,
    /// Range gateway ports are allocated from.
    pub ports: PortRange,
}

impl AddressOptions {
    /// The translator's options that decide which services are meshed.
    fn translate_options(&self) -> TranslateOptions {
        TranslateOptions {
            addressing: Addressing::Cluster,
            own_namespace: self.namespace.clone(),
            ..TranslateOptions::default()
        }
    }
}

/// The address Services there should be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// The address Service of every meshed service that got its ports, by owner.
    pub services: BTreeMap<ObjectKey, Service>,
    /// Services left unmeshed because the port range is exhausted. One that already had
    /// an address Service keeps it with the ports it still holds, so it keeps its
    /// ClusterIP and is completed once ports are freed.
    pub unplaced: Vec<PortError>,
}

/// What to change in the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Services to create.
    pub create: Vec<Service>,
    /// Services to replace: the existing object (clusterIP, resourceVersion and every
    /// field the API server filled in kept) with the controller's fields rewritten.
    pub update: Vec<Service>,
    /// Services to delete.
    pub delete: Vec<Deletion>,
    /// Services left unmeshed because the port range is exhausted (already logged).
    pub unplaced: Vec<PortError>,
}

/// An address Service to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Its name.
    pub name: String,
    /// Its uid, as a precondition: a Service recreated under the same name in the
    /// meantime is not the one meant.
    pub uid: Option<String>,
}

impl Diff {
    /// True when nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The desired address Services and the diff against the existing ones, in one call.
pub fn plan(store: &Store, opts: &AddressOptions) -> Diff {
    let published = Published::read(store, &opts.namespace);
    let want = desired_from(store, opts, &published);
    diff(&published, want)
}

/// The address Services there should be for `store`.
pub fn desired(store: &Store, opts: &AddressOptions) -> Desired {
    desired_from(store, opts, &Published::read(store, &opts.namespace))
}

fn desired_from(store: &Store, opts: &AddressOptions, published: &Published<'_>) -> Desired {
    // Every port an address Service names is taken, including those of Services about to
    // be deleted: a port is handed out again only after garbage collection.
    let mut allocator = PortAllocator::new(opts.ports);
    for port in published.claimed_ports() {
        allocator.claim(port);
    }
    let mut out = Desired::default();
    let mut new_names = BTreeSet::new();
    for (owner, info) in meshed_services(store, &opts.translate_options()) {
        let existing = published.of(&owner);
        let numbers: Vec<u16> = info.ports.iter().map(|p| p.number).collect();
        let ports = match allocate(&mut allocator, published, &owner, &numbers) {
            Ok(ports) => ports,
            Err((kept, e)) => {
                tracing::error!(service = %owner, error = %e, "service not meshed");
                out.unplaced.push(e);
                // An owner that has an address Service keeps it, with the ports it still
                // holds (and its ClusterIP): the translator does not rewrite a name whose
                // ports are not all mapped, and ports it no longer needs are freed for the
                // next pass. A new owner gets nothing: it would only hold ports unused.
                if existing.is_none() || kept.is_empty() {
                    continue;
                }
                kept
            }
        };
        let name = match existing {
            Some(existing) => existing.name.to_string(),
            None => match new_name(published, &new_names, &owner) {
                Some(name) => name,
                None => continue,
            },
        };
        new_names.insert(name.clone());
        let Some(original) = store.services.get(&owner) else {
            continue;
        };
        let svc = build(opts, &owner, name, original, &ports);
        out.services.insert(owner, svc);
    }
    out
}

/// Gateway ports for all of `owner`'s ports: the ones it holds and new ones. A name
/// rewritten to the gateway must work on every port, so when one port finds none, the
/// error comes back with only the ports the owner already held (new ones released).
fn allocate(
    allocator: &mut PortAllocator,
    published: &Published<'_>,
    owner: &ObjectKey,
    numbers: &[u16],
) -> Result<BTreeMap<u16, u16>, (BTreeMap<u16, u16>, PortError)> {
    let range = allocator.range();
    // A port the owner holds undisputed stays its own (a restart changes nothing); one
    // outside a since-narrowed range moves into it.
    let kept: BTreeMap<u16, u16> = numbers
        .iter()
        .filter_map(|&n| {
            Some((
                n,
                published
                    .gateway_port(owner, n)
                    .filter(|p| range.contains(*p))?,
            ))
        })
        .collect();
    let mut ports = kept.clone();
    let mut fresh = Vec::new();
    for &number in numbers.iter().filter(|n| !kept.contains_key(n)) {
        match allocator.allocate(owner, number) {
            Ok(port) => {
                fresh.push(port);
                ports.insert(number, port);
            }
            Err(e) => {
                for port in fresh {
                    allocator.release(port);
                }
                return Err((kept, e));
            }
        }
    }
    Ok(ports)
}

/// A free name for a new address Service, or `None` when the owner must wait: its own
/// Service of that name is still being deleted.
fn new_name(
    published: &Published<'_>,
    taken: &BTreeSet<String>,
    owner: &ObjectKey,
) -> Option<String> {
    let free = |name: &str| !published.name_taken(name) && !taken.contains(name);
    let plain = plain_name(owner);
    if free(&plain) {
        return Some(plain);
    }
    if published
        .get(&plain)
        .is_some_and(|a| a.terminating && &a.owner == owner)
    {
        return None;
    }
    let found = (0..MAX_NAME_SALTS)
        .map(|salt| hashed_name(owner, salt))
        .find(|name| free(name));
    if found.is_none() {
        tracing::error!(service = %owner, "no free name for the address Service; retried next pass");
    }
    found
}

/// The address Service of `owner`: `ports` maps its original ports to gateway ports.
fn build(
    opts: &AddressOptions,
    owner: &ObjectKey,
    name: String,
    original: &Service,
    ports: &BTreeMap<u16, u16>,
) -> Service {
    let original_ports = original.spec.iter().flat_map(|s| s.ports.iter().flatten());
    let app_protocols: BTreeMap<i32, (&Option<String>, &Option<String>)> = original_ports
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .map(|p| (p.port, (&p.name, &p.app_protocol)))
        .collect();
    let service_ports = ports
        .iter()
        .map(|(&number, &gateway)| {
            let (name, app_protocol) = app_protocols
                .get(&i32::from(number))
                .map_or((None, None), |(n, a)| ((*n).clone(), (*a).clone()));
            ServicePort {
                name,
                port: i32::from(number),
                target_port: Some(IntOrString::Int(i32::from(gateway))),
                protocol: Some("TCP".to_string()),
                app_protocol,
                ..Default::default()
            }
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(opts.namespace.clone()),
            labels: Some(owner_labels(owner)),
            annotations: Some(BTreeMap::from([(
                PORTS_ANNOTATION.to_string(),
                encode_ports(ports),
            )])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(opts.selector.clone()),
            ports: Some(service_ports),
            ..Default::default()
        }),
        status: None,
    }
}

fn owner_labels(owner: &ObjectKey) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (SERVICE_NAMESPACE_LABEL.to_string(), owner.namespace.clone()),
        (SERVICE_NAME_LABEL.to_string(), owner.name.clone()),
    ])
}

/// What to change so that the address Services of `published` become `want`'s.
pub fn diff(published: &Published<'_>, want: Desired) -> Diff {
    let mut out = Diff {
        unplaced: want.unplaced,
        ..Diff::default()
    };
    let mut kept = BTreeSet::new();
    for (owner, svc) in want.services {
        match published.of(&owner) {
            Some(have) if Some(have.name) == svc.metadata.name.as_deref() => {
                kept.insert(have.name);
                if !same_owned_fields(have.object, &svc) {
                    out.update.push(merge(have.object, svc));
                }
            }
            _ => out.create.push(svc),
        }
    }
    // Everything else of ours goes: services gone, opted out, without ports, unplaced,
    // and duplicates. Terminating ones are on their way already.
    for a in published.services() {
        if !kept.contains(a.name) && !a.terminating {
            out.delete.push(Deletion {
                name: a.name.to_string(),
                uid: a.object.metadata.uid.clone(),
            });
        }
    }
    out
}

/// True when `have` already carries everything `want` sets.
fn same_owned_fields(have: &Service, want: &Service) -> bool {
    let has_all = |have: Option<&BTreeMap<String, String>>,
                   want: Option<&BTreeMap<String, String>>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    };
    let (h, w) = (have.spec.as_ref(), want.spec.as_ref());
    has_all(have.metadata.labels.as_ref(), want.metadata.labels.as_ref())
        && has_all(
            have.metadata.annotations.as_ref(),
            want.metadata.annotations.as_ref(),
        )
        && h.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP")
            == w.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP")
        && h.and_then(|s| s.selector.as_ref()) == w.and_then(|s| s.selector.as_ref())
        && normalized_ports(h) == normalized_ports(w)
}

type PortKey<'a> = (
    i32,
    Option<&'a str>,
    Option<&'a IntOrString>,
    &'a str,
    Option<&'a str>,
);

fn normalized_ports(spec: Option<&ServiceSpec>) -> Vec<PortKey<'_>> {
    let mut ports: Vec<PortKey<'_>> = spec
        .into_iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| {
            (
                p.port,
                p.name.as_deref(),
                p.target_port.as_ref(),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.app_protocol.as_deref(),
            )
        })
        .collect();
    // Port numbers (with the protocol) are unique within a Service.
    ports.sort_by(|a, b| (a.0, a.3).cmp(&(b.0, b.3)));
    ports
}

/// `have` with the controller's fields taken from `want`; everything else (clusterIP,
/// clusterIPs, ipFamilies, resourceVersion, others' labels) stays as the API holds it.
fn merge(have: &Service, want: Service) -> Service {
    let mut out = have.clone();
    out.metadata.managed_fields = None;
    out.status = None;
    out.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(want.metadata.labels.unwrap_or_default());
    out.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(want.metadata.annotations.unwrap_or_default());
    let want_spec = want.spec.unwrap_or_default();
    let spec = out.spec.get_or_insert_with(ServiceSpec::default);
    spec.type_ = want_spec.type_;
    spec.selector = want_spec.selector;
    spec.ports = want_spec.ports;
    out
}

#[cfg(test)]
pub(crate) mod tests;
