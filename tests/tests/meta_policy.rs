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

#[path = "meta_policy/retry.rs"]
mod retry;
#[path = "meta_policy/routing.rs"]
mod routing;

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
