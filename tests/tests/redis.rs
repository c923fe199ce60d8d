//! Redis through the real controller and gateway (issue 5), against real peers: Debian
//! `redis-server`, `redis-cli` and `redis-benchmark`, and npm ioredis 6 with its default
//! options. Each test writes Services, EndpointSlices and Aeraki `RedisService` /
//! `RedisDestination` objects (and Secrets) as the controller reads them, and checks what
//! each redis-server received by asking it directly.
//!
//! - `clients`: redis-cli (data types, multi-key commands, unsupported commands),
//!   inline and pipelined commands, QUIT and SELECT, redis-benchmark at -P1 and -P16,
//!   ioredis (HELLO 3 -> NOPROTO -> RESP2), an upstream restart, per-command metrics;
//! - `routing`: key-prefix routes (longest prefix, catch-all, prefix removal, case),
//!   consistent hashing over a service's endpoints (hash tags), multi-key commands;
//! - `mirror`: writes (and optionally reads) mirrored to a server or a twemproxy pool;
//! - `faults`: ERROR and DELAY faults, replies kept in command order;
//! - `auth`: downstream passwords (plain, Secret) and upstream credentials held by the
//!   mesh (plain, Secret with a username);
//! - `cluster`: CLUSTER mode against a three-node Redis Cluster: slot routing, MGET across
//!   slots, the nodes' password held by the mesh, the REPLICA read policy, one server
//!   becoming a cluster;
//! - `migration`: slot migrations followed via ASK and MOVED, alone and under load;
//! - `malformed`: bytes that are not RESP close only their own connection.

// This file is the test crate's root, so its modules sit next to it unless told otherwise.
#[path = "redis/auth.rs"]
mod auth;
#[path = "redis/clients.rs"]
mod clients;
#[path = "redis/cluster.rs"]
mod cluster;
#[path = "redis/faults.rs"]
mod faults;
#[path = "redis/malformed.rs"]
mod malformed;
#[path = "redis/migration.rs"]
mod migration;
#[path = "redis/mirror.rs"]
mod mirror;
#[path = "redis/routing.rs"]
mod routing;

use std::net::SocketAddr;

use corridor_tests::manifests::{self, ServicePort};
use corridor_tests::redis::{RedisOptions, RedisServer, Resp};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

/// The Service port of every Redis service here; the gateway listens on it at each
/// service's own gateway address, so services never collide.
const PORT: u16 = 6379;

/// `unwrap` that shows an error's whole context chain (or names the missing value).
trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T> OrPanic<T> for anyhow::Result<T> {
    fn or_panic(self) -> T {
        self.unwrap_or_else(|e| panic!("{e:#}"))
    }
}

impl<T> OrPanic<T> for Option<T> {
    fn or_panic(self) -> T {
        self.unwrap_or_else(|| panic!("expected a value, found none"))
    }
}

/// One redis-server on a fresh loopback address of `mesh`.
async fn server(mesh: &mut Mesh, options: RedisOptions) -> RedisServer {
    RedisServer::start(mesh.upstream_addr(0), options)
        .await
        .or_panic()
}

/// Service + EndpointSlice + Pods for a Redis service `name` (port [`PORT`] named
/// `port_name`) whose endpoints are `servers` (all on the first one's port).
fn redis_objects(mesh: &Mesh, name: &str, port_name: &str, servers: &[&RedisServer]) -> Vec<Value> {
    let upstreams: Vec<(&RedisServer, &str)> = servers.iter().map(|s| (*s, "v1")).collect();
    mesh.service_objects(name, ServicePort::new(port_name, PORT), &upstreams)
}

/// A `redis.aeraki.io/v1alpha1` object of `kind` named `name` in the mesh's namespace.
fn aeraki(mesh: &Mesh, kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "redis.aeraki.io/v1alpha1",
        "kind": kind,
        "metadata": { "name": name, "namespace": mesh.ns },
        "spec": spec,
    })
}

/// A core/v1 Secret with base64 `data`.
fn secret(mesh: &Mesh, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": mesh.ns },
        "data": data,
    })
}

/// Writes `objects` as one manifest, starts the controller and the gateway (with `flags`).
async fn start(mesh: &mut Mesh, objects: Vec<Value>, flags: &[&str]) {
    mesh.write("redis.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway_with(flags).await;
}

/// The gateway's address for Redis service `name` once its listener is up and speaks
/// Redis (the RedisProxy of the first push may still be on its way when the listener
/// binds, so wait for an answer to PING).
async fn gateway_addr(mesh: &Mesh, name: &str) -> SocketAddr {
    let addr = mesh.service_addr(name, PORT).await;
    eventually(
        PATIENCE,
        &format!("PING through the gateway at {addr}"),
        || async move {
            let mut conn = corridor_tests::redis::RespConn::connect(addr).await?;
            let reply = conn.command(&["PING"]).await?;
            // A listener asking for a password answers NOAUTH: it speaks Redis all the same.
            match reply {
                Resp::Simple(s) if s == "PONG" => Ok(()),
                Resp::Error(e) if e.starts_with("NOAUTH") => Ok(()),
                other => anyhow::bail!("PING answered {other:?}"),
            }
        },
    )
    .await;
    addr
}

/// Sum of the gateway's `/metrics` samples of `name` with `labels` (0 when none).
async fn metric(mesh: &Mesh, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = mesh.admin_get("/metrics").await.or_panic().text();
    corridor_tests::metrics::sum(&text, name, labels).unwrap_or(0.0)
}

/// The number of keys `server` holds.
async fn dbsize(server: &RedisServer) -> i64 {
    let reply = server.command(&["DBSIZE"]).await.or_panic();
    reply
        .as_int()
        .unwrap_or_else(|| panic!("DBSIZE at {} answered {reply:?}", server.addr))
}

/// The value of `key` on `server`, asked directly (`None` for a missing key). Uses MGET
/// so that the server's `get` count stays the gateway's alone.
async fn value_on(server: &RedisServer, key: &str) -> Option<String> {
    let reply = server.command(&["MGET", key]).await.or_panic();
    let items = reply
        .as_array()
        .unwrap_or_else(|| panic!("MGET at {} answered {reply:?}", server.addr));
    items.first().and_then(|v| v.as_str()).map(str::to_string)
}
