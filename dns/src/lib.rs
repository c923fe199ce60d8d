//! corridor-dns: a CoreDNS-compatible cluster DNS fed by the controller's name table.
//!
//! The zone (`cluster.local` by default) is answered from the latest [`NameTable`] the
//! controller pushed over ADS, as the Kubernetes DNS-Based Service Discovery spec (schema
//! 1.1.0) and CoreDNS's `kubernetes` plugin do, except that a meshed service's name
//! answers its gateway address while the gateway pool is available. Other names are
//! forwarded to upstream resolvers through a cache.
//!
//! [`NameTable`]: corridor_proto::corridor::dns::v1::NameTable

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod config;
pub mod edges;
pub mod forward;
pub mod metrics;
pub mod server;
pub mod xds;
pub mod zone;
