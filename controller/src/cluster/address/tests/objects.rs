//! The address Services' shape, and how they follow their services: updates, deletions,
//! names, duplicates.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

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
            .all(|n| crate::cluster::name::is_dns1035_label(n))
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
