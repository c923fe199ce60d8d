//! Call policies for Dubbo and Thrift through the real controller and gateway: Istio
//! VirtualServices routing Dubbo and Thrift services (method, attribute and THeader header
//! matches, subsets, weights) until a MetaRouter takes the host over; the default retries
//! (connect failures, Dubbo's 503-equivalent statuses) and a VirtualService's own (5xx,
//! per-try timeout); Dubbo statuses counted as their HTTP equivalents; the per-call
//! timeout; the MetaRouter's local rate limit; request mirroring.
//!
//! Callers are clients written by others (npm dubbo2.js, PyPI thrift) and, where only the
//! wire shows the Dubbo status, the hessian.js-encoded `sayHello("world")` request vector.
//! Providers are `corridor-load serve` echo backends answering `"<name>: <arg>"`, so every
//! answer names the backend that served it, and their call logs cross-check the clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corridor_tests::manifests::{self, Destination, DestinationRule, HttpRoute, Match, ServicePort, VirtualService};
use corridor_tests::mesh::Upstream;
use corridor_tests::meta::{Call, EchoServer, Protocol, meta_router};
use corridor_tests::node::{DubboRun, dubbo_client};
use corridor_tests::python::{ThriftCall, thrift_client};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DUBBO: &str = "demo";
const DUBBO_PORT: u16 = 20880;
const THRIFT: &str = "echo";
const THRIFT_PORT: u16 = 9090;
const DEMO: &str = "org.apache.dubbo.demo.DemoService";
/// hessian.js `DemoService.sayHello("world")`, request id 1.
const SAY_HELLO: &str = include_str!("../../gateway/src/codec/dubbo/testdata/sayhello-request.hex");

// === the mesh ===

/// An endpoint of a Service: an echo backend, or an address nothing listens on.
struct Peer {
    name: String,
    addr: SocketAddr,
}

impl Peer {
    fn of(server: &EchoServer) -> Peer {
        Peer { name: server.name.clone(), addr: server.addr }
    }
}

impl Upstream for Peer {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Service `name` on `port` served by `peers` (each with its `version` label), and a
/// DestinationRule with a subset per version.
fn service(mesh: &Mesh, name: &str, port: ServicePort, peers: &[(Peer, &str)]) -> Vec<Value> {
    let upstreams: Vec<(&Peer, &str)> = peers.iter().map(|(p, v)| (p, *v)).collect();
    let mut objects = mesh.service_objects(name, port, &upstreams);
    let mut rule = DestinationRule::new(name, &mesh.ns, name);
    for (_, version) in peers {
        rule = rule.subset(version, &[("version", version)]);
    }
    objects.push(rule.into());
    objects
}

fn dubbo_port() -> ServicePort {
    ServicePort::new("tcp-dubbo-demo", DUBBO_PORT)
}

fn thrift_port() -> ServicePort {
    ServicePort::new("tcp-thrift-echo", THRIFT_PORT)
}

/// Writes `objects` as `mesh.yaml`, starts the controller and a gateway, and returns the
/// gateway address of each `(service, port)`.
async fn start(mesh: &mut Mesh, objects: Vec<Value>, services: &[(&str, u16)]) -> Vec<SocketAddr> {
    mesh.write("mesh.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let mut addrs = Vec::new();
    for (name, port) in services {
        addrs.push(mesh.service_addr(name, *port).await);
    }
    addrs
}

/// The gateway's access log lines of `service`'s listener containing all of `needles`.
fn access_log(mesh: &Mesh, service: &str, port: u16, needles: &[&str]) -> Vec<String> {
    let listener = format!("listener=\"{}\"", mesh.listener_name(service, port));
    mesh.gateway_log()
        .snapshot()
        .into_iter()
        .filter(|l| l.contains(&listener) && needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Waits until `service`'s listener has logged a call with all of `needles`.
async fn wait_for_access_log(mesh: &Mesh, service: &str, port: u16, needles: &[&str]) -> String {
    eventually(PATIENCE, &format!("an access log line of {service} with {needles:?}"), || {
        let found = access_log(mesh, service, port, needles).into_iter().next();
        async move { found.ok_or_else(|| anyhow::anyhow!("none yet")) }
    })
    .await
}

/// Waits until `server` has logged at least `count` calls and returns them all.
async fn logged(server: &EchoServer, count: usize) -> Vec<Call> {
    eventually(PATIENCE, &format!("{count} calls logged by {}", server.name), || {
        let calls = server.calls();
        async move {
            anyhow::ensure!(calls.len() >= count, "{} logged", calls.len());
            Ok(calls)
        }
    })
    .await
}

// === callers ===

async fn dubbo(addr: SocketAddr, args: &[&str]) -> DubboRun {
    dubbo_client(addr, args).await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs dubbo2.js with `args` until its first call is answered (the MetaProtocol routes
/// reach the gateway after its listener) and returns that answer.
async fn dubbo_ready(addr: SocketAddr, args: &[&str]) -> String {
    eventually(PATIENCE, "a dubbo2.js call answered through the gateway", || async move {
        let run = dubbo_client(addr, args).await?;
        let value = run.calls.first().and_then(|c| c.value()).map(String::from);
        value.ok_or_else(|| anyhow::anyhow!("no answer yet: {:?}", run.calls))
    })
    .await
}

/// Asserts every call of `run` was answered by `backend` with its own argument.
fn assert_served_by(run: &DubboRun, backend: &str, what: &str) {
    assert!(!run.calls.is_empty(), "{what}: no calls");
    for call in &run.calls {
        assert_eq!(call.value(), Some(format!("{backend}: {}", call.arg()).as_str()), "{what}: {call:?}");
    }
}

async fn thrift(addr: SocketAddr, args: &[&str]) -> Vec<ThriftCall> {
    thrift_client(addr, args).await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Calls `method(hi)` until it is answered and returns the answer.
async fn thrift_ready(addr: SocketAddr, method: &str) -> String {
    let step = format!("{method}=hi");
    eventually(PATIENCE, "a Thrift call answered through the gateway", || {
        let step = step.clone();
        async move {
            let calls = thrift_client(addr, &["--call", &step]).await?;
            let value = calls.first().and_then(ThriftCall::value).map(String::from);
            value.ok_or_else(|| anyhow::anyhow!("no answer yet: {calls:?}"))
        }
    })
    .await
}

/// Sends the raw `sayHello` request with its argument `world` replaced by `arg` (five
/// bytes too) on a new connection, and returns the answer's Dubbo status and body (as
/// text), or an error if none came within `patience`.
async fn raw_say_hello(addr: SocketAddr, arg: &str, patience: Duration) -> anyhow::Result<(u8, String)> {
    let text = SAY_HELLO.trim();
    let mut request: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(arg.len() == 5, "{arg:?} is not five bytes long");
    let at = request.windows(5).position(|w| w == b"world").ok_or_else(|| anyhow::anyhow!("no argument in the vector"))?;
    request[at..at + 5].copy_from_slice(arg.as_bytes());
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&request).await?;
    let mut header = [0u8; 16];
    tokio::time::timeout(patience, s.read_exact(&mut header)).await??;
    anyhow::ensure!(header[..2] == [0xda, 0xbb], "not a Dubbo answer: {header:02x?}");
    let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await?;
    Ok((header[3], String::from_utf8_lossy(&body).into_owned()))
}

/// A Dubbo provider answering each call with the status its argument asks for
/// (`st<NNN>`, else 20), recording the statuses asked for in arrival order.
async fn status_provider(addr: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let bound = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut header = [0u8; 16];
                while s.read_exact(&mut header).await.is_ok() {
                    let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
                    let mut body = vec![0u8; len as usize];
                    if s.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let status = body
                        .windows(5)
                        .find(|w| w.starts_with(b"st"))
                        .and_then(|w| std::str::from_utf8(&w[2..]).ok()?.parse::<u8>().ok())
                        .unwrap_or(20);
                    record.lock().unwrap_or_else(|e| e.into_inner()).push(status);
                    let text = format!("status {status}");
                    // OK: RESPONSE_VALUE (Hessian2 int 1) and a string; else the message.
                    let mut answer = if status == 20 { vec![0x91] } else { vec![] };
                    answer.push(text.len() as u8);
                    answer.extend_from_slice(text.as_bytes());
                    let mut reply = vec![0xda, 0xbb, 0x02, status];
                    reply.extend_from_slice(&header[4..12]);
                    reply.extend_from_slice(&(answer.len() as u32).to_be_bytes());
                    reply.extend_from_slice(&answer);
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (bound, asked)
}

// === tests ===

#[tokio::test]
async fn a_virtual_service_routes_dubbo_on_method_and_group_until_a_meta_router_takes_over() {
    let mut mesh = Mesh::new("policy-vs");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let vs = VirtualService::new(DUBBO, &mesh.ns)
        .host(DUBBO)
        .http(
            HttpRoute::new()
                .name("canary")
                .matching(Match::new().method("sayHello").header_exact("group", "canary"))
                .to(Destination::new(DUBBO).subset("v2")),
        )
        .http(HttpRoute::new().name("rest").to(Destination::new(DUBBO).subset("v1")));
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&servers[0]), "v1"), (Peer::of(&servers[1]), "v2")]);
    objects.push(vs.into());
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    let batch = ["--count", "20", "--concurrency", "4"];
    let with = |extra: &[&'static str]| [extra, &batch[..]].concat();
    // The method and the group attribute both match: v2.
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--prefix", "c-"])).await, "p2", "canary sayHello");
    // Either alone is "the rest": v1.
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--method", "sayBye", "--prefix", "b-"])).await, "p1", "canary sayBye");
    assert_served_by(&dubbo(addr, &with(&["--group", "canaryx", "--prefix", "x-"])).await, "p1", "another group");
    assert_served_by(&dubbo(addr, &with(&["--prefix", "n-"])).await, "p1", "no group");

    // v2 saw only canary sayHello calls, with the attachments dubbo2.js sent.
    let v2 = logged(&servers[1], 20).await;
    assert!(v2.iter().all(|c| c.field("method") == "sayHello" && c.attributes.get("group").map(String::as_str) == Some("canary")), "{v2:?}");
    let canary_route = format!("route=\"{}/{DUBBO}/canary\"", mesh.ns);
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &[&canary_route, "code=200"]).await;

    // A MetaRouter for the same host wins over the VirtualService.
    let router = meta_router(&mesh.ns, DUBBO, json!([{"name": "all-to-v2", "route": [{"destination": {"host": DUBBO, "subset": "v2"}}]}]));
    mesh.write("router.yaml", &manifests::yaml([router]));
    eventually(PATIENCE, "plain calls routed by the MetaRouter", || async move {
        let run = dubbo_client(addr, &["--arg", "switch"]).await?;
        let value = run.calls.first().and_then(|c| c.value());
        anyhow::ensure!(value == Some("p2: switch"), "{:?}", run.calls);
        Ok(())
    })
    .await;
    assert_served_by(&dubbo(addr, &with(&["--prefix", "m-"])).await, "p2", "no group, MetaRouter");
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--method", "sayBye", "--prefix", "mb-"])).await, "p2", "canary sayBye, MetaRouter");
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["route=\"all-to-v2\"", "code=200"]).await;
}

#[tokio::test]
async fn calls_to_a_dead_endpoint_are_retried_on_a_live_one_by_default() {
    const CALLS: usize = 50;
    let mut mesh = Mesh::new("policy-dead");
    let live = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &[]).await.remove(0);
    // Same port, another address: connecting there is refused.
    let dead = Peer { name: "dead".into(), addr: mesh.upstream_addr(live.addr.port()) };
    let objects = service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&live), "v1"), (dead, "v1")]);
    let addr = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT)]).await[0];

    assert_eq!(thrift_ready(addr, "echo").await, "t1: hi");
    let calls = thrift(addr, &["--call", "echo=x", "--repeat", &CALLS.to_string()]).await;
    assert_eq!(calls.len(), CALLS);
    for c in &calls {
        assert_eq!(c.value(), Some("t1: x"), "{c:?}");
    }

    // The dead endpoint was tried (the picks are random) and every such try retried.
    let cluster = format!("outbound|{THRIFT_PORT}||{THRIFT}.{}.svc.cluster.local", mesh.ns);
    mesh.wait_for_metric("corridor_upstream_rq_retry_total", &[("cluster", &cluster)], 1.0).await;
    // The access log shows each call answered by the live endpoint, none failing.
    let upstream = format!("upstream=\"{}\"", live.addr);
    eventually(PATIENCE, "the 50 calls in the access log", || {
        let answered = access_log(&mesh, THRIFT, THRIFT_PORT, &["code=200"]);
        async move {
            anyhow::ensure!(answered.len() > CALLS, "{} lines", answered.len());
            Ok(())
        }
    })
    .await;
    let answered = access_log(&mesh, THRIFT, THRIFT_PORT, &["code=200"]);
    assert!(answered.iter().all(|l| l.contains(&upstream)), "{answered:#?}");
    let failed = access_log(&mesh, THRIFT, THRIFT_PORT, &["flags=UF"]);
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A VirtualService sending every `demo` call to the service with `retries`.
fn retrying(ns: &str, attempts: u32) -> Value {
    VirtualService::new(DUBBO, ns)
        .host(DUBBO)
        .http(HttpRoute::new().name("all").to(Destination::new(DUBBO)).retries(attempts, "5xx", None))
        .into()
}

#[tokio::test]
async fn a_virtual_service_retries_5xx_answers_on_another_endpoint() {
    const CALLS: &str = "30";
    let mut mesh = Mesh::new("policy-5xx");
    let good = EchoServer::start(Protocol::Dubbo, "p1", mesh.upstream_addr(0), &[]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let bad_addr = mesh.upstream_addr(good.addr.port());
    let bad = EchoServer::start(Protocol::Dubbo, "p2", bad_addr, &["--error-rate", "1.0"]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&good), "v1"), (Peer::of(&bad), "v2")]);
    mesh.write("vs.yaml", &manifests::yaml([retrying(&mesh.ns, 2)]));
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    // At most 3 in flight: the cluster admits 3 concurrent retries (Envoy's max_retries).
    let run = dubbo(addr, &["--prefix", "r-", "--count", CALLS, "--concurrency", "3"]).await;
    assert_served_by(&run, "p1", "attempts: 2");
    // The erroring backend got (and failed) some of them first.
    let failed_first = logged(&bad, 1).await;
    assert!(failed_first.iter().all(|c| c.field("method") == "sayHello"), "{failed_first:?}");
    let errors = access_log(&mesh, DUBBO, DUBBO_PORT, &["code=500"]);
    assert!(errors.is_empty(), "answers that reached the caller as errors: {errors:#?}");

    // Without retries, the injected errors reach the caller.
    mesh.write("vs.yaml", &manifests::yaml([retrying(&mesh.ns, 0)]));
    let run = eventually(PATIENCE, "an injected error passed on", || async move {
        let run = dubbo_client(addr, &["--prefix", "z-", "--count", "20", "--concurrency", "3"]).await?;
        anyhow::ensure!(run.calls.iter().any(|c| c.value().is_none()), "all answered");
        Ok(run)
    })
    .await;
    for call in run.calls.iter().filter(|c| c.value().is_none()) {
        assert_eq!(call.error_type(), Some("DubboDecodeError"), "{call:?}");
        assert!(call.error_message().contains("injected error"), "{call:?}");
    }
    // Status 70 is the HTTP-equivalent 500.
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["code=500", &format!("upstream=\"{bad_addr}\"")]).await;
}

#[tokio::test]
async fn a_virtual_service_timeout_answers_in_each_protocols_own_timeout_error() {
    let mut mesh = Mesh::new("policy-timeout");
    let slow = ["--delay", "5s"];
    let p1 = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &slow).await.remove(0);
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &slow).await.remove(0);
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&p1), "v1")]);
    objects.extend(service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]));
    for name in [DUBBO, THRIFT] {
        let route = HttpRoute::new().name("short").to(Destination::new(name)).timeout("500ms");
        objects.push(VirtualService::new(name, &mesh.ns).host(name).http(route).into());
    }
    let addrs = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)]).await;

    // Answered well before the provider's 5 s delay ends, with status 31 (server timeout);
    // 60 (no route) comes until the routes arrive.
    let (status, body) = eventually(PATIENCE, "a Dubbo answer other than no-route", || async {
        let (status, body) = raw_say_hello(addrs[0], "world", Duration::from_secs(4)).await?;
        anyhow::ensure!(status != 60, "{status}: {body}");
        Ok((status, body))
    })
    .await;
    assert_eq!(status, 31, "{body}");
    assert!(body.contains("within 500ms"), "{body}");
    let run = dubbo(addrs[0], &["--arg", "slow"]).await;
    let outcome = &run.calls[0];
    assert_eq!((outcome.value(), outcome.error_type()), (None, Some("DubboDecodeError")), "{outcome:?}");
    assert!(outcome.error_message().contains("within 500ms"), "{outcome:?}");
    // Both calls reached the provider: the gateway gave up on a call in progress.
    logged(&p1, 2).await;

    let calls = eventually(PATIENCE, "a Thrift answer other than no-route", || async {
        let calls = thrift_client(addrs[1], &["--call", "echo=slow", "--timeout", "4"]).await?;
        anyhow::ensure!(calls[0].error_kind() != Some(1), "{calls:?}");
        Ok(calls)
    })
    .await;
    let c = &calls[0];
    assert_eq!((c.value(), c.error_type(), c.error_kind()), (None, "TApplicationException", Some(6)), "INTERNAL_ERROR: {c:?}");
    assert!(c.error_message().contains("within 500ms"), "{c:?}");
    assert_eq!(c.seqids().0, c.seqids().1, "{c:?}");

    for (service, port) in [(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)] {
        wait_for_access_log(&mesh, service, port, &["code=504", "flags=UT"]).await;
    }
}

/// A MetaRouter sending every call to `service`, with a local rate limit whose default
/// bucket holds `max` tokens (refilled only after an hour, so never during the test), a
/// bucket of one for `shout`, and a large one for the `warmup` calls that wait for the
/// routes.
fn limited(ns: &str, service: &str, max: u32) -> Value {
    let bucket = |max: u32| json!({"maxTokens": max, "tokensPerFill": max, "fillInterval": "3600s"});
    let mut router = meta_router(ns, service, json!([{"name": "all", "route": [{"destination": {"host": service}}]}]));
    router["spec"]["localRateLimit"] = json!({
        "tokenBucket": bucket(max),
        "conditions": [
            {"match": {"attributes": {"method": {"exact": "shout"}}}, "tokenBucket": bucket(1)},
            {"match": {"attributes": {"method": {"exact": "warmup"}}}, "tokenBucket": bucket(1000)},
        ]
    });
    router
}

#[tokio::test]
async fn a_meta_router_local_rate_limit_refuses_calls_beyond_its_buckets() {
    let mut mesh = Mesh::new("policy-limit");
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &[]).await.remove(0);
    let p1 = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &[]).await.remove(0);
    let mut objects = service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]);
    objects.extend(service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&p1), "v1")]));
    objects.push(limited(&mesh.ns, THRIFT, 5));
    objects.push(limited(&mesh.ns, DUBBO, 2));
    let addrs = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT), (DUBBO, DUBBO_PORT)]).await;

    assert_eq!(thrift_ready(addrs[0], "warmup").await, "t1: hi");
    // On one connection: two shout calls against their bucket of one, then 20 echo calls
    // against the default bucket of five.
    let mut args = vec!["--call".to_string(), "shout=a".into(), "--call".into(), "shout=b".into()];
    for i in 0..20 {
        args.extend(["--call".to_string(), format!("echo=e{i}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let calls = thrift(addrs[0], &args).await;
    let answered: Vec<bool> = calls.iter().map(|c| c.value().is_some()).collect();
    let mut expected = vec![true, false];
    expected.extend([true; 5]);
    expected.extend([false; 15]);
    assert_eq!(answered, expected, "{calls:#?}");
    for c in calls.iter().filter(|c| c.value().is_none()) {
        assert_eq!((c.error_type(), c.error_kind()), ("TApplicationException", Some(6)), "{c:?}");
        assert!(c.error_message().contains("rate limited"), "{c:?}");
        assert_eq!(c.seqids().0, c.seqids().1, "{c:?}");
    }
    let methods: Vec<String> = logged(&t1, 7).await.iter().map(|c| c.field("method").to_string()).collect();
    assert_eq!(methods.iter().filter(|m| *m != "warmup").count(), 6, "only the admitted calls reach the backend: {methods:?}");
    wait_for_access_log(&mesh, THRIFT, THRIFT_PORT, &["method=\"echo\"", "code=429", "flags=UO"]).await;

    // Dubbo: the third sayHello finds the default bucket of two empty; status 100.
    dubbo_ready(addrs[1], &["--method", "warmup"]).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = raw_say_hello(addrs[1], "world", PATIENCE).await.unwrap_or_else(|e| panic!("{e:#}"));
        statuses.push((status, body));
    }
    let codes: Vec<u8> = statuses.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, [20, 20, 100], "{statuses:?}");
    assert!(statuses[2].1.contains("rate limited"), "{statuses:?}");
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["method=\"sayHello\"", "code=429", "flags=UO"]).await;
}

#[tokio::test]
async fn a_mirror_gets_a_copy_of_every_call_and_its_death_never_reaches_the_caller() {
    let mut mesh = Mesh::new("policy-mirror");
    let mut servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let route = json!({
        "name": "primary",
        "route": [{"destination": {"host": DUBBO, "subset": "v1"}}],
        "mirror": {"host": DUBBO, "subset": "v2"},
        "mirrorPercentage": {"value": 100}
    });
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&servers[0]), "v1"), (Peer::of(&servers[1]), "v2")]);
    objects.push(meta_router(&mesh.ns, DUBBO, json!([route])));
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    // The warm-up's copy, before counting from here.
    let before = logged(&servers[1], 1).await.len();
    let primary_before = logged(&servers[0], 1).await.len();
    let run = dubbo(addr, &["--prefix", "m-", "--count", "20", "--concurrency", "4"]).await;
    assert_served_by(&run, "p1", "mirrored calls");
    let copies = logged(&servers[1], before + 20).await;
    assert_eq!(copies.len() - before, 20, "{copies:?}");
    assert!(copies[before..].iter().all(|c| (c.field("interface"), c.field("method")) == (DEMO, "sayHello")), "{copies:?}");
    assert_eq!(logged(&servers[0], primary_before + 20).await.len(), primary_before + 20);

    // The mirror dies: the callers never notice.
    servers[1].process.kill();
    let run = dubbo(addr, &["--prefix", "k-", "--count", "20", "--concurrency", "4"]).await;
    assert_served_by(&run, "p1", "the mirror dead");
    // Every call so far (the warm-up, 20, 20) was answered by the primary.
    let lines = eventually(PATIENCE, "41 calls in the access log", || {
        let lines = access_log(&mesh, DUBBO, DUBBO_PORT, &["route=\"primary\""]);
        async move {
            anyhow::ensure!(lines.len() >= 41, "{} lines", lines.len());
            Ok(lines)
        }
    })
    .await;
    assert!(lines.iter().all(|l| l.contains("code=200")), "{lines:#?}");
}

#[tokio::test]
async fn dubbo_statuses_count_as_their_http_equivalents_and_503s_are_retried_by_default() {
    let mut mesh = Mesh::new("policy-status");
    let (provider, asked) = status_provider(mesh.upstream_addr(0)).await;
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &["--error-rate", "1.0"]).await.remove(0);
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer { name: "raw".into(), addr: provider }, "v1")]);
    objects.extend(service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]));
    // No MetaRouter, no VirtualService: the default route and its default retries.
    let addrs = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)]).await;
    eventually(PATIENCE, "a Dubbo call answered by the provider", || async {
        let (status, body) = raw_say_hello(addrs[0], "st020", PATIENCE).await?;
        anyhow::ensure!(status == 20, "{status}: {body}");
        Ok(())
    })
    .await;
    // The warm-up's lines are all in once its answer's is: the cases count lines from here.
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["code=200"]).await;

    // (status asked for, HTTP equivalent, flags, tries); 60 and 100 mean the service never
    // ran, as 503 does, and are tried three times (two retries) on the one endpoint.
    let cases = [
        (30, 504, "-", 1),
        (31, 504, "-", 1),
        (40, 400, "-", 1),
        (90, 400, "-", 1),
        (50, 502, "-", 1),
        (70, 500, "-", 1),
        (80, 500, "-", 1),
        (60, 503, "URX", 3),
        (100, 503, "URX", 3),
    ];
    for (status, code, flags, tries) in cases {
        let logged_before = access_log(&mesh, DUBBO, DUBBO_PORT, &[]).len();
        let asked_before = asked.lock().unwrap_or_else(|e| e.into_inner()).len();
        let (got, body) = raw_say_hello(addrs[0], &format!("st{status:03}"), PATIENCE).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((got, body.contains(&format!("status {status}"))), (status, true), "the provider's answer passed on: {body}");
        let line = eventually(PATIENCE, "the call's access log line", || {
            let lines = access_log(&mesh, DUBBO, DUBBO_PORT, &[]);
            async move { lines.get(logged_before).cloned().ok_or_else(|| anyhow::anyhow!("not yet")) }
        })
        .await;
        assert!(line.contains(&format!("code={code} ")) && line.contains(&format!("flags={flags} ")), "status {status}: {line}");
        let tried = asked.lock().unwrap_or_else(|e| e.into_inner())[asked_before..].to_vec();
        assert_eq!(tried, vec![status; tries], "status {status}");
    }

    // A Thrift EXCEPTION is a 500: passed on, not retried by default.
    let calls = eventually(PATIENCE, "a Thrift call answered by the backend", || async {
        let calls = thrift_client(addrs[1], &["--call", "echo=x"]).await?;
        anyhow::ensure!(calls[0].error_message().contains("injected error"), "{calls:?}");
        Ok(calls)
    })
    .await;
    assert_eq!(calls[0].error_type(), "TApplicationException", "{calls:?}");
    wait_for_access_log(&mesh, THRIFT, THRIFT_PORT, &["code=500", "flags=-"]).await;
    assert_eq!(t1.calls().len(), 1, "tried once: {:?}", t1.calls());
}

#[tokio::test]
async fn a_per_try_timeout_moves_a_call_from_a_slow_endpoint_to_another() {
    let mut mesh = Mesh::new("policy-pertry");
    let fast = EchoServer::start(Protocol::Dubbo, "p1", mesh.upstream_addr(0), &[]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let slow_addr = mesh.upstream_addr(fast.addr.port());
    let slow = EchoServer::start(Protocol::Dubbo, "p2", slow_addr, &["--delay", "5s"]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&fast), "v1"), (Peer::of(&slow), "v2")]);
    let route = HttpRoute::new().name("all").to(Destination::new(DUBBO)).retries(2, "connect-failure,reset", Some("300ms"));
    objects.push(VirtualService::new(DUBBO, &mesh.ns).host(DUBBO).http(route).into());
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    dubbo_ready(addr, &["--arg", "warm"]).await;
    // Without the per-try timeout, the calls on p2 would be answered by p2 after 5 s.
    let run = dubbo(addr, &["--prefix", "s-", "--count", "20", "--concurrency", "3"]).await;
    assert_served_by(&run, "p1", "perTryTimeout: 300ms");
    logged(&slow, 1).await;
    let timeouts = access_log(&mesh, DUBBO, DUBBO_PORT, &["code=504"]);
    assert!(timeouts.is_empty(), "{timeouts:#?}");
}

#[tokio::test]
async fn a_virtual_service_routes_thrift_on_a_theader_header_and_splits_the_rest_by_weight() {
    const CALLS: usize = 500;
    let mut mesh = Mesh::new("policy-theader");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["a", "b", "c"], &[]).await;
    let peers: Vec<(Peer, &str)> = servers.iter().zip(["v1", "v2", "v3"]).map(|(s, v)| (Peer::of(s), v)).collect();
    let mut objects = service(&mesh, THRIFT, thrift_port(), &peers);
    let vs = VirtualService::new(THRIFT, &mesh.ns)
        .host(THRIFT)
        .http(HttpRoute::new().name("gold").matching(Match::new().header_exact("x-tenant", "gold")).to(Destination::new(THRIFT).subset("v3")))
        .http(
            HttpRoute::new()
                .name("split")
                .to(Destination::new(THRIFT).subset("v1").weight(80))
                .to(Destination::new(THRIFT).subset("v2").weight(20)),
        );
    objects.push(vs.into());
    let addr = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT)]).await[0];
    thrift_ready(addr, "echo").await;

    // THeader calls carrying the header, `repeat` times on one connection.
    let tenant = |tenant: &'static str, arg: &'static str| async move {
        let args = ["--transport", "header", "--header", &format!("x-tenant={tenant}"), "--call", &format!("echo={arg}"), "--repeat", "10"];
        thrift(addr, &args).await
    };
    let gold = tenant("gold", "g").await;
    assert!(gold.iter().all(|c| c.value() == Some("c: g")), "{gold:?}");
    let silver = tenant("silver", "s").await;
    assert!(silver.iter().all(|c| matches!(c.value(), Some("a: s" | "b: s"))), "{silver:?}");

    let calls = thrift(addr, &["--call", "echo=w", "--repeat", &CALLS.to_string()]).await;
    let served = |name: &str| calls.iter().filter(|c| c.value() == Some(&format!("{name}: w"))).count();
    let (a, b) = (served("a"), served("b"));
    assert_eq!(a + b, CALLS, "{calls:?}");
    let share = a as f64 / CALLS as f64;
    assert!((0.7..=0.9).contains(&share), "v1 served {a}, v2 {b}");
    // c saw only the gold calls, with the caller's header.
    let c = logged(&servers[2], 10).await;
    assert!(c.iter().all(|c| c.attributes.get("x-tenant").map(String::as_str) == Some("gold")), "{c:?}");
}
