//! Corridor's wire types.
//!
//! Envoy's v3 xDS messages come from the `envoy-types` crate and are re-exported here so
//! every component names them the same way; the project's own messages (the DNS name
//! table) are compiled from `proto/` at build time.

pub use envoy_types::pb::envoy;
pub use envoy_types::pb::google;
pub use envoy_types::util::pack_any;

pub mod json;
pub mod xds_client;

/// Project-owned protos.
pub mod corridor {
    /// The DNS name table pushed to corridor-dns.
    pub mod dns {
        /// Version 1 of the name table.
        pub mod v1 {
            #![allow(missing_docs, clippy::all)]
            include!(concat!(env!("OUT_DIR"), "/corridor.dns.v1.rs"));
        }
    }
}

/// xDS type URLs served by the controller.
pub mod type_url {
    /// Listener Discovery Service resources.
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// Route Discovery Service resources.
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// Cluster Discovery Service resources.
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// Endpoint Discovery Service resources.
    pub const ENDPOINT: &str =
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    /// The DNS name table (project message).
    pub const NAME_TABLE: &str = "type.googleapis.com/corridor.dns.v1.NameTable";

    /// Short name used in logs and metrics labels ("lds", "rds", ...).
    pub fn short(type_url: &str) -> &'static str {
        match type_url {
            LISTENER => "lds",
            ROUTE => "rds",
            CLUSTER => "cds",
            ENDPOINT => "eds",
            NAME_TABLE => "ntds",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Name;

    #[test]
    fn name_table_type_url_is_the_served_one() {
        assert_eq!(
            super::corridor::dns::v1::NameTable::type_url(),
            super::type_url::NAME_TABLE
        );
    }
}
