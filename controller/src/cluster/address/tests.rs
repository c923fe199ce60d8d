//! Address Service tests: what the leader writes, and that ports hold still across passes
//! and restarts. [`FakeApi`] plays the API server and the watch: it applies a diff to the
//! store as a successful reconcile, seen back through the watch, would.

use std::{collections::BTreeSet, net::Ipv4Addr};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
            assert!(super::super::name::is_dns1035_label(&key.name), "{key}");
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

fn add(store: &mut Store, svc: Service) {
    store.insert(Object::Service(Box::new(svc)));
}

/// The allocation of `owner` as the store's address Services hold it.
pub(crate) fn allocation(store: &Store, owner: &ObjectKey) -> BTreeMap<u16, u16> {
    Published::read(store, NS)
        .of(owner)
        .map(|a| a.ports.clone())
        .unwrap_or_default()
}

fn created_names(diff: &Diff) -> Vec<&str> {
    diff.create
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap())
        .collect()
}

fn deleted_names(diff: &Diff) -> Vec<&str> {
    diff.delete.iter().map(|d| d.name.as_str()).collect()
}

const MESHED_AND_NOT: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  clusterIP: 10.0.0.10
  ports:
  - { name: http, port: 9080, targetPort: 8080, appProtocol: http }
  - { name: grpc-api, port: 9090 }
  - { name: dns, port: 53, protocol: UDP }
---
apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: default }
spec: { clusterIP: 10.0.0.11, ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system }
spec: { clusterIP: 10.0.0.12, ports: [ { name: dns-tcp, port: 53 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: corridor-dns, namespace: corridor-system }
spec: { clusterIP: 10.0.0.13, ports: [ { name: dns-tcp, port: 53 } ] }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy, labels: { corridor.io/mesh: disabled } }
---
apiVersion: v1
kind: Service
metadata: { name: old, namespace: legacy }
spec: { clusterIP: 10.0.0.14, ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: batch, namespace: default, labels: { corridor.io/mesh: disabled } }
spec: { clusterIP: 10.0.0.15, ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: default }
spec: { clusterIP: None, ports: [ { port: 5432 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: search, namespace: default }
spec: { type: ExternalName, externalName: search.example.com }
---
apiVersion: v1
kind: Service
metadata: { name: syslog, namespace: default }
spec: { clusterIP: 10.0.0.16, ports: [ { port: 514, protocol: UDP } ] }
"#;

#[test]
fn one_address_service_per_meshed_service() {
    let store = store_from_yaml(MESHED_AND_NOT);
    let diff = plan(&store, &opts());
    assert!(diff.update.is_empty() && diff.delete.is_empty() && diff.unplaced.is_empty());
    assert_eq!(created_names(&diff), ["ratings-default", "reviews-default"]);

    let reviews = &diff.create[1];
    let meta = &reviews.metadata;
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert_eq!(
        meta.labels.as_ref().unwrap(),
        &BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "corridor".to_string()
            ),
            (
                "corridor.io/service-namespace".to_string(),
                "default".to_string()
            ),
            (
                "corridor.io/service-name".to_string(),
                "reviews".to_string()
            ),
        ])
    );
    let spec = reviews.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.selector.as_ref(), Some(&opts().selector));
    assert_eq!(spec.cluster_ip, None, "the API server allocates it");
    let ports = spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 2, "the UDP port is not proxied");
    let target = |i: usize| match ports[i].target_port {
        Some(IntOrString::Int(p)) => u16::try_from(p).unwrap(),
        ref other => panic!("{other:?}"),
    };
    assert_eq!(
        (
            ports[0].name.as_deref(),
            ports[0].port,
            ports[0].protocol.as_deref()
        ),
        (Some("http"), 9080, Some("TCP"))
    );
    assert_eq!(ports[0].app_protocol.as_deref(), Some("http"));
    assert_eq!(
        (ports[1].name.as_deref(), ports[1].port),
        (Some("grpc-api"), 9090)
    );
    assert_eq!(ports[1].app_protocol, None);
    let (g1, g2) = (target(0), target(1));
    assert!(g1 != g2 && PortRange::default().contains(g1) && PortRange::default().contains(g2));
    assert_eq!(
        meta.annotations.as_ref().unwrap()["corridor.io/ports"],
        format!(r#"{{"9080":{g1},"9090":{g2}}}"#)
    );
}

#[test]
fn a_second_pass_changes_nothing() {
    let mut store = store_from_yaml(MESHED_AND_NOT);
    let mut api = FakeApi::default();
    let diff = plan(&store, &opts());
    api.apply(&mut store, &diff);
    assert_eq!(plan(&store, &opts()), Diff::default());
}

/// Two services of `ns` whose first ports prefer the same gateway port of `range`, the
/// one later in name order first.
fn colliding_pair(range: PortRange) -> (ObjectKey, ObjectKey) {
    let alloc = PortAllocator::new(range);
    let mut seen: BTreeMap<u16, ObjectKey> = BTreeMap::new();
    for i in 0.. {
        let key = ObjectKey::new("shop", format!("svc-{i:03}"));
        if let Some(earlier) = seen.insert(alloc.preferred(&key, 80), key.clone()) {
            return (key, earlier);
        }
    }
    unreachable!()
}

#[test]
fn ports_survive_a_restart_even_where_a_fresh_allocation_would_differ() {
    let opts = AddressOptions {
        ports: PortRange::new(30000, 30009).unwrap(),
        ..opts()
    };
    let (late, early) = colliding_pair(opts.ports);
    assert!(early < late);
    let preferred = PortAllocator::new(opts.ports).preferred(&late, 80);

    // `late` is created first and gets the preferred port; `early` comes later and probes.
    let mut store = Store::default();
    let mut api = FakeApi::default();
    add(&mut store, service(&late.namespace, &late.name, &[80]));
    api.settle(&mut store, &opts);
    add(&mut store, service(&early.namespace, &early.name, &[80]));
    let diff = plan(&store, &opts);
    assert_eq!(diff.create.len(), 1, "only the new one is written");
    assert!(diff.update.is_empty());
    api.apply(&mut store, &diff);
    assert_eq!(allocation(&store, &late), BTreeMap::from([(80, preferred)]));
    let probed = allocation(&store, &early)[&80];
    assert_ne!(probed, preferred);

    // A restarted controller rebuilds the allocation from the Services: nothing moves.
    assert!(plan(&store, &opts).is_empty());
    // Whereas allocating both from scratch would hand the preferred port to `early`.
    let mut fresh = store.clone();
    fresh.services.retain(|k, _| k.namespace != NS);
    let scratch = desired(&fresh, &opts);
    let port_of =
        |svc: &Service| match svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].target_port {
            Some(IntOrString::Int(p)) => p,
            _ => panic!(),
        };
    assert_eq!(port_of(&scratch.services[&early]), i32::from(preferred));
}

#[test]
fn ten_thousand_services_never_share_a_port() {
    let mut store = Store::default();
    for i in 0..10_000 {
        add(
            &mut store,
            service(
                &format!("ns-{}", i % 100),
                &format!("svc-{i}"),
                &[80, 443, 8080],
            ),
        );
    }
    let mut api = FakeApi::default();
    let diff = plan(&store, &opts());
    assert_eq!(diff.create.len(), 10_000);
    api.apply(&mut store, &diff);

    let published = Published::read(&store, NS);
    let owners: BTreeSet<&ObjectKey> = published.services().map(|a| &a.owner).collect();
    assert_eq!(owners.len(), 10_000);
    let ports: Vec<u16> = published.claimed_ports().collect();
    assert_eq!(ports.len(), 30_000);
    let distinct: BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        30_000,
        "no two (service, port) share a gateway port"
    );
    assert!(distinct.iter().all(|p| PortRange::default().contains(*p)));
    assert!(plan(&store, &opts()).is_empty(), "stable on the next pass");

    // Churn: 100 services go, 100 come. The newcomers cannot have the leavers' ports,
    // whose Services are still there until this pass's deletions are seen.
    let leaving: Vec<ObjectKey> = (0..100)
        .map(|i| ObjectKey::new(format!("ns-{i}"), format!("svc-{i}")))
        .collect();
    let published = Published::read(&store, NS);
    let freed: BTreeSet<u16> = leaving
        .iter()
        .flat_map(|k| published.of(k).unwrap().ports.values().copied())
        .collect();
    assert_eq!(freed.len(), 300);
    for k in &leaving {
        store.services.remove(k);
    }
    for i in 10_000..10_100 {
        add(
            &mut store,
            service("new", &format!("svc-{i}"), &[80, 443, 8080]),
        );
    }
    let diff = plan(&store, &opts());
    assert_eq!(
        (diff.create.len(), diff.update.len(), diff.delete.len()),
        (100, 0, 100)
    );
    api.apply(&mut store, &diff);
    let published = Published::read(&store, NS);
    let taken_by_new: BTreeSet<u16> = (10_000..10_100)
        .flat_map(|i| {
            published
                .of(&ObjectKey::new("new", format!("svc-{i}")))
                .unwrap()
                .ports
                .values()
                .copied()
        })
        .collect();
    assert_eq!(taken_by_new.len(), 300);
    assert!(taken_by_new.is_disjoint(&freed));
}

#[test]
fn freed_ports_are_reused_only_after_garbage_collection() {
    let opts = AddressOptions {
        ports: PortRange::new(7000, 7001).unwrap(),
        ..opts()
    };
    let (a, b, c) = (
        ObjectKey::new("default", "a"),
        ObjectKey::new("default", "b"),
        ObjectKey::new("default", "c"),
    );
    let mut store = Store::default();
    let mut api = FakeApi::default();
    add(&mut store, service("default", "a", &[80]));
    add(&mut store, service("default", "b", &[80]));
    api.settle(&mut store, &opts);
    let a_port = allocation(&store, &a)[&80];

    // `a` goes and `c` comes in the same pass: `a`'s port is not free yet.
    store.services.remove(&a);
    add(&mut store, service("default", "c", &[80]));
    let diff = plan(&store, &opts);
    assert_eq!(deleted_names(&diff), ["a-default"]);
    assert!(diff.create.is_empty(), "{:?}", created_names(&diff));
    assert!(matches!(&diff.unplaced[..], [PortError::Exhausted { service, .. }] if *service == c));
    api.apply(&mut store, &diff);

    // Once the deletion is seen, `c` gets the port.
    let diff = plan(&store, &opts);
    assert_eq!(created_names(&diff), ["c-default"]);
    assert!(diff.unplaced.is_empty());
    api.apply(&mut store, &diff);
    assert_eq!(allocation(&store, &c), BTreeMap::from([(80, a_port)]));
    assert_eq!(allocation(&store, &b).len(), 1);
}

#[test]
fn an_exhausted_range_keeps_an_existing_service_and_completes_it_later() {
    let opts = AddressOptions {
        ports: PortRange::new(7000, 7002).unwrap(),
        ..opts()
    };
    let a = ObjectKey::new("default", "a");
    let mut store = Store::default();
    let mut api = FakeApi::default();
    add(&mut store, service("default", "a", &[80, 81]));
    add(&mut store, service("default", "b", &[80]));
    api.settle(&mut store, &opts);
    let before = allocation(&store, &a);
    let ip = |s: &Store| Published::read(s, NS).of(&a).unwrap().cluster_ips.clone();
    let ip_before = ip(&store);

    // `a` swaps port 81 for 82 with the range full: 82 finds no port this pass.
    add(&mut store, service("default", "a", &[80, 82]));
    let diff = plan(&store, &opts);
    assert!(matches!(
        &diff.unplaced[..],
        [PortError::Exhausted { port: 82, .. }]
    ));
    assert!(diff.delete.is_empty() && diff.create.is_empty());
    api.apply(&mut store, &diff);
    assert_eq!(allocation(&store, &a), BTreeMap::from([(80, before[&80])]));

    // The next pass sees 81's port free and gives it to 82; the ClusterIP never changed.
    let diff = plan(&store, &opts);
    assert!(diff.unplaced.is_empty());
    api.apply(&mut store, &diff);
    assert_eq!(
        allocation(&store, &a),
        BTreeMap::from([(80, before[&80]), (82, before[&81])])
    );
    assert_eq!(ip(&store), ip_before);
}

#[test]
fn updates_keep_what_the_api_server_owns() {
    let mut store = store_from_yaml(MESHED_AND_NOT);
    let mut api = FakeApi::default();
    api.settle(&mut store, &opts());
    let reviews = ObjectKey::new("default", "reviews");
    let key = ObjectKey::new(NS, "reviews-default");
    // Someone else labels the address Service; the API server filled in fields.
    let svc = store.services.get_mut(&key).unwrap();
    svc.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("team".into(), "platform".into());
    svc.spec.as_mut().unwrap().session_affinity = Some("None".into());
    let before = svc.clone();
    let allocated = allocation(&store, &reviews);

    // reviews gains a port.
    let yaml = MESHED_AND_NOT.replace(
        "  - { name: grpc-api, port: 9090 }",
        "  - { name: grpc-api, port: 9090 }\n  - { name: metrics, port: 9100 }",
    );
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml).take(1) {
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc).unwrap();
        for o in parse_document(value) {
            store.insert(o.unwrap());
        }
    }
    let diff = plan(&store, &opts());
    assert!(diff.create.is_empty() && diff.delete.is_empty());
    let [updated] = &diff.update[..] else {
        panic!("{diff:?}")
    };
    assert_eq!(
        updated.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(updated.metadata.uid, before.metadata.uid);
    let (s, b) = (
        updated.spec.as_ref().unwrap(),
        before.spec.as_ref().unwrap(),
    );
    assert_eq!(
        (&s.cluster_ip, &s.cluster_ips),
        (&b.cluster_ip, &b.cluster_ips)
    );
    assert_eq!(s.session_affinity.as_deref(), Some("None"));
    assert_eq!(
        updated.metadata.labels.as_ref().unwrap()["team"],
        "platform"
    );
    api.apply(&mut store, &diff);
    let after = allocation(&store, &reviews);
    assert_eq!(after.len(), 3);
    assert_eq!(
        (after[&9080], after[&9090]),
        (allocated[&9080], allocated[&9090]),
        "old ports stay"
    );

    // A new gateway selector rewrites every address Service, ports unchanged.
    let moved = AddressOptions {
        selector: BTreeMap::from([("app".to_string(), "gw".to_string())]),
        ..opts()
    };
    let diff = plan(&store, &moved);
    assert_eq!(diff.update.len(), 2);
    assert!(
        diff.update
            .iter()
            .all(|s| s.spec.as_ref().unwrap().selector.as_ref() == Some(&moved.selector))
    );
    api.apply(&mut store, &diff);
    assert_eq!(allocation(&store, &reviews), after);
}

#[test]
fn services_gone_opted_out_or_portless_lose_their_address_service() {
    let base = r#"
apiVersion: v1
kind: Namespace
metadata: { name: team }
---
apiVersion: v1
kind: Service
metadata: { name: gone, namespace: team }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: optout, namespace: team }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: udp, namespace: team }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: stays, namespace: team }
spec: { ports: [ { port: 80 } ] }
"#;
    let mut store = store_from_yaml(base);
    let mut api = FakeApi::default();
    api.settle(&mut store, &opts());
    assert_eq!(Published::read(&store, NS).services().count(), 4);
    let uid = store.services[&ObjectKey::new(NS, "gone-team")]
        .metadata
        .uid
        .clone();

    let changed = base
        .replace(
            "metadata: { name: gone, namespace: team }\nspec: { ports: [ { port: 80 } ] }",
            "metadata: { name: other, namespace: elsewhere }\nspec: { clusterIP: None }",
        )
        .replace(
            "{ name: optout, namespace: team }",
            "{ name: optout, namespace: team, labels: { corridor.io/mesh: disabled } }",
        )
        .replace(
            "{ name: udp, namespace: team }\nspec: { ports: [ { port: 80 } ] }",
            "{ name: udp, namespace: team }\nspec: { ports: [ { port: 80, protocol: UDP } ] }",
        );
    let mut next = store_from_yaml(&changed);
    next.services.extend(
        store
            .services
            .iter()
            .filter(|(k, _)| k.namespace == NS)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let diff = plan(&next, &opts());
    assert_eq!(
        deleted_names(&diff),
        ["gone-team", "optout-team", "udp-team"]
    );
    assert_eq!(
        diff.delete[0].uid, uid,
        "deleted with its uid as precondition"
    );
    assert!(diff.create.is_empty() && diff.update.is_empty());

    // A whole namespace opting out.
    let team_out = base.replace(
        "metadata: { name: team }",
        "metadata: { name: team, labels: { corridor.io/mesh: disabled } }",
    );
    let mut next = store_from_yaml(&team_out);
    next.services.extend(
        store
            .services
            .iter()
            .filter(|(k, _)| k.namespace == NS)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    assert_eq!(plan(&next, &opts()).delete.len(), 4);
}

#[test]
fn names_never_clash() {
    let mut store = Store::default();
    let mut api = FakeApi::default();
    // "a-b" in "c" and "a" in "b-c" both want "a-b-c"; the chart owns "reviews-default".
    add(&mut store, service("c", "a-b", &[80]));
    add(&mut store, service("b-c", "a", &[80]));
    add(&mut store, service("default", "reviews", &[80]));
    add(&mut store, service(NS, "reviews-default", &[80]));
    let long = "l".repeat(50);
    add(&mut store, service("default", &long, &[80]));
    let diff = plan(&store, &opts());
    let names: BTreeSet<&str> = created_names(&diff).into_iter().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains("a-b-c"));
    assert!(!names.contains("reviews-default"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| super::super::name::is_dns1035_label(n))
    );
    api.apply(&mut store, &diff);
    assert!(
        plan(&store, &opts()).is_empty(),
        "names are kept, not recomputed"
    );
}

#[test]
fn duplicates_are_deleted_and_contested_ports_move() {
    let mut store = Store::default();
    let mut api = FakeApi::default();
    add(&mut store, service("default", "a", &[80]));
    add(&mut store, service("default", "b", &[80]));
    api.settle(&mut store, &opts());
    let (a, b) = (
        ObjectKey::new("default", "a"),
        ObjectKey::new("default", "b"),
    );
    let a_port = allocation(&store, &a)[&80];

    // A stray copy of a's Service, and b's Service edited to claim a's port.
    let mut copy = store.services[&ObjectKey::new(NS, "a-default")].clone();
    copy.metadata.name = Some("zz-copy".into());
    store.services.insert(ObjectKey::new(NS, "zz-copy"), copy);
    let b_svc = store
        .services
        .get_mut(&ObjectKey::new(NS, "b-default"))
        .unwrap();
    b_svc
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(PORTS_ANNOTATION.into(), format!(r#"{{"80":{a_port}}}"#));

    let diff = plan(&store, &opts());
    assert_eq!(deleted_names(&diff), ["zz-copy"]);
    let [moved] = &diff.update[..] else {
        panic!("{diff:?}")
    };
    assert_eq!(moved.metadata.name.as_deref(), Some("b-default"));
    api.apply(&mut store, &diff);
    assert_eq!(
        allocation(&store, &a)[&80],
        a_port,
        "the first by name keeps the port"
    );
    assert_ne!(allocation(&store, &b)[&80], a_port);
    assert!(plan(&store, &opts()).is_empty());
}

#[test]
fn an_owner_waits_while_its_old_service_terminates() {
    let mut store = Store::default();
    let mut api = FakeApi::default();
    add(&mut store, service("default", "a", &[80]));
    api.settle(&mut store, &opts());
    let key = ObjectKey::new(NS, "a-default");
    store
        .services
        .get_mut(&key)
        .unwrap()
        .metadata
        .deletion_timestamp = Some(Time(Default::default()));
    let diff = plan(&store, &opts());
    assert!(diff.is_empty(), "{diff:?}");
    store.services.remove(&key);
    assert_eq!(created_names(&plan(&store, &opts())), ["a-default"]);
}
