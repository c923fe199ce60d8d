//! The translator in cluster mode: listeners and DNS follow the address Services.

use corridor_proto::{
    corridor::dns::v1::NameTable,
    envoy::config::{core::v3::address, listener::v3::Listener},
    type_url,
};
use k8s_openapi::api::core::v1::Service;

use super::*;
use crate::{
    cluster::address::{
        plan,
        tests::{FakeApi, NS, allocation, opts},
    },
    store::store_from_yaml,
    translate::{
        gateway_addresses,
        tests::{HOST, MESH, decode, names},
        translate,
    },
    xds::snapshot::Snapshot,
};

fn cluster_opts() -> TranslateOptions {
    TranslateOptions {
        addressing: Addressing::Cluster,
        own_namespace: NS.to_string(),
        ..TranslateOptions::default()
    }
}

/// MESH with its address Service in place, as the leader leaves it.
fn settled() -> Store {
    let mut store = store_from_yaml(MESH);
    FakeApi::default().settle(&mut store, &opts());
    store
}

fn socket(snapshot: &Snapshot, port: u16) -> (String, u32) {
    let l: Listener = decode(snapshot, type_url::LISTENER, &format!("{HOST}:{port}"));
    let Some(address::Address::SocketAddress(sa)) = l.address.and_then(|a| a.address) else {
        panic!("not a socket address")
    };
    let Some(corridor_proto::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) =
        sa.port_specifier
    else {
        panic!("no port")
    };
    (sa.address, p)
}

fn reviews_entry(snapshot: &Snapshot) -> corridor_proto::corridor::dns::v1::Service {
    let tables = snapshot.get(type_url::NAME_TABLE).unwrap();
    let r = tables.resources.values().next().unwrap();
    let table: NameTable = prost::Message::decode(r.body.value.as_slice()).unwrap();
    table
        .services
        .into_iter()
        .find(|s| s.namespace == "default" && s.name == "reviews")
        .unwrap()
}

fn address_service(store: &mut Store) -> &mut Service {
    store
        .services
        .get_mut(&ObjectKey::new(NS, "reviews-default"))
        .unwrap()
}

#[test]
fn listeners_bind_the_allocated_ports_and_dns_answers_the_address_service() {
    let store = settled();
    let allocated = allocation(&store, &ObjectKey::new("default", "reviews"));
    assert_eq!(allocated.len(), 3);
    let s = translate(&store, &cluster_opts());
    // Names keep the original ports (routes refer to them); sockets take the gateway's.
    assert_eq!(
        names(&s, type_url::LISTENER),
        [
            format!("{HOST}:5432"),
            format!("{HOST}:9080"),
            format!("{HOST}:9090")
        ]
    );
    for (original, gateway) in &allocated {
        assert_eq!(
            socket(&s, *original),
            ("0.0.0.0".to_string(), u32::from(*gateway))
        );
    }
    let cluster_ip = address_service(&mut store.clone())
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap();
    let entry = reviews_entry(&s);
    assert!(entry.meshed);
    assert_eq!(entry.gateway_ips, [cluster_ip.as_str()]);
    assert_eq!(
        gateway_addresses(&store, &cluster_opts())[&ObjectKey::new("default", "reviews")]
            .to_string(),
        cluster_ip
    );
    // The same store in file mode still gets loopback addresses and original ports.
    let file = translate(&store, &TranslateOptions::default());
    let (addr, port) = socket(&file, 9080);
    assert!(
        addr.starts_with("127.100.") && port == 9080,
        "{addr}:{port}"
    );
}

#[test]
fn without_an_address_service_nothing_is_rewritten() {
    let store = store_from_yaml(MESH);
    assert!(
        !plan(&store, &opts()).is_empty(),
        "the leader has not written yet"
    );
    let s = translate(&store, &cluster_opts());
    assert!(names(&s, type_url::LISTENER).is_empty());
    assert!(
        !names(&s, type_url::CLUSTER).is_empty(),
        "clusters do not depend on it"
    );
    let entry = reviews_entry(&s);
    assert!(!entry.meshed && entry.gateway_ips.is_empty());
    assert!(gateway_addresses(&store, &cluster_opts()).is_empty());
}

#[test]
fn an_incomplete_address_service_is_not_used() {
    // No ClusterIP yet.
    let mut store = settled();
    let spec = address_service(&mut store).spec.as_mut().unwrap();
    (spec.cluster_ip, spec.cluster_ips) = (None, None);
    let s = translate(&store, &cluster_opts());
    assert!(names(&s, type_url::LISTENER).is_empty());
    assert!(!reviews_entry(&s).meshed);

    // A port without a gateway port (the service gained one the leader has not mapped).
    let mut store = settled();
    let meta = &mut address_service(&mut store).metadata;
    let ports = meta
        .annotations
        .as_mut()
        .unwrap()
        .get_mut(crate::cluster::PORTS_ANNOTATION)
        .unwrap();
    let mut map = crate::cluster::ports::decode_ports(ports).unwrap();
    map.remove(&5432);
    *ports = crate::cluster::ports::encode_ports(&map);
    let s = translate(&store, &cluster_opts());
    assert!(
        names(&s, type_url::LISTENER).is_empty(),
        "all ports or none"
    );
    assert!(!reviews_entry(&s).meshed);
}

#[test]
fn a_contested_gateway_port_has_one_listener() {
    let yaml = format!(
        "{MESH}---\napiVersion: v1\nkind: Service\nmetadata: {{ name: ratings, namespace: default }}\nspec: {{ ports: [ {{ name: http, port: 9080 }} ] }}\n"
    );
    let mut store = store_from_yaml(&yaml);
    FakeApi::default().settle(&mut store, &opts());
    let reviews_port = allocation(&store, &ObjectKey::new("default", "reviews"))[&9080];
    // ratings' address Service is edited to claim reviews' gateway port.
    let ratings = store
        .services
        .get_mut(&ObjectKey::new(NS, "ratings-default"))
        .unwrap();
    ratings.metadata.annotations.as_mut().unwrap().insert(
        crate::cluster::PORTS_ANNOTATION.to_string(),
        format!(r#"{{"9080":{reviews_port}}}"#),
    );
    // The Service first by name keeps the port (as the allocator decides): ratings.
    let s = translate(&store, &cluster_opts());
    let ratings = "ratings.default.svc.cluster.local:9080";
    assert_eq!(names(&s, type_url::LISTENER), [ratings]);
    let l: Listener = decode(&s, type_url::LISTENER, ratings);
    assert!(format!("{:?}", l.address).contains(&format!("PortValue({reviews_port})")));
    assert!(
        !reviews_entry(&s).meshed,
        "the loser is not rewritten until it moves"
    );
    // The next pass moves reviews to a port of its own.
    FakeApi::default().settle(&mut store, &opts());
    let s = translate(&store, &cluster_opts());
    assert_eq!(names(&s, type_url::LISTENER).len(), 4);
    assert_ne!(socket(&s, 9080).1, u32::from(reviews_port));
}
