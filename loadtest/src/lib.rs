//! corridor-load: the load-test harness SREs run against the mesh, and the echo backends
//! the mesh's Dubbo and Thrift tests call through the gateway.
//!
//! - [`load`]: HTTP/1.1, Dubbo2 and Thrift load, open loop at a fixed rate (latency timed
//!   from each call's intended send time: no coordinated omission) or closed loop, with
//!   one report for every protocol.
//! - [`serve`]: an echo backend in-process (the `corridor-load serve` command, and
//!   `corridor up` for its demo backends).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod load;
pub mod serve;
