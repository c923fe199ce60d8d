//! The client against a hand-driven ADS server: subscriptions, ACK/NACK, versions on
//! reconnect, readiness.

use std::net::SocketAddr;

use corridor_proto::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

use crate::app::{Bound, Config, build};
use crate::testing::*;

async fn gateway(ads: &TestAds) -> Bound {
    let mut c = Config::new(ads.addr.to_string());
    c.admin_address = "127.0.0.1:0".parse().unwrap();
    c.node_id = "test-node".into();
    build(c).await.unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn subscribes_acks_and_becomes_ready_after_a_complete_config() {
    let mut ads = TestAds::start().await;
    let gw = gateway(&ads).await;
    let first = ads.next_request().await;
    assert_eq!(
        first.node.as_ref().map(|n| n.id.as_str()),
        Some("test-node")
    );
    ads.request_where(CLUSTER, |r| r.response_nonce.is_empty())
        .await;
    assert!(!gw.ready().is_ready());

    let n = ads.push(
        LISTENER,
        vec![resource("l1", "1", http_listener("l1", any_port(), "r1"))],
        vec![],
    );
    let ack = ads.request_where(LISTENER, |r| r.response_nonce == n).await;
    assert!(ack.error_detail.is_none());
    let sub = ads.request_where(ROUTE, |_| true).await;
    assert_eq!(sub.resource_names_subscribe, vec!["r1".to_string()]);
    assert_eq!(gw.listeners().len(), 1);

    let n = ads.push(
        CLUSTER,
        vec![resource("c1", "1", cluster("c1", false))],
        vec![],
    );
    ads.request_where(CLUSTER, |r| r.response_nonce == n).await;
    let sub = ads.request_where(ENDPOINT, |_| true).await;
    assert_eq!(sub.resource_names_subscribe, vec!["c1".to_string()]);
    assert!(!gw.ready().is_ready(), "RDS and EDS still pending");

    ads.push(
        ROUTE,
        vec![resource(
            "r1",
            "1",
            route_config("r1", vec![prefix_route("all", "/", "c1")]),
        )],
        vec![],
    );
    ads.request_where(ROUTE, |r| !r.response_nonce.is_empty())
        .await;
    assert!(!gw.ready().is_ready(), "EDS still pending");
    let n = ads.push(
        ENDPOINT,
        vec![resource("c1", "1", assignment("c1", &[]))],
        vec![],
    );
    ads.request_where(ENDPOINT, |r| r.response_nonce == n).await;
    assert!(gw.ready().is_ready(), "pending: {:?}", gw.ready().pending());

    // Removing the listener unsubscribes its route configuration.
    ads.push(LISTENER, vec![], vec!["l1".into()]);
    let unsub = ads
        .request_where(ROUTE, |r| !r.resource_names_unsubscribe.is_empty())
        .await;
    assert_eq!(unsub.resource_names_unsubscribe, vec!["r1".to_string()]);
    eventually(|| async { gw.listeners().is_empty().then_some(()) }).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn nacks_bad_resources_keeps_good_ones_and_never_records_rejected_versions() {
    let mut ads = TestAds::start().await;
    let gw = gateway(&ads).await;
    ads.request_where(CLUSTER, |_| true).await;

    let mut bad = http_listener("bad", any_port(), "r");
    bad.filter_chains.clear();
    let n = ads.push(
        LISTENER,
        vec![
            resource("good", "g1", http_listener("good", any_port(), "r")),
            resource("bad", "b1", bad),
        ],
        vec![],
    );
    let nack = ads.request_where(LISTENER, |r| r.response_nonce == n).await;
    let detail = nack.error_detail.expect("NACK").message;
    assert!(
        detail.contains("bad: missing field filter_chains"),
        "{detail}"
    );
    assert!(!detail.contains("good"), "{detail}");
    assert_eq!(
        gw.listeners()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["good"]
    );

    // A bad route config keeps the last good one.
    let mut rc = route_config("r", vec![prefix_route("ok", "/", "c")]);
    ads.push(ROUTE, vec![resource("r", "1", rc.clone())], vec![]);
    ads.request_where(ROUTE, |r| {
        !r.response_nonce.is_empty() && r.error_detail.is_none()
    })
    .await;
    rc.virtual_hosts[0].routes[0].r#match =
        Some(corridor_proto::envoy::config::route::v3::RouteMatch {
            path_specifier: Some(
                corridor_proto::envoy::config::route::v3::route_match::PathSpecifier::SafeRegex(
                    corridor_proto::envoy::r#type::matcher::v3::RegexMatcher {
                        regex: "(unclosed".into(),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        });
    let n = ads.push(ROUTE, vec![resource("r", "2", rc)], vec![]);
    let nack = ads.request_where(ROUTE, |r| r.response_nonce == n).await;
    assert!(
        nack.error_detail
            .expect("NACK")
            .message
            .contains("(unclosed")
    );

    // On reconnect the client sends the versions it accepted, and only those.
    ads.disconnect();
    let lds = ads
        .request_where(LISTENER, |r| {
            r.response_nonce.is_empty() && ads_reconnected(r)
        })
        .await;
    assert_eq!(
        lds.initial_resource_versions
            .get("good")
            .map(String::as_str),
        Some("g1")
    );
    assert!(!lds.initial_resource_versions.contains_key("bad"));
    let rds = ads
        .request_where(ROUTE, |r| r.response_nonce.is_empty())
        .await;
    assert_eq!(rds.resource_names_subscribe, vec!["r".to_string()]);
    assert_eq!(
        rds.initial_resource_versions.get("r").map(String::as_str),
        Some("1")
    );
    assert!(ads.streams() >= 2);
    gw.shutdown().await;
}

fn ads_reconnected(
    r: &corridor_proto::envoy::service::discovery::v3::DeltaDiscoveryRequest,
) -> bool {
    !r.initial_resource_versions.is_empty()
}

#[tokio::test]
async fn a_listener_that_cannot_bind_is_nacked() {
    let mut ads = TestAds::start().await;
    let gw = gateway(&ads).await;
    ads.request_where(CLUSTER, |_| true).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // SO_REUSEADDR does not allow two listening sockets on one address.
    let n = ads.push(
        LISTENER,
        vec![resource("clash", "1", http_listener("clash", addr, "r"))],
        vec![],
    );
    let nack = ads.request_where(LISTENER, |r| r.response_nonce == n).await;
    let msg = nack.error_detail.expect("NACK").message;
    assert!(msg.contains("clash: cannot bind"), "{msg}");
    assert!(gw.listeners().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_listener_moving_address_rebinds_and_releases_the_old_one() {
    let mut ads = TestAds::start().await;
    let gw = gateway(&ads).await;
    ads.request_where(CLUSTER, |_| true).await;
    let first: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let n = ads.push(
        LISTENER,
        vec![resource("l", "1", http_listener("l", first, "r"))],
        vec![],
    );
    ads.request_where(LISTENER, |r| r.response_nonce == n).await;
    let old = gw.listeners()[0].1;
    // Same address, new metadata: updated in place, same socket.
    let mut same = http_listener("l", old, "r");
    same.stat_prefix = "changed".into();
    let n = ads.push(LISTENER, vec![resource("l", "2", same)], vec![]);
    ads.request_where(LISTENER, |r| r.response_nonce == n).await;
    assert_eq!(gw.listeners()[0].1, old);
    // A new address: bound first, then the old one is released.
    let n = ads.push(
        LISTENER,
        vec![resource(
            "l",
            "3",
            http_listener("l", "127.0.0.2:0".parse().unwrap(), "r"),
        )],
        vec![],
    );
    ads.request_where(LISTENER, |r| {
        r.response_nonce == n && r.error_detail.is_none()
    })
    .await;
    let new = gw.listeners()[0].1;
    assert_eq!(new.ip().to_string(), "127.0.0.2");
    assert!(tokio::net::TcpStream::connect(new).await.is_ok());
    eventually(|| async {
        tokio::net::TcpStream::connect(old)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    gw.shutdown().await;
}
