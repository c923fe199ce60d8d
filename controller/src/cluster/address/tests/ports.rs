//! Gateway ports: stable across restarts, unique at scale, freed only after garbage
//! collection, and what an exhausted range does.

use super::*;

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
