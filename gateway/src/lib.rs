//! corridor-gateway: the shared east-west L7 gateway (HTTP/1.1, h2c, gRPC, TCP),
//! configured over Delta xDS.
//!
//! [`app::build`] starts everything from a [`config::Config`]; the binary and the tests
//! both go through it.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod drain;
pub mod listener;
pub mod model;
pub mod policy;
pub mod proxy;
pub mod readiness;
pub mod redis;
pub mod router;
pub mod telemetry;
pub mod xds;

#[cfg(test)]
pub(crate) mod testing;
