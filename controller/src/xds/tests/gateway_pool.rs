//! The gateway pool's availability as DNS replicas see it: a gateway stream's listener
//! ACK turns `gateway_available` on in the served name table; its NACK, or its end,
//! turns it off again.

use corridor_proto::{
    corridor::dns::v1::NameTable, envoy::service::discovery::v3::DeltaDiscoveryRequest,
    google::protobuf::Any, type_url,
};
use prost::Message;

use super::*;

fn decode_table(any: &Any) -> NameTable {
    assert_eq!(any.type_url, type_url::NAME_TABLE);
    NameTable::decode(any.value.as_slice()).unwrap()
}

#[tokio::test]
async fn sotw_dns_stream_follows_a_delta_gateway_that_acks_then_leaves() {
    let server = serve(snapshot(MESH)).await;
    let mut dns = Sotw::open(server.addr).await;
    dns.send(type_url::NAME_TABLE, &[], "", "", None).await;
    let first = dns.recv().await;
    assert_eq!(first.type_url, type_url::NAME_TABLE);
    assert_eq!(first.resources.len(), 1, "a wildcard: the one table");
    let table = decode_table(&first.resources[0]);
    assert_eq!(table.zone, "cluster.local");
    assert!(!table.gateway_available, "no gateway yet: names fail open");
    let reviews = table.services.iter().find(|s| s.name == "reviews").unwrap();
    assert!(reviews.meshed && !reviews.gateway_ips.is_empty());
    dns.send(
        type_url::NAME_TABLE,
        &[],
        &first.version_info,
        &first.nonce,
        None,
    )
    .await;

    let mut gateway = Delta::open(server.addr).await;
    gateway
        .send(DeltaDiscoveryRequest {
            type_url: type_url::LISTENER.into(),
            ..Default::default()
        })
        .await;
    let lds = gateway.recv().await;
    assert_eq!(lds.resources.len(), 3);
    assert!(
        !*server.available.borrow(),
        "listeners sent but not acknowledged"
    );
    gateway
        .send(DeltaDiscoveryRequest {
            type_url: type_url::LISTENER.into(),
            response_nonce: lds.nonce.clone(),
            ..Default::default()
        })
        .await;
    let up = dns.recv().await;
    assert!(decode_table(&up.resources[0]).gateway_available);
    assert_ne!(up.version_info, first.version_info);
    dns.send(type_url::NAME_TABLE, &[], &up.version_info, &up.nonce, None)
        .await;

    drop(gateway);
    let down = dns.recv().await;
    assert!(!decode_table(&down.resources[0]).gateway_available);
    assert_eq!(
        down.version_info, first.version_info,
        "the table is the one served before the gateway came"
    );
}

#[tokio::test]
async fn delta_dns_stream_follows_a_sotw_gateway_through_a_push_and_a_nack() {
    let server = serve(snapshot(MESH)).await;
    let mut dns = Delta::open(server.addr).await;
    dns.send(DeltaDiscoveryRequest {
        type_url: type_url::NAME_TABLE.into(),
        ..Default::default()
    })
    .await;
    let first = dns.recv().await;
    assert_eq!(first.resources.len(), 1);
    assert_eq!(first.resources[0].name, "cluster.local");
    let table =
        |r: &DeltaDiscoveryResponse| decode_table(r.resources[0].resource.as_ref().unwrap());
    assert!(!table(&first).gateway_available);

    let mut gateway = Sotw::open(server.addr).await;
    gateway.send(type_url::LISTENER, &[], "", "", None).await;
    let lds = gateway.recv().await;
    gateway
        .send(type_url::LISTENER, &[], &lds.version_info, &lds.nonce, None)
        .await;
    assert!(table(&dns.recv().await).gateway_available);

    // A new service: a listener push the gateway has not answered yet leaves it serving
    // (it still has the previous good listeners), and DNS learns the new name.
    server
        .publish
        .send_replace(Arc::new(snapshot(&format!("{MESH}{EXTRA}"))));
    let pushed = gateway.recv().await;
    assert_eq!(pushed.resources.len(), 4);
    let grown = table(&dns.recv().await);
    assert!(grown.gateway_available);
    assert!(grown.services.iter().any(|s| s.name == "extra" && s.meshed));
    assert!(*server.available.borrow());

    gateway
        .send(
            type_url::LISTENER,
            &[],
            &lds.version_info,
            &pushed.nonce,
            Some("listener extra: bad"),
        )
        .await;
    assert!(
        !table(&dns.recv().await).gateway_available,
        "a gateway that rejected the listeners does not count"
    );
}
