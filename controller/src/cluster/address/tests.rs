//! Address Service tests: what the leader writes ([`objects`]), and that ports hold still
//! across passes and restarts ([`ports`]). [`FakeApi`] plays the API server and the
//! watch: it applies a diff to the store as a successful reconcile, seen back through the
//! watch, would.

mod objects;
mod ports;

use std::{collections::BTreeSet, net::Ipv4Addr};

use super::*;
use crate::{
    cluster::published::Published,
    resources::{Object, parse_document},
    store::store_from_yaml,
};

/// Corridor's namespace in these tests.
pub(crate) const NS: &str = "corridor-system";

/// Default options: the gateway selector of the chart and the default range.
pub(crate) fn opts() -> AddressOptions {
    AddressOptions {
        namespace: NS.to_string(),
        selector: BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            "corridor-gateway".to_string(),
        )]),
        ports: PortRange::default(),
    }
}

/// Plays the API server for address Services.
#[derive(Default)]
pub(crate) struct FakeApi {
    next: u32,
}

impl FakeApi {
    /// Applies `diff` to `store`, checking what the real API server would refuse.
    pub fn apply(&mut self, store: &mut Store, diff: &Diff) {
        for d in &diff.delete {
            let key = ObjectKey::new(NS, &d.name);
            let have = store.services.remove(&key).expect("deleted Service exists");
            assert_eq!(have.metadata.uid, d.uid, "uid precondition");
        }
        for svc in &diff.update {
            let key = ObjectKey::new(NS, svc.metadata.name.clone().unwrap());
            let have = &store.services[&key];
            assert_eq!(
                svc.metadata.resource_version,
                have.metadata.resource_version
            );
            let ip = |s: &Service| s.spec.as_ref().unwrap().cluster_ip.clone();
            assert_eq!(ip(svc), ip(have), "clusterIP is immutable");
            let mut svc = svc.clone();
            self.next += 1;
            svc.metadata.resource_version = Some(self.next.to_string());
            store.services.insert(key, svc);
        }
        for svc in &diff.create {
            let key = ObjectKey::new(NS, svc.metadata.name.clone().unwrap());
            assert!(!store.services.contains_key(&key), "{key} exists");
            assert!(crate::cluster::name::is_dns1035_label(&key.name), "{key}");
            let mut svc = svc.clone();
            self.next += 1;
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + self.next);
            svc.metadata.uid = Some(format!("uid-{}", self.next));
            svc.metadata.resource_version = Some(self.next.to_string());
            let spec = svc.spec.as_mut().unwrap();
            spec.cluster_ip = Some(ip.to_string());
            spec.cluster_ips = Some(vec![ip.to_string()]);
            store.services.insert(key, svc);
        }
    }

    /// Plans and applies until nothing changes (two passes at most), returning the store.
    pub fn settle(&mut self, store: &mut Store, opts: &AddressOptions) {
        for _ in 0..2 {
            let diff = plan(store, opts);
            if diff.is_empty() {
                return;
            }
            self.apply(store, &diff);
        }
        assert!(plan(store, opts).is_empty(), "settles in two passes");
    }
}

/// A Service with TCP ports (named after their numbers).
pub(crate) fn service(ns: &str, name: &str, ports: &[u16]) -> Service {
    let ports = ports
        .iter()
        .map(|p| ServicePort {
            name: Some(format!("tcp-{p}")),
            port: i32::from(*p),
            ..Default::default()
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.0.0.1".to_string()),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

pub(super) fn add(store: &mut Store, svc: Service) {
    store.insert(Object::Service(Box::new(svc)));
}

/// The allocation of `owner` as the store's address Services hold it.
pub(crate) fn allocation(store: &Store, owner: &ObjectKey) -> BTreeMap<u16, u16> {
    Published::read(store, NS)
        .of(owner)
        .map(|a| a.ports.clone())
        .unwrap_or_default()
}

pub(super) fn created_names(diff: &Diff) -> Vec<&str> {
    diff.create
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap())
        .collect()
}

pub(super) fn deleted_names(diff: &Diff) -> Vec<&str> {
    diff.delete.iter().map(|d| d.name.as_str()).collect()
}
