//! corridor-controller: reads Kubernetes and Istio objects (from a manifests directory or
//! the Kubernetes API), translates them into Envoy v3 resources, and serves them over ADS.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod addressing;
pub mod admission;
pub mod app;
pub mod availability;
pub mod cluster;
pub mod config;
pub mod kube;
pub mod probe;
pub mod protocol;
pub mod resources;
pub mod source;
pub mod store;
pub mod translate;
pub mod xds;
