//! Telemetry for every protocol through the real controller and gateway: a mixed run of
//! HTTP, gRPC, Dubbo, Thrift, opaque TCP and Redis calls from a pod's IP leaves Istio's
//! request metrics with exact counts per protocol, each protocol's own response code
//! (HTTP status; gRPC status beside HTTP 200; Dubbo status byte; Thrift 0 or the
//! exception type), the source pod's workload labels, and `istio_tcp_*` for the
//! connection-level protocols; access log lines carry the route, upstream, duration,
//! flags and trace id; the OTLP collector gets one span per call (sampling 100 %).
//! `telemetry/trace.rs`: a caller's `traceparent` reaches the HTTP backend, the Dubbo
//! attachments and the THeader headers with the same trace id and the gateway's span as
//! the parent, and the exported spans carry the same ids.
//!
//! Clients are `corridor-load` bound to the client pod's IP (`--source`); backends are
//! `corridor-load serve` with `--error-rate` (HTTP test backend, Debian's redis-server).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use corridor_tests::bin::{Process, binary};
use corridor_tests::manifests::{self, Pod, ServicePort};
use corridor_tests::mesh::Upstream;
use corridor_tests::meta::{EchoServer, Protocol, meta_router};
use corridor_tests::otlp::Collector;
use corridor_tests::redis::{RedisOptions, RedisServer};
use corridor_tests::{Backend, Mesh, PATIENCE, eventually, metrics};
use serde_json::{Value, json};

#[path = "telemetry/trace.rs"]
mod trace;

const HTTP: (&str, u16) = ("web", 8080);
const GRPC: (&str, u16) = ("rpc", 9000);
const DUBBO: (&str, u16) = ("demo", 20880);
const THRIFT: (&str, u16) = ("echo", 9090);
const TCP: (&str, u16) = ("raw", 7000);
const REDIS: (&str, u16) = ("cache", 6379);
/// Share of calls the Dubbo and Thrift backends answer with their error.
const ERROR_RATE: &str = "0.3";
/// The gRPC backend's: the default route retries UNAVAILABLE twice, so 0.7 leaves about
/// a third of the calls failing (0.7^3), with URX.
const GRPC_ERROR_RATE: &str = "0.7";
/// Calls per second of each load run; one second each.
const RATE: &str = "60";
/// Longest one load run may take.
const RUN_PATIENCE: Duration = Duration::from_secs(60);

/// A `corridor-load serve <protocol>` backend other than Dubbo/Thrift (gRPC here).
struct Served {
    name: String,
    addr: SocketAddr,
    _process: Process,
}

impl Upstream for Served {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve(protocol: &str, name: &str, addr: SocketAddr, extra: &[&str]) -> Served {
    let mut cmd = Command::new(binary("corridor-load"));
    cmd.args(["serve", protocol, "--name", name, "--listen", &addr.to_string()]).args(extra);
    let mut process = Process::spawn(&format!("{protocol} {name}"), cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = process.wait_bound("corridor-load serve bound", protocol).await.unwrap_or_else(|e| panic!("{e:#}"));
    Served { name: name.into(), addr, _process: process }
}

/// Every service of the tests behind one gateway (sampling 100 %, exporting to
/// `collector`), and the client pod's IP.
pub struct World {
    pub mesh: Mesh,
    pub collector: Collector,
    pub client: IpAddr,
    pub addrs: BTreeMap<&'static str, SocketAddr>,
    pub web: Backend,
    pub dubbo: EchoServer,
    pub thrift: EchoServer,
    _grpc: Served,
    _raw: Backend,
    _redis: RedisServer,
}

impl World {
    pub async fn start(tag: &str) -> World {
        let mut mesh = Mesh::new(tag);
        let collector = Collector::start().await.unwrap_or_else(|e| panic!("{e:#}"));
        let error_rate = ["--error-rate", ERROR_RATE];
        let web = Backend::start("w1", mesh.upstream_addr(0)).await.unwrap_or_else(|e| panic!("{e:#}"));
        let grpc = serve("grpc", "r1", mesh.upstream_addr(0), &["--error-rate", GRPC_ERROR_RATE]).await;
        let dubbo = EchoServer::start(Protocol::Dubbo, "d1", mesh.upstream_addr(0), &error_rate).await.unwrap_or_else(|e| panic!("{e:#}"));
        let thrift = EchoServer::start(Protocol::Thrift, "t1", mesh.upstream_addr(0), &error_rate).await.unwrap_or_else(|e| panic!("{e:#}"));
        let raw = Backend::start("x1", mesh.upstream_addr(0)).await.unwrap_or_else(|e| panic!("{e:#}"));
        let redis = RedisServer::start(mesh.upstream_addr(0), RedisOptions::new()).await.unwrap_or_else(|e| panic!("{e:#}"));
        let client = mesh.upstream_addr(0).ip();

        let ns = mesh.ns.clone();
        let mut objects = Vec::new();
        objects.extend(mesh.service_objects(HTTP.0, ServicePort::new("http-web", HTTP.1), &[(&web, "v1")]));
        objects.extend(mesh.service_objects(GRPC.0, ServicePort::new("grpc-rpc", GRPC.1), &[(&grpc, "v1")]));
        objects.extend(mesh.service_objects(DUBBO.0, ServicePort::new("tcp-dubbo-demo", DUBBO.1), &[(&dubbo, "v1")]));
        objects.extend(mesh.service_objects(THRIFT.0, ServicePort::new("tcp-thrift-echo", THRIFT.1), &[(&thrift, "v1")]));
        objects.extend(mesh.service_objects(TCP.0, ServicePort::new("tcp-raw", TCP.1), &[(&raw, "v1")]));
        objects.extend(mesh.service_objects(REDIS.0, ServicePort::new("redis", REDIS.1), &[(&redis, "v1")]));
        for (service, _) in [DUBBO, THRIFT] {
            objects.push(meta_router(&ns, service, json!([{"name": "all", "route": [{"destination": {"host": service}}]}])));
        }
        // The caller: a pod without an owner is its own workload.
        objects.push(Pod::new("client", &ns).label("app", "client").label("version", "v7").ip(client).into());
        mesh.write("mesh.yaml", &manifests::yaml(objects));
        mesh.start_controller().await;
        let otlp = collector.addr.to_string();
        mesh.start_gateway_with(&["--trace-sampling", "100", "--otlp-endpoint", &otlp]).await;
        let mut addrs = BTreeMap::new();
        for (service, port) in [HTTP, GRPC, DUBBO, THRIFT, TCP, REDIS] {
            addrs.insert(service, mesh.service_addr(service, port).await);
        }
        World { mesh, collector, client, addrs, web, dubbo, thrift, _grpc: grpc, _raw: raw, _redis: redis }
    }

    pub fn fqdn(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.mesh.ns)
    }

    /// Runs `corridor-load <protocol> --target <service's gateway address> <line>` from
    /// the client pod's IP, one second at [`RATE`], and returns its JSON summary.
    pub async fn load(&self, protocol: &str, service: &str, line: &str) -> Value {
        let target = self.addrs[service].to_string();
        let source = self.client.to_string();
        let run = tokio::process::Command::new(binary("corridor-load"))
            .args([protocol, "--target", &target, "--source", &source, "--rate", RATE, "--duration", "1s", "--connections", "4"])
            .args(line.split_whitespace())
            .args(["--json", "--progress", "never"])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(RUN_PATIENCE, run).await.unwrap_or_else(|_| panic!("{protocol} load ran too long")).unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
    }

    pub async fn metrics(&self) -> String {
        self.mesh.admin_get("/metrics").await.unwrap_or_else(|e| panic!("{e:#}")).text()
    }
}

pub fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Waits until `/metrics` has `name{labels}` summing to exactly `want`.
async fn expect_metric(w: &World, name: &str, labels: &[(&str, &str)], want: u64) {
    eventually(PATIENCE, &format!("{name}{labels:?} == {want}"), || async move {
        let text = w.metrics().await;
        let got = metrics::sum(&text, name, labels).unwrap_or(0.0);
        let near: Vec<&str> = text.lines().filter(|l| l.starts_with(name) && labels.iter().take(2).all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))).collect();
        anyhow::ensure!(got == want as f64, "{got} of {want}; series: {near:#?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_mixed_run_is_counted_per_protocol_with_each_protocols_own_codes() {
    let w = World::start("telemetry-mixed").await;
    let runs = [
        // (client's status, response_code, grpc_response_status, response_flags): a gRPC
        // error is URX when retries ran out, and unflagged when the retry budget allowed
        // none.
        ("http", HTTP.0, "w1", "--path /", vec![("200", "200", "", "-")]),
        ("grpc", GRPC.0, "r1", "--method /corridor.Echo/Call", vec![("OK", "200", "0", "-"), ("UNAVAILABLE", "200", "14", "")]),
        ("dubbo", DUBBO.0, "d1", "--interface org.apache.dubbo.demo.DemoService --method sayHello", vec![("20", "20", "", "-"), ("70", "70", "", "-")]),
        ("thrift", THRIFT.0, "t1", "--method echo --transport framed", vec![("reply", "0", "", "-"), ("exception", "6", "", "-")]),
    ];
    let mut spans = 0;
    for (protocol, service, backend, line, codes) in &runs {
        let s = w.load(protocol, service, line).await;
        let sent = count(&s["requests"]["sent"]);
        assert!(sent >= 30, "{protocol}: {s}");
        assert_eq!(count(&s["requests"]["completed"]), sent, "{protocol}: {s}");
        spans += sent;
        let fqdn = w.fqdn(service);
        let principal = |ns: &str| format!("spiffe://cluster.local/ns/{ns}/sa/default");
        let client_principal = principal(&w.mesh.ns);
        // The endpoint's pod (`<service>-<backend>`, no owner: its own workload).
        let destination = format!("{service}-{backend}");
        let base = [
            ("request_protocol", *protocol),
            ("destination_service", fqdn.as_str()),
            ("reporter", "source"),
            ("source_workload", "client"),
            ("source_workload_namespace", w.mesh.ns.as_str()),
            ("source_principal", client_principal.as_str()),
            ("source_app", "client"),
            ("source_version", "v7"),
            ("destination_workload", destination.as_str()),
            ("destination_workload_namespace", w.mesh.ns.as_str()),
            ("destination_principal", client_principal.as_str()),
            ("destination_app", service),
            ("destination_version", "v1"),
        ];
        expect_metric(&w, "istio_requests_total", &base, sent).await;
        for name in ["istio_request_duration_milliseconds_count", "istio_request_bytes_count", "istio_response_bytes_count"] {
            expect_metric(&w, name, &base, sent).await;
        }
        // Each outcome under the protocol's own code, as many as the client saw.
        for (status, code, grpc, flags) in codes {
            let seen = count(&s["statuses"][*status]);
            assert!(seen > 0, "{protocol}: no {status} in {s}");
            let mut labels = base.to_vec();
            labels.push(("response_code", code));
            if !flags.is_empty() {
                labels.push(("response_flags", flags));
            }
            if !grpc.is_empty() {
                labels.push(("grpc_response_status", grpc));
            }
            expect_metric(&w, "istio_requests_total", &labels, seen).await;
        }
    }

    let grpc = w.fqdn(GRPC.0);
    let retried = [("destination_service", grpc.as_str()), ("grpc_response_status", "14"), ("response_flags", "URX")];
    w.mesh.wait_for_metric("istio_requests_total", &retried, 1.0).await;

    // Connection-level protocols: opaque TCP (HTTP bytes through a tcp- port) and Redis.
    let s = w.load("http", TCP.0, "--path /").await;
    assert!(count(&s["requests"]["ok"]) > 0, "{s}");
    let s = w.load("redis", REDIS.0, "--command-mix get --keyspace 10").await;
    assert!(count(&s["requests"]["ok"]) > 0, "{s}");
    for service in [TCP.0, REDIS.0, DUBBO.0, THRIFT.0] {
        let fqdn = w.fqdn(service);
        let labels = [("destination_service", fqdn.as_str())];
        let opened = w.mesh.wait_for_metric("istio_tcp_connections_opened_total", &labels, 1.0).await;
        expect_metric(&w, "istio_tcp_connections_closed_total", &labels, opened as u64).await;
        w.mesh.wait_for_metric("istio_tcp_sent_bytes_total", &labels, 100.0).await;
        w.mesh.wait_for_metric("istio_tcp_received_bytes_total", &labels, 100.0).await;
    }

    // The access log: route, upstream, duration, flags and trace id on every call.
    let dubbo_line = w.mesh.wait_for_gateway_log(&["protocol=\"dubbo\"", "response_code=70", "source_workload=\"client\""]).await;
    for needle in ["route=\"all\"", "upstream=\"", "duration_ms=", "flags=-", "trace_id=\""] {
        assert!(dubbo_line.contains(needle), "{needle} in {dubbo_line}");
    }
    let http_line = w.mesh.wait_for_gateway_log(&["code=200", "source_workload=\"client\"", "trace_id=\""]).await;
    assert!(!http_line.contains("trace_id=\"-\""), "{http_line}");

    // Sampling 100 %: one span per call, in the gateway's name.
    let collected = eventually(PATIENCE, &format!("{spans} spans"), || async {
        let got = w.collector.spans();
        anyhow::ensure!(got.len() as u64 >= spans, "{} of {spans} spans", got.len());
        Ok(got)
    })
    .await;
    assert_eq!(collected.len() as u64, spans);
    assert!(collected.iter().all(|s| s.service == "corridor-gateway" && s.trace_id.len() == 32), "{:?}", collected.first());
    let thrift_errors = collected.iter().filter(|s| s.attributes.get("response_code").is_some_and(|c| c == "6")).count();
    assert!(thrift_errors > 0, "no span of a Thrift exception");
}
