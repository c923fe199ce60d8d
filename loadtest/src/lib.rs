//! corridor-load: the load-test harness SREs run against the mesh, and the echo backends
//! the mesh's Dubbo and Thrift tests call through the gateway.
//!
//! [`serve`] runs an echo backend in-process (the `corridor-load serve` command, and
//! `corridor up` for its demo backends).

pub mod serve;
