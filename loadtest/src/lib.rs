//! corridor-load: the load-test harness SREs run against the mesh, and the echo backends
//! the mesh's tests and benchmarks call through the gateway.
//!
//! - [`load`]: HTTP (HTTP/1.1 and h2c), gRPC, Dubbo2, Thrift, Redis and DNS load, open
//!   loop at a fixed rate (latency timed from each call's intended send time: no
//!   coordinated omission) or closed loop, with one report for every protocol.
//! - [`serve`]: an HTTP, gRPC, Dubbo or Thrift echo backend in-process, with injected
//!   delay, stall and errors (the `corridor-load serve` command, and `corridor up` for
//!   its demo backends).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod load;
pub mod serve;
