//! Dubbo through the real controller and gateway with a client written by others: PyPI
//! `dubbo-python` (`tests/python/dubbo_peer.py`, connected straight to the gateway)
//! calling `corridor-load serve dubbo` echo backends. Each run of the client makes all its
//! calls over one connection.

use std::net::SocketAddr;

use corridor_tests::manifests::ServicePort;
use corridor_tests::meta::{EchoServer, Protocol, versioned_service};
use corridor_tests::python::{DubboCall, dubbo_client};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

const SERVICE: &str = "demo";
const PORT: u16 = 20880;
const INTERFACE: &str = "org.apache.dubbo.demo.DemoService";
/// Calls in the weighted-split test: with an 80 % share the standard deviation is under
/// 1 %, so the ±5 % tolerance is over five deviations wide.
const SPLIT_CALLS: usize = 2_000;

/// Service `demo` on a `tcp-dubbo-*` port served by one echo backend per name (versions
/// v1, v2, ... in order, with a DestinationRule subset per version), routed by a
/// MetaRouter with `routes`; returns the mesh, the backends and the gateway address.
async fn dubbo_mesh(
    tag: &str,
    names: &[&str],
    routes: Value,
) -> (Mesh, Vec<EchoServer>, SocketAddr) {
    versioned_service(tag, Protocol::Dubbo, SERVICE, ServicePort::new("tcp-dubbo-demo", PORT), names, routes).await
}

/// A destination `subset` of the service, with `weight`.
fn to(subset: &str, weight: u32) -> Value {
    json!({"destination": {"host": SERVICE, "subset": subset}, "weight": weight})
}

/// Runs dubbo_peer.py with `args`.
async fn call(addr: SocketAddr, args: &[&str]) -> Vec<DubboCall> {
    dubbo_client(addr, args)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until `sayHello(world)` through the gateway answers (the MetaProtocol routes
/// arrive after the listener) and returns the answer.
async fn first_answer(addr: SocketAddr) -> String {
    eventually(
        PATIENCE,
        "an answer to sayHello through the gateway",
        || async move {
            let calls = dubbo_client(addr, &[]).await?;
            let answer = calls.first().and_then(DubboCall::value);
            answer
                .map(String::from)
                .ok_or_else(|| anyhow::anyhow!("{calls:?}"))
        },
    )
    .await
}

/// How many calls each backend has logged.
fn logged(servers: &[EchoServer]) -> Vec<usize> {
    servers.iter().map(|s| s.calls().len()).collect()
}

#[tokio::test]
async fn say_hello_through_the_gateway() {
    let routes = json!([{
        "name": "say-hello",
        "match": {"attributes": {"interface": {"exact": INTERFACE}, "method": {"exact": "sayHello"}}},
        "route": [to("v1", 100)]
    }]);
    let (_mesh, servers, addr) = dubbo_mesh("dubbo-hello", &["d1"], routes).await;
    assert_eq!(first_answer(addr).await, "d1: world");

    let calls = call(addr, &["--arg", "corridor", "--repeat", "3"]).await;
    let values: Vec<Option<&str>> = calls.iter().map(DubboCall::value).collect();
    assert_eq!(values, [Some("d1: corridor"); 3], "{calls:?}");
    let last = eventually(PATIENCE, "the backend to log the calls", || async {
        let mut calls = servers[0].calls();
        anyhow::ensure!(calls.len() >= 4, "{calls:?}");
        Ok(calls.pop())
    })
    .await
    .unwrap_or_else(|| panic!("the backend logged no call"));
    assert_eq!(
        (last.field("interface"), last.field("method")),
        (INTERFACE, "sayHello"),
        "{last:?}"
    );

    // A method no route takes: dubbo-python raises with the gateway's message.
    let refused = call(addr, &["--method", "sayGoodbye"]).await;
    assert_eq!(
        refused[0].error_type(),
        "DubboResponseException",
        "{refused:?}"
    );
    assert!(
        refused[0].error_message().contains("no route"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn say_hello_is_split_80_20_between_subsets() {
    let routes = json!([{
        "name": "split",
        "match": {"attributes": {"method": {"exact": "sayHello"}}},
        "route": [to("v1", 80), to("v2", 20)]
    }]);
    let (_mesh, servers, addr) = dubbo_mesh("dubbo-split", &["d1", "d2"], routes).await;
    first_answer(addr).await;
    let before = logged(&servers);

    let repeat = SPLIT_CALLS.to_string();
    let calls = call(addr, &["--repeat", &repeat]).await;
    assert_eq!(calls.len(), SPLIT_CALLS);
    let failed: Vec<&DubboCall> = calls.iter().filter(|c| c.value().is_none()).collect();
    assert!(
        failed.is_empty(),
        "{} calls failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let answered_by = |name: &str| {
        calls
            .iter()
            .filter(|c| c.value() == Some(&format!("{name}: world")))
            .count()
    };
    let (v1, v2) = (answered_by("d1"), answered_by("d2"));
    assert_eq!(v1 + v2, SPLIT_CALLS, "every answer names d1 or d2");
    let share = v1 as f64 / SPLIT_CALLS as f64;
    assert!(
        (0.75..=0.85).contains(&share),
        "v1 answered {v1} of {SPLIT_CALLS} ({share:.3}), want 80 % ±5 %"
    );

    // The backends' own logs agree with what the client saw.
    let seen = eventually(PATIENCE, "the backends to log every call", || async {
        let now = logged(&servers);
        let seen: Vec<usize> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        anyhow::ensure!(seen.iter().sum::<usize>() >= SPLIT_CALLS, "logged {seen:?}");
        Ok(seen)
    })
    .await;
    assert_eq!(seen, [v1, v2], "calls logged by d1 and d2");
}

#[tokio::test]
async fn calls_are_routed_on_their_version_attachment() {
    // dubbo-python writes three attachments (path, interface, version) and cannot add
    // others, so the route matches the version it sends.
    let routes = json!([
        {"name": "v2-callers", "match": {"attributes": {"version": {"exact": "2.0.0"}}}, "route": [to("v2", 100)]},
        {"name": "everyone-else", "route": [to("v1", 100)]}
    ]);
    let (_mesh, servers, addr) = dubbo_mesh("dubbo-version", &["d1", "d2"], routes).await;
    first_answer(addr).await;

    for (version, expected) in [
        ("2.0.0", "d2: world"),
        ("1.0.0", "d1: world"),
        ("2.0.1", "d1: world"),
    ] {
        let calls = call(addr, &["--version", version, "--repeat", "10"]).await;
        let values: Vec<Option<&str>> = calls.iter().map(DubboCall::value).collect();
        assert_eq!(values, [Some(expected); 10], "version {version}: {calls:?}");
    }

    // d2 saw only version 2.0.0 calls (the attachment as sent), d1 never one.
    let versions = |server: &EchoServer| -> Vec<String> {
        server
            .calls()
            .iter()
            .map(|c| c.attributes.get("version").cloned().unwrap_or_default())
            .collect()
    };
    let d2 = eventually(PATIENCE, "d2 to log its calls", || async {
        let d2 = versions(&servers[1]);
        anyhow::ensure!(d2.len() >= 10, "{d2:?}");
        Ok(d2)
    })
    .await;
    assert_eq!(d2, vec!["2.0.0"; 10]);
    assert!(
        !versions(&servers[0]).iter().any(|v| v == "2.0.0"),
        "{:?}",
        versions(&servers[0])
    );
}
