//! Dubbo through the real controller and gateway, called by a client written by others:
//! npm dubbo2.js 2.3.9 (`tests/node/dubbo_peer.js`, one `DirectlyDubbo` socket per run).
//! The providers are `corridor-load serve dubbo` echo backends answering `"<name>: <arg>"`,
//! so every answer says which backend served it; their call logs cross-check the client.
//! The heartbeat case uses raw Dubbo frames, as no client exposes its heartbeat.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corridor_tests::manifests::{DestinationRule, ServicePort};
use corridor_tests::meta::{EchoServer, Protocol, meta_router, meta_service};
use corridor_tests::node::{DubboRun, dubbo_client};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVICE: &str = "demo";
const PORT: u16 = 20880;
const DEMO: &str = "org.apache.dubbo.demo.DemoService";

fn port() -> ServicePort {
    ServicePort::new("tcp-dubbo-demo", PORT)
}

/// A route sending `DemoService` calls matching `extra` attribute matchers to
/// `destinations` (a MetaRouter `route` list).
fn route(name: &str, extra: Value, destinations: Value) -> Value {
    let mut attributes = json!({"interface": {"exact": DEMO}});
    if let (Some(all), Some(more)) = (attributes.as_object_mut(), extra.as_object()) {
        all.extend(more.clone());
    }
    json!({"name": name, "match": {"attributes": attributes}, "route": destinations})
}

fn to_subset(subset: &str, weight: u32) -> Value {
    json!({"destination": {"host": SERVICE, "subset": subset}, "weight": weight})
}

/// The subsets v1 and v2, by the pods' `version` label.
fn subsets(ns: &str) -> Value {
    DestinationRule::new(SERVICE, ns, SERVICE)
        .subset("v1", &[("version", "v1")])
        .subset("v2", &[("version", "v2")])
        .into()
}

/// Runs dubbo2.js with `args` until its first call gets a value (the MetaProtocol routes
/// reach the gateway shortly after its listener) and returns that run.
async fn first_answer(addr: SocketAddr, args: &[&str]) -> DubboRun {
    eventually(PATIENCE, "a dubbo2.js call answered through the gateway", || async move {
        let run = dubbo_client(addr, args).await?;
        match run.calls.first() {
            Some(call) if call.value().is_some() => Ok(run),
            other => anyhow::bail!("no answer yet: {other:?}"),
        }
    })
    .await
}

/// Waits until `server` has logged `count` calls and returns them.
async fn logged(server: &EchoServer, count: usize) -> Vec<corridor_tests::meta::Call> {
    eventually(PATIENCE, &format!("{count} calls logged by {}", server.name), || {
        let calls = server.calls();
        async move {
            match calls.len() {
                n if n >= count => Ok(calls),
                n => anyhow::bail!("{n} calls logged"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn dubbo2_js_says_hello_through_the_gateway() {
    let mut mesh = Mesh::new("dubbojs-hello");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &[]).await;
    let router = meta_router(&mesh.ns, SERVICE, json!([route("hello", json!({}), json!([{"destination": {"host": SERVICE}}]))]));
    let addr = meta_service(&mut mesh, SERVICE, port(), &[(&servers[0], "v1")], vec![router]).await;

    let run = first_answer(addr, &["--arg", "world"]).await;
    assert_eq!(run.calls[0].value(), Some("p1: world"), "{run:?}");
    assert_eq!(run.connections, 1, "{run:?}");

    // The provider saw dubbo2.js's call as sent: interface, method and its attachments.
    let calls = logged(&servers[0], 1).await;
    let last = calls.last().unwrap_or_else(|| panic!("no call"));
    assert_eq!((last.field("interface"), last.field("method")), (DEMO, "sayHello"), "{last:?}");
    assert_eq!(last.attributes.get("path").map(String::as_str), Some(DEMO), "{last:?}");
    mesh.wait_for_gateway_log(&["interface=\"org.apache.dubbo.demo.DemoService\"", "code=200", "route=\"hello\""]).await;
}

#[tokio::test]
async fn dubbo2_js_calls_split_80_20_between_subsets() {
    const CALLS: usize = 2_000;
    let mut mesh = Mesh::new("dubbojs-split");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let split = json!([to_subset("v1", 80), to_subset("v2", 20)]);
    let router = meta_router(&mesh.ns, SERVICE, json!([route("split", json!({"method": {"exact": "sayHello"}}), split)]));
    let extra = vec![router, subsets(&mesh.ns)];
    let upstreams = [(&servers[0], "v1"), (&servers[1], "v2")];
    let addr = meta_service(&mut mesh, SERVICE, port(), &upstreams, extra).await;

    first_answer(addr, &[]).await;
    // The warm-up call's log line, before counting from here.
    eventually(PATIENCE, "the warm-up call logged", || {
        let total: usize = servers.iter().map(|s| s.calls().len()).sum();
        async move { if total >= 1 { Ok(()) } else { anyhow::bail!("not yet") } }
    })
    .await;
    let before: Vec<usize> = servers.iter().map(|s| s.calls().len()).collect();
    let count = CALLS.to_string();
    let run = dubbo_client(addr, &["--prefix", "w-", "--count", &count, "--concurrency", "50"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let mut served = [0usize; 2];
    for call in &run.calls {
        let value = call.value().unwrap_or_else(|| panic!("call failed: {call:?}"));
        let name = value.strip_suffix(&format!(": {}", call.arg())).unwrap_or_else(|| panic!("answer {value:?} to {:?}", call.arg()));
        match name {
            "p1" => served[0] += 1,
            "p2" => served[1] += 1,
            other => panic!("answer from {other:?}"),
        }
    }
    assert_eq!(served[0] + served[1], CALLS);
    let share = served[0] as f64 / CALLS as f64;
    assert!((0.75..=0.85).contains(&share), "v1 served {served:?} (share {share})");

    // Each backend logged exactly the calls its answers claim.
    for (i, server) in servers.iter().enumerate() {
        logged(server, before[i] + served[i]).await;
        // More lines than answers would be calls delivered twice.
        let after = server.calls().len() - before[i];
        assert_eq!(after, served[i], "{} logged {after}, answered {}", server.name, served[i]);
    }
}

#[tokio::test]
async fn dubbo2_js_group_attachment_routes_to_v2() {
    let mut mesh = Mesh::new("dubbojs-group");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let routes = json!([
        route("canary", json!({"group": {"exact": "canary"}}), json!([to_subset("v2", 100)])),
        route("rest", json!({}), json!([to_subset("v1", 100)])),
    ]);
    let extra = vec![meta_router(&mesh.ns, SERVICE, routes), subsets(&mesh.ns)];
    let upstreams = [(&servers[0], "v1"), (&servers[1], "v2")];
    let addr = meta_service(&mut mesh, SERVICE, port(), &upstreams, extra).await;

    first_answer(addr, &[]).await;
    let batch = ["--count", "20", "--concurrency", "5"];
    let canary = dubbo_client(addr, &[&["--group", "canary", "--prefix", "c-"][..], &batch].concat()).await;
    // Another group, and none: both are "the rest".
    let other = dubbo_client(addr, &[&["--group", "canaryx", "--prefix", "o-"][..], &batch].concat()).await;
    let plain = dubbo_client(addr, &[&["--prefix", "n-"][..], &batch].concat()).await;
    for (run, want) in [(canary, "p2"), (other, "p1"), (plain, "p1")] {
        let run = run.unwrap_or_else(|e| panic!("{e:#}"));
        for call in &run.calls {
            assert_eq!(call.value(), Some(format!("{want}: {}", call.arg()).as_str()), "{call:?}");
        }
    }

    // v2 saw only the canary calls, with their group attachment as dubbo2.js sent it.
    let v2 = logged(&servers[1], 20).await;
    assert!(v2.iter().all(|c| c.attributes.get("group").map(String::as_str) == Some("canary")), "{v2:?}");
    let v1 = logged(&servers[0], 40).await;
    assert!(v1.iter().all(|c| c.attributes.get("group").map(String::as_str) != Some("canary")), "{v1:?}");
}

#[tokio::test]
async fn dubbo2_js_multiplexes_100_calls_answered_out_of_order() {
    const CALLS: usize = 100;
    let mut mesh = Mesh::new("dubbojs-mux");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &["--jitter", "30ms"]).await;
    let router = meta_router(&mesh.ns, SERVICE, json!([route("all", json!({}), json!([{"destination": {"host": SERVICE}}]))]));
    let addr = meta_service(&mut mesh, SERVICE, port(), &[(&servers[0], "v1")], vec![router]).await;

    first_answer(addr, &[]).await;
    let before = logged(&servers[0], 1).await.len();
    let count = CALLS.to_string();
    let run = dubbo_client(addr, &["--prefix", "n-", "--count", &count, "--concurrency", &count])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    // All on dubbo2.js's one socket, each answered with its own argument, none lost.
    assert_eq!(run.connections, 1, "{run:?}");
    assert_eq!(run.calls.len(), CALLS);
    for (i, call) in run.calls.iter().enumerate() {
        assert_eq!(call.value(), Some(format!("p1: n-{i}").as_str()), "{call:?}");
    }
    // The jittered provider answered out of order, and the gateway passed the answers on
    // as they came (Dubbo callers match them by id), not in request order.
    let in_order: Vec<usize> = (0..CALLS).collect();
    assert_ne!(run.completed, in_order, "every answer arrived in request order");
    // The provider saw each call once, each under its own id on the gateway's link.
    let calls = logged(&servers[0], before + CALLS).await;
    let ids: std::collections::BTreeSet<&str> = calls[before..].iter().map(|c| c.field("id")).collect();
    assert_eq!((calls.len() - before, ids.len()), (CALLS, CALLS), "{:?}", &calls[before..]);
}

#[tokio::test]
async fn dubbo2_js_gets_an_error_promptly_when_the_upstream_dies_mid_call() {
    let mut mesh = Mesh::new("dubbojs-kill");
    let mut servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &["--delay", "5s"]).await;
    let router = meta_router(&mesh.ns, SERVICE, json!([route("all", json!({}), json!([{"destination": {"host": SERVICE}}]))]));
    let addr = meta_service(&mut mesh, SERVICE, port(), &[(&servers[0], "v1")], vec![router]).await;

    // Start a call and wait until it is at the provider; until the routes arrive the
    // gateway answers "no route" at once, so try again then.
    let deadline = Instant::now() + PATIENCE;
    let call = loop {
        assert!(Instant::now() < deadline, "no call reached the provider");
        let call = tokio::spawn(async move { dubbo_client(addr, &["--arg", "slow"]).await });
        let at_provider = eventually(PATIENCE, "the call at the provider or answered", || {
            let (logged, done) = (!servers[0].calls().is_empty(), call.is_finished());
            async move {
                anyhow::ensure!(logged || done, "neither yet");
                Ok(logged)
            }
        })
        .await;
        if at_provider {
            break call;
        }
        let early = call.await.unwrap_or_else(|e| panic!("{e}"));
        eprintln!("no route yet: {early:?}");
    };

    servers[0].process.kill();
    let killed = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .unwrap_or_else(|_| panic!("dubbo2.js still waiting 3 s after the provider died"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let outcome = &run.calls[0];
    eprintln!("dubbo2.js returned {outcome:?} {:?} after the kill", killed.elapsed());
    // A Dubbo error response (dubbo2.js's DubboDecodeError), not its own timeout or a
    // closed socket (plain Errors).
    assert_eq!(outcome.value(), None, "{outcome:?}");
    assert_eq!(outcome.error_type(), Some("DubboDecodeError"), "{outcome:?}");
    assert!(outcome.error_message().contains("upstream"), "{outcome:?}");
    mesh.wait_for_gateway_log(&["method=\"sayHello\"", "flags=UC"]).await;
}

/// Dubbo header flags: a request, two-way, an event, Hessian2 (id 2).
const HEARTBEAT_FLAGS: u8 = 0x80 | 0x40 | 0x20 | 0x02;

#[tokio::test]
async fn raw_dubbo_heartbeat_is_answered_with_its_id() {
    let mut mesh = Mesh::new("dubbojs-heartbeat");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &[]).await;
    let router = meta_router(&mesh.ns, SERVICE, json!([route("all", json!({}), json!([{"destination": {"host": SERVICE}}]))]));
    let addr = meta_service(&mut mesh, SERVICE, port(), &[(&servers[0], "v1")], vec![router]).await;

    let id: u64 = 0x0102_0304_0506_0708;
    let mut request = vec![0xda, 0xbb, HEARTBEAT_FLAGS, 0];
    request.extend_from_slice(&id.to_be_bytes());
    request.extend_from_slice(&1u32.to_be_bytes());
    request.push(b'N'); // Hessian2 null: a heartbeat carries no data.

    let (header, body) = eventually(PATIENCE, "a heartbeat answer", || {
        let request = request.clone();
        async move {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(&request).await?;
            let mut header = [0u8; 16];
            tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut header)).await??;
            let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            let mut body = vec![0u8; len as usize];
            s.read_exact(&mut body).await?;
            Ok((header, body))
        }
    })
    .await;
    assert_eq!(header[..2], [0xda, 0xbb], "{header:02x?}");
    assert_eq!(header[2] & 0x80, 0, "a response has no request flag: {header:02x?}");
    assert_ne!(header[2] & 0x20, 0, "a heartbeat answer is an event: {header:02x?}");
    assert_eq!(header[3], 20, "status OK: {header:02x?}");
    assert_eq!(u64::from_be_bytes(header[4..12].try_into().unwrap_or_default()), id, "{header:02x?}");
    assert_eq!(body, b"N", "a null body");
}

#[tokio::test]
async fn dubbo2_js_call_to_an_unrouted_interface_names_the_cause() {
    let mut mesh = Mesh::new("dubbojs-noroute");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &[]).await;
    let router = meta_router(&mesh.ns, SERVICE, json!([route("demo-only", json!({}), json!([{"destination": {"host": SERVICE}}]))]));
    let addr = meta_service(&mut mesh, SERVICE, port(), &[(&servers[0], "v1")], vec![router]).await;

    first_answer(addr, &[]).await;
    let run = dubbo_client(addr, &["--interface", "org.apache.dubbo.demo.OtherService"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let outcome = &run.calls[0];
    assert_eq!(outcome.value(), None, "{outcome:?}");
    assert_eq!(outcome.error_type(), Some("DubboDecodeError"), "{outcome:?}");
    assert!(outcome.error_message().contains("no route"), "{outcome:?}");
    mesh.wait_for_gateway_log(&["interface=\"org.apache.dubbo.demo.OtherService\"", "code=404", "flags=NR"]).await;
    assert!(servers[0].calls().iter().all(|c| c.field("interface") == DEMO));
}
