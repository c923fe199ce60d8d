//! Route policy tests (faults, mirrors, retries) in every L7 protocol: one service per
//! protocol served by `corridor-load serve` echo backends, a VirtualService with the
//! policy, and `corridor-load` as the caller, whose JSON summary counts statuses and
//! latencies.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::bin::{Process, binary};
use crate::manifests::ServicePort;
use crate::mesh::{Mesh, Upstream};

/// Longest one load run may take: its seconds, a start, the drain at the end.
const RUN_PATIENCE: Duration = Duration::from_secs(90);

/// An L7 protocol the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1.
    Http,
    /// gRPC over h2c.
    Grpc,
    /// Dubbo2.
    Dubbo,
    /// Thrift.
    Thrift,
}

impl Proto {
    /// All four.
    pub const ALL: [Proto; 4] = [Proto::Http, Proto::Grpc, Proto::Dubbo, Proto::Thrift];

    /// `corridor-load`'s name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Grpc => "grpc",
            Proto::Dubbo => "dubbo",
            Proto::Thrift => "thrift",
        }
    }

    /// The service port: its name carries the protocol.
    pub fn port(self) -> ServicePort {
        match self {
            Proto::Http => ServicePort::new("http-web", 8080),
            Proto::Grpc => ServicePort::new("grpc-echo", 9000),
            Proto::Dubbo => ServicePort::new("tcp-dubbo-demo", 20880),
            Proto::Thrift => ServicePort::new("tcp-thrift-echo", 9090),
        }
    }

    /// The flags that make `corridor-load <proto>` call the echo backend.
    fn call_args(self) -> &'static [&'static str] {
        match self {
            Proto::Http => &["--path", "/echo"],
            Proto::Grpc => &["--method", "/echo.Echo/Say"],
            Proto::Dubbo => &[
                "--interface",
                "org.apache.dubbo.demo.DemoService",
                "--method",
                "sayHello",
            ],
            Proto::Thrift => &["--method", "echo"],
        }
    }

    /// The `statuses` key of a successful call.
    pub fn ok_status(self) -> &'static str {
        match self {
            Proto::Http => "200",
            Proto::Grpc => "OK",
            Proto::Dubbo => "20",
            Proto::Thrift => "reply",
        }
    }
}

/// A running `corridor-load serve <proto>` backend.
#[derive(Debug)]
pub struct Served {
    /// Its name (HTTP answers carry it in `x-backend`).
    pub name: String,
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Upstream for Served {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Starts an echo backend of `proto` called `name` on a fresh loopback address of
/// `mesh` with `port` (0: any); `extra` adds flags (`--error-rate 0.3`, `--delay 10s`,
/// `--log-calls`).
pub async fn serve(mesh: &mut Mesh, proto: Proto, name: &str, port: u16, extra: &[&str]) -> Served {
    let addr = mesh.upstream_addr(port);
    let mut cmd = std::process::Command::new(binary("corridor-load"));
    cmd.args(["serve", proto.as_str(), "--name", name])
        .args(["--listen", &addr.to_string()])
        .args(extra);
    let mut process = Process::spawn(&format!("{} {name}", proto.as_str()), cmd)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = process
        .wait_bound("corridor-load serve bound", proto.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    Served {
        name: name.to_string(),
        process,
        addr,
    }
}

/// Calls logged by a backend started with `--log-calls` (one `call <protocol> ...`
/// line each).
pub fn logged_calls(s: &Served) -> usize {
    s.process
        .stdout
        .snapshot()
        .iter()
        .filter(|l| l.starts_with("call "))
        .count()
}

/// Runs `corridor-load <proto>` against `addr` with `extra` flags (whitespace-split)
/// and returns its JSON summary.
pub async fn load(proto: Proto, addr: SocketAddr, extra: &str) -> Value {
    let run = Command::new(binary("corridor-load"))
        .arg(proto.as_str())
        .args(["--target", &addr.to_string()])
        .args(proto.call_args())
        .args(extra.split_whitespace())
        .args(["--json", "--progress", "never"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("corridor-load {proto:?} {extra} ran past {RUN_PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("corridor-load: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "corridor-load {proto:?} {extra}: no JSON summary: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(summary["schema"], "corridor-load/summary/v1");
    summary
}

/// A count of a summary (`"requests"/"completed"`, `"statuses"/"200"`; absent: 0).
pub fn count(summary: &Value, path: &[&str]) -> u64 {
    let mut v = summary;
    for key in path {
        v = &v[*key];
    }
    v.as_u64().unwrap_or(0)
}

/// A latency of a summary, in milliseconds (`"p50"`, `"p99"`).
pub fn latency_ms(summary: &Value, which: &str) -> f64 {
    summary["latency_ms"][which]
        .as_f64()
        .unwrap_or_else(|| panic!("no latency {which}: {summary}"))
}

/// A VirtualService for `service` with one `http` route sending everything to it, with
/// `policy` merged into the route (`fault`, `mirror`, `retries`, ...).
pub fn virtual_service(ns: &str, service: &str, policy: Value) -> Value {
    let mut route = json!({
        "name": "all",
        "route": [{"destination": {"host": service}}]
    });
    if let (Some(r), Some(p)) = (route.as_object_mut(), policy.as_object()) {
        for (k, v) in p {
            r.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": service, "namespace": ns},
        "spec": {"hosts": [service], "http": [route]}
    })
}
