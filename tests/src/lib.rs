//! Test support for Corridor's end-to-end tests.
//!
//! The tests in `tests/tests/` start the real `corridor-controller` and `corridor-gateway`
//! binaries (and real peers: a Python grpcio server and client, a stock Envoy), write
//! Kubernetes manifests into a temporary directory, and drive traffic through the gateway.
//! This crate holds everything they share:
//!
//! - [`bin`]: find the built binaries, spawn them, parse their `bound` line, keep their logs;
//! - [`mesh`]: a controller + gateway pair on a fresh manifests directory and gateway CIDR;
//! - [`manifests`]: builders for the Kubernetes / Istio objects the controller reads;
//! - [`backend`]: an HTTP test backend that names itself and counts requests;
//! - [`client`]: HTTP/1.1 keep-alive and h2c clients;
//! - [`load`]: a steady-load driver that records every failure;
//! - [`meta`]: Dubbo/Thrift echo backends (`corridor-load serve`) and MetaRouter meshes;
//! - [`node`]: the npm peers (dubbo2.js, ioredis) from `$CORRIDOR_NODE`;
//! - [`redis`]: real redis-server instances and clusters, redis-cli, redis-benchmark,
//!   twemproxy, and a raw RESP client;
//! - [`metrics`]: reading the gateway's Prometheus `/metrics`;
//! - [`rls`]: a rate limit service (Envoy's RLS gRPC API) with scripted answers;
//! - [`otlp`]: an OTLP trace collector keeping the spans it receives;
//! - [`python`] and [`envoy`]: the Python peers and Envoy from the test venv;
//! - [`eventually()`]: polling with a bounded patience instead of sleeps.

pub mod backend;
pub mod bin;
pub mod client;
pub mod dns;
pub mod envoy;
mod eventually;
pub mod load;
pub mod manifests;
pub mod mesh;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod otlp;
pub mod python;
pub mod redis;
pub mod rls;
pub mod route_policy;

pub use backend::Backend;
pub use client::{HttpClient, Reply, time_until_change, wait_for_reply};
pub use eventually::{PATIENCE, eventually};
pub use load::{Load, LoadReport};
pub use mesh::Mesh;

/// A random lowercase suffix for names that must not collide between tests running at the
/// same time (namespaces, Envoy base ids).
pub fn unique_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}
