//! The xDS client: Delta ADS against the controller.

pub mod client;
pub mod handlers;

pub use client::{XdsClient, XdsConfig};
pub use handlers::{ConfigStore, XdsState};
