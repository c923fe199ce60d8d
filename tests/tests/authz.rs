//! Authorization through the real controller and gateway, for HTTP, gRPC, Dubbo and
//! Thrift alike: Istio AuthorizationPolicies (DENY by source namespace, ALLOW by
//! principal, `to` rules per protocol, allow-nothing, ipBlocks) enforced on callers that
//! `corridor-load` runs from the pod IPs of namespaces a, b and c (`--source`), so the
//! gateway names each caller from the pod table alone (identity is IP-based here).
//!
//! Servers are `corridor-load serve` echo backends; every count comes from the client's
//! own summary (answers by status: HTTP 403, gRPC PERMISSION_DENIED, Dubbo 40, Thrift
//! exception).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use corridor_tests::bin::{Process, binary};
use corridor_tests::manifests::{self, ServicePort};
use corridor_tests::mesh::Upstream;
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

/// Longest one client run may take: its second of calls, start and drain.
const RUN_PATIENCE: Duration = Duration::from_secs(60);
/// How long each client run sends: enough calls for exact all-or-nothing counts.
const RUN_FOR: &str = "700ms";
/// Fewest calls a run must make to count (a refusal of 100 % of at least this many).
const MIN_CALLS: u64 = 20;

/// The protocols, with the service each is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http,
    Grpc,
    Dubbo,
    Thrift,
}

const ALL: [Proto; 4] = [Proto::Http, Proto::Grpc, Proto::Dubbo, Proto::Thrift];

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Grpc => "grpc",
            Proto::Dubbo => "dubbo",
            Proto::Thrift => "thrift",
        }
    }

    /// The service and its port.
    fn service(self) -> (&'static str, ServicePort) {
        match self {
            Proto::Http => ("web", ServicePort::new("http-web", 8080)),
            Proto::Grpc => ("rpc", ServicePort::new("grpc-rpc", 9000)),
            Proto::Dubbo => ("demo", ServicePort::new("tcp-dubbo-demo", 20880)),
            Proto::Thrift => ("echo", ServicePort::new("tcp-thrift-echo", 9090)),
        }
    }

    /// How a refusal reads in corridor-load's summary.
    fn refused(self) -> &'static str {
        match self {
            Proto::Http => "403",
            Proto::Grpc => "PERMISSION_DENIED",
            Proto::Dubbo => "40",
            Proto::Thrift => "exception",
        }
    }

    fn served(self) -> &'static str {
        match self {
            Proto::Http => "200",
            Proto::Grpc => "OK",
            Proto::Dubbo => "20",
            Proto::Thrift => "reply",
        }
    }

    /// The client arguments of a call of `what` (a path, a gRPC method, a Dubbo
    /// `interface/method`, a Thrift method).
    fn call(self, what: &str) -> Vec<String> {
        let args: Vec<&str> = match self {
            Proto::Http => vec!["--path", what],
            Proto::Grpc => vec!["--method", what],
            Proto::Dubbo => {
                let (interface, method) = what.rsplit_once('/').unwrap_or((what, "sayHello"));
                return ["--interface", interface, "--method", method]
                    .map(String::from)
                    .to_vec();
            }
            Proto::Thrift => vec!["--method", what],
        };
        args.into_iter().map(String::from).collect()
    }

    /// A call no `to` rule of these tests names.
    fn plain(self) -> &'static str {
        match self {
            Proto::Http => "/",
            Proto::Grpc => "/corridor.Echo/Say",
            Proto::Dubbo => "org.Demo/sayHello",
            Proto::Thrift => "say",
        }
    }
}

/// A `corridor-load serve` echo backend.
struct Server {
    name: String,
    addr: SocketAddr,
    _process: Process,
}

impl Upstream for Server {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve(mesh: &mut Mesh, proto: Proto) -> Server {
    let listen = mesh.upstream_addr(0);
    let name = format!("{}-1", proto.name());
    let mut cmd = Command::new(binary("corridor-load"));
    cmd.args([
        "serve",
        proto.name(),
        "--name",
        &name,
        "--listen",
        &listen.to_string(),
    ]);
    let mut process = Process::spawn(&name, cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let addr = process
        .wait_bound("corridor-load serve bound", proto.name())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    Server {
        name,
        addr,
        _process: process,
    }
}

/// A pod of namespace `ns` with service account `x` on `ip`.
fn pod(ns: &str, name: &str, ip: IpAddr) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
           "spec": {"serviceAccountName": "x", "containers": [{"name": "app", "image": "example.invalid/app"}]},
           "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}})
}

fn policy(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// The mesh: the four services, and pods a, b, c on their own loopback IPs.
struct World {
    mesh: Mesh,
    addrs: BTreeMap<&'static str, SocketAddr>,
    sources: BTreeMap<&'static str, IpAddr>,
    _servers: Vec<Server>,
}

impl World {
    async fn start(tag: &str) -> World {
        let mut mesh = Mesh::new(tag);
        let mut servers = Vec::new();
        let mut objects = Vec::new();
        for proto in ALL {
            let server = serve(&mut mesh, proto).await;
            let (service, port) = proto.service();
            objects.extend(mesh.service_objects(service, port, &[(&server, "v1")]));
            servers.push(server);
        }
        let mut sources = BTreeMap::new();
        let mut pods = Vec::new();
        for ns in ["a", "b", "c"] {
            let ip = mesh.upstream_addr(0).ip();
            pods.push(pod(ns, &format!("client-{ns}"), ip));
            sources.insert(ns, ip);
        }
        // Addresses no pod has.
        sources.insert("unknown-1", mesh.upstream_addr(0).ip());
        sources.insert("unknown-2", mesh.upstream_addr(0).ip());
        mesh.write("mesh.yaml", &manifests::yaml(objects));
        mesh.write("pods.yaml", &manifests::yaml(pods));
        mesh.start_controller().await;
        mesh.start_gateway().await;
        let mut addrs = BTreeMap::new();
        for proto in ALL {
            let (service, port) = proto.service();
            addrs.insert(
                proto.name(),
                mesh.service_addr(service, port.number()).await,
            );
        }
        World {
            mesh,
            addrs,
            sources,
            _servers: servers,
        }
    }

    /// Replaces the policies with `policies` (one file).
    fn policies(&self, policies: Vec<Value>) {
        self.mesh.write("policies.yaml", &manifests::yaml(policies));
    }

    /// Runs the client of `proto` from `source` calling `what`; returns (calls, answers
    /// by status).
    async fn run(&self, proto: Proto, source: &str, what: &str) -> (u64, BTreeMap<String, u64>) {
        let ip = self.sources[source];
        let mut args: Vec<String> = [proto.name(), "--target"].map(String::from).to_vec();
        args.push(self.addrs[proto.name()].to_string());
        args.extend(proto.call(what));
        args.extend(
            [
                "--source",
                &ip.to_string(),
                "--connections",
                "2",
                "--duration",
                RUN_FOR,
            ]
            .map(String::from),
        );
        args.extend(["--json", "--progress", "never"].map(String::from));
        let run = tokio::process::Command::new(binary("corridor-load"))
            .args(&args)
            .kill_on_drop(true)
            .output();
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(RUN_PATIENCE, run)
            .await
            .unwrap_or_else(|_| panic!("corridor-load {args:?} ran past {RUN_PATIENCE:?}"))
            .unwrap_or_else(|e| panic!("corridor-load {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!(
            "corridor-load {} from {} ({:?}): {}",
            args[0],
            ip,
            started.elapsed(),
            summary_line(&stdout)
        );
        let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: corridor-load {args:?} printed no JSON: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let completed = summary["requests"]["completed"].as_u64().unwrap_or(0);
        let statuses = summary["statuses"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        (completed, statuses)
    }

    /// Waits until every call of `proto` from `source` for `what` gets `want` (the
    /// protocol's served or refused status): every one of at least [`MIN_CALLS`], with
    /// nothing else.
    async fn expect(&self, proto: Proto, source: &str, what: &str, allowed: bool) {
        let want = if allowed {
            proto.served()
        } else {
            proto.refused()
        };
        let label = format!(
            "{} from {source} to {what}: all {}",
            proto.name(),
            if allowed { "served" } else { "refused" }
        );
        eventually(PATIENCE, &label, || async {
            let (completed, statuses) = self.run(proto, source, what).await;
            let count = |status: &str| statuses.get(status).copied().unwrap_or(0);
            // Every call served, or every call refused.
            let good = count(want) == completed;
            anyhow::ensure!(
                completed >= MIN_CALLS && good,
                "{completed} calls, answers {statuses:?}"
            );
            Ok(())
        })
        .await;
    }

    /// The gateway's config_dump entry of `proto`'s listener (version and update time).
    async fn listener_state(&self, proto: Proto) -> Value {
        let (service, port) = proto.service();
        let name = self.mesh.listener_name(service, port.number());
        let dump: Value = serde_json::from_str(
            &self
                .mesh
                .admin_get("/config_dump")
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
                .text(),
        )
        .unwrap_or_else(|e| panic!("config_dump: {e}"));
        dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c["dynamic_listeners"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|l| l["name"] == name.as_str())
            .map(|l| l["active_state"].clone())
            .unwrap_or_else(|| panic!("no listener {name} in config_dump"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_by_namespace_refuses_exactly_that_namespace_for_every_protocol() {
    let w = World::start("authz-deny").await;
    let ns = w.mesh.ns.clone();
    w.policies(vec![policy(
        &ns,
        "deny-a",
        json!({
        "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]}),
    )]);
    for proto in ALL {
        w.expect(proto, "a", proto.plain(), false).await;
        w.expect(proto, "b", proto.plain(), true).await;
        w.expect(proto, "c", proto.plain(), true).await;
    }

    // Pod churn: a's pod goes, and its IP now belongs to a new pod of namespace c. The
    // next calls from that IP are served, with no listener pushed again (the pod table
    // is read per request).
    let before = listener_states(&w).await;
    let churned = vec![
        pod("c", "client-c-2", w.sources["a"]),
        pod("b", "client-b", w.sources["b"]),
        pod("c", "client-c", w.sources["c"]),
    ];
    w.mesh.write("pods.yaml", &manifests::yaml(churned));
    for proto in ALL {
        w.expect(proto, "a", proto.plain(), true).await;
    }
    assert_eq!(
        listener_states(&w).await,
        before,
        "pod churn must not touch the listeners"
    );

    // An invalid policy is refused, naming its field; the last good one stays in force.
    w.policies(vec![policy(&ns, "deny-a", json!({
        "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["b"], "ipBlocks": ["10.0.0.0/33"]}}]}]}))]);
    let log = w.mesh.controller_log();
    let line = eventually(PATIENCE, "the controller to reject deny-a", || {
        let found = log.find(&["rejected", "deny-a"]);
        async move { found.ok_or_else(|| anyhow::anyhow!("no rejection logged yet")) }
    })
    .await;
    assert!(
        line.contains("spec.rules[0].from[0].source.ipBlocks[0]"),
        "the field is named: {line}"
    );
    w.expect(Proto::Http, "b", "/", true).await;
}

/// The listener states of every protocol.
async fn listener_states(w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for proto in ALL {
        out.push(w.listener_state(proto).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_rules_by_principal_operation_and_address() {
    let w = World::start("authz-allow").await;
    let ns = w.mesh.ns.clone();

    // ALLOW by principal: only b's service account gets through.
    w.policies(vec![policy(
        &ns,
        "only-b",
        json!({
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/b/sa/x"]}}]}]}),
    )]);
    for proto in ALL {
        w.expect(proto, "b", proto.plain(), true).await;
        w.expect(proto, "a", proto.plain(), false).await;
        w.expect(proto, "c", proto.plain(), false).await;
    }

    // ALLOW by operation, per protocol: HTTP GET /ok*, gRPC one method, Dubbo one
    // interface's method, Thrift one method.
    w.policies(vec![policy(
        &ns,
        "ops",
        json!({"rules": [
            {"to": [{"operation": {"methods": ["GET"], "paths": ["/ok*"]}}]},
            {"to": [{"operation": {"paths": ["/corridor.Echo/Allowed"]}}]},
            {"to": [{"operation": {"paths": ["org.Open"], "methods": ["sayHello"]}}]},
            {"to": [{"operation": {"methods": ["allowed"]}}]},
        ]}),
    )]);
    let cases: [(Proto, &str, &str); 4] = [
        (Proto::Http, "/ok/1", "/no"),
        (
            Proto::Grpc,
            "/corridor.Echo/Allowed",
            "/corridor.Echo/Other",
        ),
        (Proto::Dubbo, "org.Open/sayHello", "org.Open/sayBye"),
        (Proto::Thrift, "allowed", "other"),
    ];
    for (proto, yes, no) in cases {
        w.expect(proto, "a", yes, true).await;
        w.expect(proto, "a", no, false).await;
    }
    w.expect(Proto::Dubbo, "a", "org.Closed/sayHello", false)
        .await;

    // Allow-nothing: an empty spec refuses everything, the calls allowed just now too.
    w.policies(vec![policy(&ns, "allow-nothing", json!({}))]);
    for (proto, yes, _) in cases {
        w.expect(proto, "b", yes, false).await;
    }

    // An address no pod has matches ipBlocks only, never namespaces.
    let block = format!("{}/32", w.sources["unknown-1"]);
    w.policies(vec![policy(
        &ns,
        "known-or-block",
        json!({"rules": [
            {"from": [{"source": {"namespaces": ["a", "b", "c"]}}]},
            {"from": [{"source": {"ipBlocks": [block]}}]},
        ]}),
    )]);
    w.expect(Proto::Http, "a", "/", true).await;
    w.expect(Proto::Http, "unknown-1", "/", true).await;
    w.expect(Proto::Http, "unknown-2", "/", false).await;
    w.expect(Proto::Dubbo, "unknown-2", Proto::Dubbo.plain(), false)
        .await;
}

fn summary_line(stdout: &str) -> String {
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    format!("{} {} {}", v["requests"], v["statuses"], v["first_error"])
}
