//! Name table tests: from YAML objects to the decoded table.

use corridor_proto::envoy::config::{core::v3::address, listener::v3::Listener};

use super::*;
use crate::{
    store::store_from_yaml,
    translate::{TranslateOptions, translate},
};

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:0::000a"]
  ports:
  - { name: http, port: 9080 }
  - { name: dns, port: 53, protocol: UDP }
  - { name: sig, port: 3868, protocol: SCTP }
---
apiVersion: v1
kind: Service
metadata: { name: legacy, namespace: default, labels: { corridor.io/mesh: disabled } }
spec: { clusterIP: 10.96.0.11, ports: [ { port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system }
spec: { clusterIP: 10.96.0.2, ports: [ { name: dns, port: 53, protocol: UDP } ] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: default }
spec: { clusterIP: None, ports: [ { name: pg, port: 5432 } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: db-1, namespace: default, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
ports: [ { name: pg, port: 5433 }, { name: metrics, port: 9187, protocol: TCP } ]
endpoints:
- { addresses: [10.0.0.2], hostname: db-1, conditions: { ready: false } }
- { addresses: [10.0.0.1], hostname: db-0, conditions: { ready: true } }
- { addresses: [10.0.0.3] }
---
apiVersion: v1
kind: Service
metadata: { name: search, namespace: default }
spec: { type: ExternalName, externalName: search.example.com }
"#;

fn table(yaml: &str) -> NameTable {
    let snapshot = translate(&store_from_yaml(yaml), &TranslateOptions::default());
    decode_table(&snapshot)
}

fn decode_table(snapshot: &Snapshot) -> NameTable {
    let tables = snapshot.get(type_url::NAME_TABLE).unwrap();
    assert_eq!(
        tables.resources.keys().collect::<Vec<_>>(),
        vec!["cluster.local"],
        "one table, named after the zone"
    );
    NameTable::decode(tables.resources["cluster.local"].body.value.as_slice()).unwrap()
}

fn service<'a>(table: &'a NameTable, namespace: &str, name: &str) -> &'a NameEntry {
    table
        .services
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)
        .unwrap_or_else(|| panic!("{namespace}/{name} missing"))
}

fn listener_address(snapshot: &Snapshot, name: &str) -> String {
    let r = &snapshot.get(type_url::LISTENER).unwrap().resources[name];
    let listener = Listener::decode(r.body.value.as_slice()).unwrap();
    match listener.address.and_then(|a| a.address) {
        Some(address::Address::SocketAddress(sa)) => sa.address,
        other => panic!("not a socket address: {other:?}"),
    }
}

#[test]
fn cluster_ip_service_meshed_at_its_listeners_address() {
    let snapshot = translate(&store_from_yaml(SERVICES), &TranslateOptions::default());
    let t = decode_table(&snapshot);
    assert_eq!(t.zone, "cluster.local");
    assert!(
        !t.gateway_available,
        "availability is stamped when served, not translated"
    );
    let reviews = service(&t, "default", "reviews");
    assert_eq!(reviews.kind, Kind::ClusterIp as i32);
    assert_eq!(reviews.cluster_ips, vec!["10.96.0.10", "fd00::a"]);
    assert!(reviews.meshed);
    let bound = listener_address(&snapshot, "reviews.default.svc.cluster.local:9080");
    assert_eq!(reviews.gateway_ips, vec![bound]);
    let ports: Vec<(&str, u32, &str)> = reviews
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.port, p.protocol.as_str()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("dns", 53, "udp"),
            ("sig", 3868, "sctp"),
            ("http", 9080, "tcp")
        ]
    );
}

#[test]
fn unmeshed_services_keep_their_own_addresses() {
    let t = table(SERVICES);
    for (ns, name, ip) in [
        ("default", "legacy", "10.96.0.11"),
        ("kube-system", "kube-dns", "10.96.0.2"),
    ] {
        let s = service(&t, ns, name);
        assert!(!s.meshed, "{ns}/{name}");
        assert!(s.gateway_ips.is_empty(), "{ns}/{name}");
        assert_eq!(s.cluster_ips, vec![ip]);
    }
    // An unnamed port defaults to TCP, its name empty.
    let legacy = service(&t, "default", "legacy");
    assert_eq!(
        legacy.ports,
        vec![Port {
            name: String::new(),
            port: 80,
            protocol: "tcp".into()
        }]
    );
    assert_eq!(t.services.len(), 5, "every service is in the table");
}

#[test]
fn headless_service_lists_its_endpoints_with_hostnames_and_slice_ports() {
    let t = table(SERVICES);
    let db = service(&t, "default", "db");
    assert_eq!(db.kind, Kind::Headless as i32);
    assert!(db.cluster_ips.is_empty() && !db.meshed && db.gateway_ips.is_empty());
    let got: Vec<(&str, &str, bool)> = db
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].as_str(), e.hostname.as_str(), e.ready))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1", "db-0", true),
            ("10.0.0.2", "db-1", false),
            // No conditions: ready, as the EndpointSlice API says.
            ("10.0.0.3", "", true),
        ]
    );
    let slice_ports = vec![
        Port {
            name: "pg".into(),
            port: 5433,
            protocol: "tcp".into(),
        },
        Port {
            name: "metrics".into(),
            port: 9187,
            protocol: "tcp".into(),
        },
    ];
    assert!(db.endpoints.iter().all(|e| e.ports == slice_ports));
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let yaml = SERVICES.replace(
        "spec: { clusterIP: None, ports",
        "spec: { clusterIP: None, publishNotReadyAddresses: true, ports",
    );
    let t = table(&yaml);
    let db = service(&t, "default", "db");
    assert_eq!(db.endpoints.len(), 3);
    assert!(db.endpoints.iter().all(|e| e.ready));
}

#[test]
fn external_name_service_carries_its_target() {
    let t = table(SERVICES);
    let search = service(&t, "default", "search");
    assert_eq!(search.kind, Kind::ExternalName as i32);
    assert_eq!(search.external_name, "search.example.com");
    assert!(search.cluster_ips.is_empty() && !search.meshed);
}

#[test]
fn version_follows_content_not_listing_order() {
    let opts = TranslateOptions::default();
    let version = |yaml: &str| {
        translate(&store_from_yaml(yaml), &opts)
            .get(type_url::NAME_TABLE)
            .unwrap()
            .version
            .clone()
    };
    let reordered = SERVICES.replace(
        "ports: [ { name: pg, port: 5433 }, { name: metrics, port: 9187, protocol: TCP } ]",
        "ports: [ { name: metrics, port: 9187, protocol: TCP }, { name: pg, port: 5433 } ]",
    );
    let reordered = reordered.replace(
        "- { addresses: [10.0.0.2], hostname: db-1, conditions: { ready: false } }\n- { addresses: [10.0.0.1], hostname: db-0, conditions: { ready: true } }",
        "- { addresses: [10.0.0.1], hostname: db-0, conditions: { ready: true } }\n- { addresses: [10.0.0.2], hostname: db-1, conditions: { ready: false } }",
    );
    assert_ne!(reordered, SERVICES, "the test reorders something");
    assert_eq!(version(&reordered), version(SERVICES));
    let changed = SERVICES.replace("hostname: db-0", "hostname: db-9");
    assert_ne!(version(&changed), version(SERVICES));
}

#[test]
fn stamping_availability_changes_only_the_name_table() {
    let source = translate(&store_from_yaml(SERVICES), &TranslateOptions::default());
    let up = with_gateway_available(&source, true);
    assert!(decode_table(&up).gateway_available);
    let table_version = |s: &Snapshot| s.get(type_url::NAME_TABLE).unwrap().version.clone();
    assert_ne!(table_version(&up), table_version(&source));
    for t in [
        type_url::LISTENER,
        type_url::ROUTE,
        type_url::CLUSTER,
        type_url::ENDPOINT,
    ] {
        assert_eq!(up.get(t), source.get(t), "{t} untouched");
    }
    // The rest of the table is what the translator made.
    assert_eq!(
        NameTable {
            gateway_available: false,
            ..decode_table(&up)
        },
        decode_table(&source)
    );
    let down = with_gateway_available(&up, false);
    assert!(down.same_content(&source), "back to the unstamped version");
}
