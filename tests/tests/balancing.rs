//! Load balancing through the real controller and gateway, in HTTP, gRPC, Dubbo and
//! Thrift alike, checked against the backends' own call logs.
//!
//! - Consistent hashing (DestinationRule `consistentHash`): every call with one key
//!   lands on one backend; different keys spread; taking a backend out of the ring moves
//!   only the keys it had. The key is a header (HTTP), a Dubbo attachment, a THeader
//!   header (Thrift, through the Python client) and, for gRPC, the caller's address
//!   (`useSourceIp`, corridor-load `--source`).
//! - Locality (`localityLbSetting.enabled`, or the Service's `trafficDistribution:
//!   PreferClose`): a gateway started with `--zone zone-a` sends every call to zone-a
//!   while it has ready endpoints, and spills over to zone-b without a failed call when
//!   zone-a's endpoints go unready under load.

mod lb_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use corridor_tests::python::thrift_client;
use corridor_tests::route_policy::{Proto, count, load};
use corridor_tests::{PATIENCE, eventually};
use lb_support::{Setup, Spec, plain, setup};
use serde_json::{Value, json};

/// Calls per key when checking that a key sticks to one backend.
const STICKY_CALLS: u64 = 100;
/// Keys used to see that keys spread, and which move when a backend leaves.
const KEYS: usize = 9;

// === consistent hashing ===

/// The DestinationRule of a protocol's hashing test.
fn hashing(proto: Proto, table: Value) -> Value {
    let mut hash = match proto {
        Proto::Grpc => json!({"useSourceIp": true}),
        _ => json!({"httpHeaderName": "x-user"}),
    };
    if let (Some(h), Some(t)) = (hash.as_object_mut(), table.as_object()) {
        h.extend(t.clone());
    }
    json!({"loadBalancer": {"consistentHash": hash}})
}

/// A caller address for key `key` (gRPC hashes on it): a loopback address of its own.
fn source(s: &Setup, key: usize) -> IpAddr {
    let IpAddr::V4(v4) = s.backends[0].addr.ip() else {
        unreachable!("test backends are on IPv4 loopback")
    };
    let o = v4.octets();
    IpAddr::V4(Ipv4Addr::new(127, o[1], 200, 1 + key as u8))
}

/// Makes about `calls` calls carrying key `key`; returns how many answers came back.
async fn call_with_key(s: &Setup, key: usize, calls: u64) -> u64 {
    let proto = s.proto;
    if proto == Proto::Thrift {
        let header = format!("x-user=user-{key}");
        let repeat = calls.to_string();
        let args = [
            "--transport",
            "header",
            "--header",
            &header,
            "--repeat",
            &repeat,
            "--call",
            "echo=x",
        ];
        let answers = thrift_client(s.addr, &args)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(answers.iter().all(|c| c.value().is_some()), "{answers:?}");
        return answers.len() as u64;
    }
    let keyed = match proto {
        Proto::Http => format!("--header x-user:user-{key}"),
        Proto::Dubbo => format!("--attachment x-user=user-{key}"),
        Proto::Grpc => format!("--source {}", source(s, key)),
        Proto::Thrift => unreachable!(),
    };
    // About `calls` calls in a quarter of a second, on one connection.
    let summary = load(
        proto,
        s.addr,
        &format!(
            "--rate {} --duration 250ms --connections 1 {keyed}",
            calls * 4
        ),
    )
    .await;
    let ok = count(&summary, &["statuses", proto.ok_status()]);
    assert_eq!(ok, count(&summary, &["requests", "completed"]), "{summary}");
    ok
}

/// The backends (indices) that served the calls of `key`, and how many each.
async fn served(s: &Setup, key: usize, calls: u64) -> Vec<(usize, usize)> {
    let before = s.calls();
    let answered = call_with_key(s, key, calls).await as usize;
    // The logs may trail the answers by a moment.
    eventually(PATIENCE, "every call logged", || async {
        let now = s.calls();
        let logged: usize = now.iter().zip(&before).map(|(a, b)| a - b).sum();
        anyhow::ensure!(logged >= answered, "{logged} of {answered} logged");
        Ok(())
    })
    .await;
    s.calls()
        .iter()
        .zip(&before)
        .enumerate()
        .filter(|(_, (a, b))| a > b)
        .map(|(i, (a, b))| (i, a - b))
        .collect()
}

/// The one backend each key went to.
async fn owners(s: &Setup) -> Vec<usize> {
    let mut out = Vec::new();
    for key in 0..KEYS {
        let got = served(s, key, 5).await;
        assert_eq!(
            got.len(),
            1,
            "{:?}: key {key} was served by {got:?}",
            s.proto
        );
        out.push(got[0].0);
    }
    out
}

async fn one_key_one_endpoint(proto: Proto, table: Value, ring: bool) {
    let specs = [plain("b0"), plain("b1"), plain("b2")];
    let s = setup(proto, "hash", &specs, hashing(proto, table), None, &[]).await;

    let sticky = served(&s, 0, STICKY_CALLS).await;
    assert_eq!(
        sticky.len(),
        1,
        "{proto:?}: one key, several backends: {sticky:?}"
    );
    assert!(sticky[0].1 as u64 >= STICKY_CALLS * 9 / 10, "{sticky:?}");

    let before = owners(&s).await;
    let mut distinct = before.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "{proto:?}: {KEYS} keys all on one backend: {before:?}"
    );
    if !ring {
        return;
    }

    // Take out a backend that has keys; the others keep theirs.
    let gone = before[0];
    s.write(|i| i != gone);
    eventually(PATIENCE, "the backend out of the ring", || async {
        let got = served(&s, 0, 3).await;
        anyhow::ensure!(got.iter().all(|(i, _)| *i != gone), "{got:?}");
        Ok(())
    })
    .await;
    let after = owners(&s).await;
    for (key, (b, a)) in before.iter().zip(&after).enumerate() {
        if *b == gone {
            assert_ne!(*a, gone, "key {key} still on the removed backend");
        } else {
            assert_eq!(
                a, b,
                "{proto:?}: key {key} moved from {b} to {a}: {before:?} -> {after:?}"
            );
        }
    }
}

#[tokio::test]
async fn one_http_header_value_sticks_to_one_endpoint_of_a_ring() {
    one_key_one_endpoint(Proto::Http, json!({}), true).await;
}

#[tokio::test]
async fn one_grpc_caller_sticks_to_one_endpoint_of_a_ring() {
    one_key_one_endpoint(Proto::Grpc, json!({}), true).await;
}

#[tokio::test]
async fn one_dubbo_attachment_value_sticks_to_one_endpoint_of_a_ring() {
    one_key_one_endpoint(Proto::Dubbo, json!({}), true).await;
}

#[tokio::test]
async fn one_thrift_theader_value_sticks_to_one_endpoint_of_a_ring() {
    one_key_one_endpoint(Proto::Thrift, json!({}), true).await;
}

#[tokio::test]
async fn one_http_header_value_sticks_to_one_endpoint_of_a_maglev_table() {
    one_key_one_endpoint(Proto::Http, json!({"maglev": {"tableSize": 65537}}), false).await;
}

// === locality ===

/// Calls zone-a's backends (0, 1) and zone-b's (2, 3) logged since `before`.
fn by_zone(s: &Setup, before: &[usize]) -> (usize, usize) {
    let d: Vec<usize> = s.calls().iter().zip(before).map(|(a, b)| a - b).collect();
    (d[0] + d[1], d[2] + d[3])
}

async fn the_gateways_zone_first(proto: Proto, prefer_close: bool) {
    let zone = |name, zone| Spec {
        name,
        zone,
        flags: &[],
    };
    let specs = [
        zone("a1", "zone-a"),
        zone("a2", "zone-a"),
        zone("b1", "zone-b"),
        zone("b2", "zone-b"),
    ];
    let (rule, distribution) = if prefer_close {
        (Value::Null, Some("PreferClose"))
    } else {
        (
            json!({"loadBalancer": {"localityLbSetting": {"enabled": true}}}),
            None,
        )
    };
    let s = setup(
        proto,
        "zone",
        &specs,
        rule,
        distribution,
        &["--zone", "zone-a"],
    )
    .await;

    let before = s.calls();
    let summary = load(proto, s.addr, "--rate 200 --duration 1s --connections 2").await;
    assert_eq!(count(&summary, &["requests", "errors"]), 0, "{summary}");
    let completed = count(&summary, &["requests", "completed"]) as usize;
    let local = wait_logged(&s, &before, completed).await;
    assert_eq!(
        local,
        (completed, 0),
        "{proto:?}: calls left zone-a while it was healthy"
    );
    let d: Vec<usize> = s.calls().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        d[0] > 0 && d[1] > 0,
        "{proto:?}: both zone-a endpoints serve: {d:?}"
    );

    // Zone-a's endpoints go unready under load: the calls move to zone-b, none fails.
    let before = s.calls();
    let run = tokio::spawn(load(
        proto,
        s.addr,
        "--rate 100 --duration 3s --connections 2 --timeout 5s",
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write(|i| i >= 2);
    let summary = run.await.expect("load");
    assert_eq!(
        count(&summary, &["requests", "errors"]),
        0,
        "{proto:?}: {summary}"
    );
    let ok = count(&summary, &["statuses", proto.ok_status()]);
    assert_eq!(
        ok,
        count(&summary, &["requests", "completed"]),
        "{proto:?}: {summary}"
    );
    let (_, remote) = by_zone(&s, &before);
    assert!(remote > 0, "{proto:?}: nothing spilled over to zone-b");
    // Once the push is in, zone-b takes everything.
    let before = s.calls();
    let summary = load(proto, s.addr, "--rate 100 --duration 500ms --connections 1").await;
    let completed = count(&summary, &["requests", "completed"]) as usize;
    assert_eq!(
        wait_logged(&s, &before, completed).await,
        (0, completed),
        "{proto:?}"
    );
}

/// Waits until `completed` calls since `before` are logged; calls per zone.
async fn wait_logged(s: &Setup, before: &[usize], completed: usize) -> (usize, usize) {
    eventually(PATIENCE, "every call logged", || async {
        let (a, b) = by_zone(s, before);
        anyhow::ensure!(a + b >= completed, "{} of {completed} logged", a + b);
        Ok(())
    })
    .await;
    by_zone(s, before)
}

#[tokio::test]
async fn http_calls_stay_in_the_gateways_zone_and_spill_over_when_it_empties() {
    the_gateways_zone_first(Proto::Http, false).await;
}

#[tokio::test]
async fn grpc_calls_stay_in_the_gateways_zone_and_spill_over_when_it_empties() {
    the_gateways_zone_first(Proto::Grpc, false).await;
}

#[tokio::test]
async fn dubbo_calls_stay_in_the_gateways_zone_and_spill_over_when_it_empties() {
    the_gateways_zone_first(Proto::Dubbo, false).await;
}

#[tokio::test]
async fn thrift_calls_stay_in_the_gateways_zone_and_spill_over_when_it_empties() {
    the_gateways_zone_first(Proto::Thrift, false).await;
}

#[tokio::test]
async fn prefer_close_keeps_http_calls_in_the_gateways_zone() {
    the_gateways_zone_first(Proto::Http, true).await;
}

#[tokio::test]
async fn prefer_close_keeps_dubbo_calls_in_the_gateways_zone() {
    the_gateways_zone_first(Proto::Dubbo, true).await;
}
