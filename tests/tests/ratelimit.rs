//! Rate limits through the real controller and gateway, for HTTP, gRPC, Dubbo and Thrift
//! alike, configured by MetaRouters (on HTTP and gRPC hosts a Corridor extension that
//! carries rate limits only):
//!
//! - a local limit of 100/s holds an open-loop load of 200/s to 100/s ± 5 %, and every
//!   refused call gets its protocol's own refusal (429, RESOURCE_EXHAUSTED, Dubbo 100, a
//!   Thrift exception); the first matching condition picks the bucket;
//! - a global limit asks the test rate limit service (`corridor_tests::rls`):
//!   OVER_LIMIT refuses the same way, hundreds of calls share one connection to it, and a
//!   dead service (hung, or refusing connections) costs at most the 50 ms deadline: calls
//!   pass when the limit fails open and are refused (500, INTERNAL, Dubbo 80, Thrift
//!   exception) when it fails closed.
//!
//! Clients and echo backends are `corridor-load` (its open loop and its JSON summary).

use std::net::SocketAddr;
use std::time::Duration;

use corridor_tests::bin::{Process, binary};
use corridor_tests::manifests::{self, ServicePort};
use corridor_tests::mesh::Upstream;
use corridor_tests::rls::{RateLimitServer, Rule};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

/// Longest one load run may take: its seconds, a start, the drain at the end.
const RUN_PATIENCE: Duration = Duration::from_secs(60);
/// The global limit's deadline in these tests.
const RLS_TIMEOUT_MS: f64 = 50.0;
/// Latency a dead rate limit service may add beyond its deadline, at the 99th
/// percentile: the loaded test machine's scheduling and the echo call itself.
const SLACK_MS: f64 = 250.0;
/// No call may take this long: a call waiting for a hung service (rather than its
/// deadline) would take the client's whole 5 s timeout.
const NEVER_MS: f64 = 1000.0;

// === the mesh ===

/// The four protocols, as `corridor-load` names them, with the service and port each
/// runs on and the status names its answers carry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    Http,
    Grpc,
    Dubbo,
    Thrift,
}

const ALL: [Proto; 4] = [Proto::Http, Proto::Grpc, Proto::Dubbo, Proto::Thrift];

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Grpc => "grpc",
            Proto::Dubbo => "dubbo",
            Proto::Thrift => "thrift",
        }
    }

    /// The service port (its name tells the controller the protocol).
    fn port(self) -> ServicePort {
        match self {
            Proto::Http => ServicePort::new("http-web", 8080),
            Proto::Grpc => ServicePort::new("grpc-api", 9000),
            Proto::Dubbo => ServicePort::new("tcp-dubbo-demo", 20880),
            Proto::Thrift => ServicePort::new("tcp-thrift-echo", 9090),
        }
    }

    fn port_number(self) -> u16 {
        match self {
            Proto::Http => 8080,
            Proto::Grpc => 9000,
            Proto::Dubbo => 20880,
            Proto::Thrift => 9090,
        }
    }

    /// The status of an answered call.
    fn ok(self) -> &'static str {
        match self {
            Proto::Http => "200",
            Proto::Grpc => "OK",
            Proto::Dubbo => "20",
            Proto::Thrift => "reply",
        }
    }

    /// The status of a rate limited call.
    fn limited(self) -> &'static str {
        match self {
            Proto::Http => "429",
            Proto::Grpc => "RESOURCE_EXHAUSTED",
            Proto::Dubbo => "100",
            Proto::Thrift => "exception",
        }
    }

    /// The status of a call refused because the rate limit service failed.
    fn service_error(self) -> &'static str {
        match self {
            Proto::Http => "500",
            Proto::Grpc => "INTERNAL",
            Proto::Dubbo => "80",
            Proto::Thrift => "exception",
        }
    }

    /// `corridor-load <proto> --target <addr>` and the call's own arguments.
    fn client_args(self, addr: SocketAddr) -> Vec<String> {
        let mut args = vec![self.as_str().to_string(), "--target".into(), addr.to_string()];
        let extra: &[&str] = match self {
            Proto::Http => &["--path", "/limited"],
            Proto::Grpc => &["--method", "/echo.Echo/Say"],
            Proto::Dubbo => &["--interface", "org.apache.dubbo.demo.DemoService", "--method", "sayHello"],
            Proto::Thrift => &["--method", "echo"],
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A `corridor-load serve` echo backend, or the rate limit service.
struct Peer {
    name: String,
    addr: SocketAddr,
    _process: Option<Process>,
}

impl Upstream for Peer {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn echo(mesh: &mut Mesh, proto: Proto) -> Peer {
    let name = format!("{}-echo", proto.as_str());
    let mut cmd = std::process::Command::new(binary("corridor-load"));
    cmd.args(["serve", proto.as_str(), "--name", &name])
        .args(["--listen", &mesh.upstream_addr(0).to_string()]);
    let mut process = Process::spawn(&name, cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = process
        .wait_bound("corridor-load serve bound", proto.as_str())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    Peer { name, addr, _process: Some(process) }
}

fn service_name(proto: Proto) -> String {
    format!("{}-svc", proto.as_str())
}

/// A MetaRouter on `proto`'s service carrying `limits` (its `localRateLimit` and/or
/// `globalRateLimit`) and no routes.
fn router(mesh: &Mesh, proto: Proto, limits: Value) -> Value {
    let service = service_name(proto);
    let mut spec = json!({"hosts": [format!("{service}.{}.svc.cluster.local", mesh.ns)]});
    for (k, v) in limits.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "metaprotocol.aeraki.io/v1alpha1",
        "kind": "MetaRouter",
        "metadata": {"name": service, "namespace": mesh.ns},
        "spec": spec
    })
}

/// Starts an echo backend per protocol, writes their services and `limits(proto)`'s
/// MetaRouters, starts the controller and a gateway, and returns the backends and each
/// protocol's gateway address.
async fn start(mesh: &mut Mesh, limits: impl Fn(Proto) -> Value) -> (Vec<Peer>, Vec<SocketAddr>) {
    let mut peers = Vec::new();
    let mut objects = Vec::new();
    for proto in ALL {
        let peer = echo(mesh, proto).await;
        objects.extend(mesh.service_objects(&service_name(proto), proto.port(), &[(&peer, "v1")]));
        objects.push(router(mesh, proto, limits(proto)));
        peers.push(peer);
    }
    mesh.write("mesh.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let mut addrs = Vec::new();
    for proto in ALL {
        addrs.push(mesh.service_addr(&service_name(proto), proto.port_number()).await);
    }
    (peers, addrs)
}

// === the client ===

/// Runs `corridor-load <proto> ... <flags> --json --progress never` and returns its
/// summary.
async fn load(proto: Proto, addr: SocketAddr, flags: &str) -> Value {
    let mut args = proto.client_args(addr);
    args.extend(flags.split_whitespace().map(str::to_string));
    let run = tokio::process::Command::new(binary("corridor-load"))
        .args(&args)
        .args(["--json", "--progress", "never"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("corridor-load {args:?} ran past {RUN_PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("corridor-load {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("corridor-load {args:?}: {e}: not JSON: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn status(s: &Value, name: &str) -> u64 {
    s["statuses"][name].as_u64().unwrap_or(0)
}

/// Panics unless every call of `proto` was answered (no connect, timeout or protocol
/// error) with one of `statuses`.
fn assert_only(proto: Proto, s: &Value, statuses: &[&str], what: &str) {
    let answered: u64 = s["statuses"].as_object().into_iter().flatten().map(|(_, n)| n.as_u64().unwrap_or(0)).sum();
    assert!(answered > 0, "{what}: no call answered: {s}");
    for kind in ["connect", "timeout", "protocol"] {
        assert_eq!(s["errors"][kind].as_u64(), Some(0), "{what}: {kind} errors: {s}");
    }
    let expected: u64 = statuses.iter().map(|n| status(s, n)).sum();
    assert_eq!(expected, answered, "{what}: statuses other than {statuses:?} ({}): {s}", proto.as_str());
}

/// Calls of `proto` that passed the limiter.
fn passed(proto: Proto, s: &Value) -> u64 {
    status(s, proto.ok())
}

/// Waits until `proto`'s calls at `addr` get `wanted` (a push took effect).
async fn wait_for_status(proto: Proto, addr: SocketAddr, wanted: &'static str) {
    eventually(PATIENCE, &format!("{} calls answered {wanted}", proto.as_str()), || async move {
        let s = load(proto, addr, "--rate 20 --duration 500ms --connections 1").await;
        anyhow::ensure!(status(&s, wanted) > 0, "{}", s["statuses"]);
        Ok(())
    })
    .await;
}

// === local ===

/// 100 tokens a second, one every 10 ms (whole-second refills would make a 10 s window
/// hold 10 or 11 refills, ±10 %), in a bucket of 100.
fn hundred_per_second() -> Value {
    json!({"maxTokens": 100, "tokensPerFill": 1, "fillInterval": "10ms"})
}

#[tokio::test]
async fn a_local_limit_of_100_per_second_passes_100_per_second_of_200_in_every_protocol() {
    let mut mesh = Mesh::new("rl-local");
    let limit = |_| json!({"localRateLimit": {"tokenBucket": hundred_per_second()}});
    let (_peers, addrs) = start(&mut mesh, limit).await;
    for (proto, addr) in ALL.into_iter().zip(addrs) {
        // The warm-up spends the bucket's first 100 tokens; then 10 s are counted.
        let s = load(proto, addr, "--rate 200 --connections 8 --warmup 2s --duration 10s").await;
        assert_only(proto, &s, &[proto.ok(), proto.limited()], proto.as_str());
        let passed = passed(proto, &s) as f64 / 10.0;
        assert!((95.0..=105.0).contains(&passed), "{}: {passed}/s passed, not 100/s ± 5 %: {s}", proto.as_str());
        let refused = status(&s, proto.limited());
        assert!(refused >= 900, "{}: {refused} refused of about 2,000: {s}", proto.as_str());
    }
}

#[tokio::test]
async fn the_first_matching_condition_picks_the_bucket() {
    let mut mesh = Mesh::new("rl-cond");
    let bucket = |max: u32| json!({"maxTokens": max, "tokensPerFill": max, "fillInterval": "3600s"});
    // HTTP: a request to /limited with no header matches the first condition only. The
    // second condition matches it too, with a large bucket: were it picked, every call
    // would pass. Dubbo/Thrift: the same on `method`.
    let limits = |proto: Proto| {
        let (first, second) = match proto {
            Proto::Http => (json!({":path": {"prefix": "/limited"}}), json!({":method": {"exact": "GET"}})),
            Proto::Grpc => (json!({":path": {"prefix": "/echo.Echo/"}}), json!({":method": {"exact": "POST"}})),
            Proto::Dubbo => (json!({"method": {"exact": "sayHello"}}), json!({"interface": {"prefix": "org."}})),
            Proto::Thrift => (json!({"method": {"exact": "echo"}}), json!({"method": {"prefix": "e"}})),
        };
        json!({"localRateLimit": {
            "tokenBucket": bucket(1000),
            "conditions": [
                {"match": {"attributes": first}, "tokenBucket": bucket(5)},
                {"match": {"attributes": second}, "tokenBucket": bucket(1000)},
            ]
        }})
    };
    let (_peers, addrs) = start(&mut mesh, limits).await;
    for (proto, addr) in ALL.into_iter().zip(addrs) {
        let s = load(proto, addr, "--rate 20 --connections 1 --duration 2s").await;
        assert_only(proto, &s, &[proto.ok(), proto.limited()], proto.as_str());
        assert_eq!(passed(proto, &s), 5, "{}: the first condition's 5 tokens: {s}", proto.as_str());
    }
}

// === global ===

/// Writes the rate limit service as a mesh Service (a gRPC port) at `addr`.
fn write_rls(mesh: &Mesh, addr: SocketAddr) {
    let peer = Peer { name: "rls".into(), addr, _process: None };
    let objects = mesh.service_objects("rls", ServicePort::new("grpc-rls", 8081), &[(&peer, "v1")]);
    mesh.write("rls.yaml", &manifests::yaml(objects));
}

/// A global limit through `rls`, failing closed for Dubbo and Thrift and open for HTTP
/// and gRPC.
fn global(ns: &str, proto: Proto) -> Value {
    json!({"globalRateLimit": {
        "domain": "corridor-test",
        "rateLimitService": format!("outbound|8081||rls.{ns}.svc.cluster.local"),
        "requestTimeout": format!("{RLS_TIMEOUT_MS}ms"),
        "denyOnFail": fails_closed(proto),
        "descriptors": [{"property": descriptor_attribute(proto), "descriptorKey": "what"}],
    }})
}

fn fails_closed(proto: Proto) -> bool {
    matches!(proto, Proto::Dubbo | Proto::Thrift)
}

/// An attribute every call of `proto` carries.
fn descriptor_attribute(proto: Proto) -> &'static str {
    match proto {
        Proto::Http | Proto::Grpc => ":path",
        Proto::Dubbo | Proto::Thrift => "method",
    }
}

/// Every call passes (fail open) or is refused as a service error (fail closed), and
/// none waits much longer than the deadline.
async fn assert_dead_service_handling(addrs: &[SocketAddr], how: &str) {
    for (proto, addr) in ALL.into_iter().zip(addrs.iter().copied()) {
        // Calls wait up to the deadline: enough connections that none queues behind
        // another (HTTP/1.1 has one call in flight per connection).
        let s = load(proto, addr, "--rate 50 --connections 10 --warmup 500ms --duration 2s").await;
        let what = format!("{} with {how}", proto.as_str());
        let expected = if fails_closed(proto) { proto.service_error() } else { proto.ok() };
        assert_only(proto, &s, &[expected], &what);
        let p99 = s["latency_ms"]["p99"].as_f64().unwrap_or(f64::MAX);
        let max = s["latency_ms"]["max"].as_f64().unwrap_or(f64::MAX);
        assert!(p99 <= RLS_TIMEOUT_MS + SLACK_MS, "{what}: p99 {p99} ms: {s}");
        assert!(max < NEVER_MS, "{what}: a call took {max} ms: {s}");
    }
}

#[tokio::test]
async fn a_global_limit_asks_the_service_over_one_connection_and_survives_its_death() {
    let rls = RateLimitServer::start(Rule::OverLimit).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut mesh = Mesh::new("rl-global");
    write_rls(&mesh, rls.addr);
    let ns = mesh.ns.clone();
    let (_peers, addrs) = start(&mut mesh, |proto| global(&ns, proto)).await;

    // OVER_LIMIT: every call refused in its protocol's words. The first calls open the
    // channel to the service, which can take longer than the 50 ms deadline on a loaded
    // machine, and HTTP and gRPC fail open: wait for a refusal before counting.
    for (proto, addr) in ALL.into_iter().zip(addrs.iter().copied()) {
        wait_for_status(proto, addr, proto.limited()).await;
        let s = load(proto, addr, "--rate 50 --connections 2 --duration 1s").await;
        assert_only(proto, &s, &[proto.limited()], &format!("{} over the limit", proto.as_str()));
    }
    let seen = rls.calls();
    assert!(seen.iter().all(|c| c.domain == "corridor-test"), "{seen:?}");
    assert!(seen.iter().any(|c| c.descriptors == [[("what".to_string(), "sayHello".to_string())]]), "Dubbo's method: {seen:?}");
    assert!(seen.iter().any(|c| c.descriptors == [[("what".to_string(), "/limited".to_string())]]), "HTTP's path: {seen:?}");

    // Allowed: hundreds of calls over HTTP and Dubbo, one connection to the service.
    // (On a loaded machine an answer may miss the 50 ms deadline: Dubbo fails closed.)
    rls.set_rule(Rule::Allow);
    let before = rls.calls().len();
    for proto in [Proto::Http, Proto::Dubbo] {
        let i = ALL.iter().position(|p| *p == proto).unwrap_or(0);
        let s = load(proto, addrs[i], "--rate 200 --connections 4 --duration 1500ms").await;
        let what = format!("{} under the limit", proto.as_str());
        assert_only(proto, &s, &[proto.ok(), proto.service_error()], &what);
        assert!(status(&s, proto.ok()) >= 270, "{what}: most calls pass: {s}");
    }
    let asked = rls.calls().len() - before;
    assert!(asked >= 500, "{asked} calls asked the service");
    assert_eq!(rls.connections(), 1, "one connection for {} calls", rls.calls().len());

    // A hung service: the deadline decides.
    rls.set_rule(Rule::BlackHole);
    assert_dead_service_handling(&addrs, "a hung rate limit service").await;

    // A service refusing connections: the same. The push moves the service to a port
    // nothing listens on; a fail-closed call then stops passing.
    rls.set_rule(Rule::Allow);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    write_rls(&mesh, closed);
    wait_for_status(Proto::Dubbo, addrs[2], Proto::Dubbo.service_error()).await;
    assert_dead_service_handling(&addrs, "a rate limit service refusing connections").await;
}
