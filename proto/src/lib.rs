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

/// Aeraki's MetaProtocol API (same packages, names and field numbers), for Dubbo, Thrift
/// and other codec-based protocols.
pub mod aeraki {
    /// `aeraki.meta_protocol_proxy`.
    pub mod meta_protocol_proxy {
        /// The listener filter: `MetaProtocolProxy`.
        pub mod v1alpha {
            #![allow(missing_docs, clippy::all)]
            include!(concat!(env!("OUT_DIR"), "/aeraki.meta_protocol_proxy.v1alpha.rs"));
        }
        /// Route configuration.
        pub mod config {
            /// Routes.
            pub mod route {
                /// `RouteConfiguration`, `Route`, `RouteMatch`, `RouteAction`, `KeyValue`.
                pub mod v1alpha {
                    #![allow(missing_docs, clippy::all)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/aeraki.meta_protocol_proxy.config.route.v1alpha.rs"
                    ));
                }
            }
        }
        /// MetaProtocol filters configured on the listener.
        pub mod filters {
            /// The local rate limit filter.
            pub mod local_ratelimit {
                /// `LocalRateLimit`, `LocalRateLimitCondition`.
                pub mod v1alpha {
                    #![allow(missing_docs, clippy::all)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/aeraki.meta_protocol_proxy.filters.local_ratelimit.v1alpha.rs"
                    ));
                }
            }
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
    /// MetaProtocol (Dubbo, Thrift) route configurations (Aeraki's message).
    pub const META_ROUTE: &str =
        "type.googleapis.com/aeraki.meta_protocol_proxy.config.route.v1alpha.RouteConfiguration";

    /// Short name used in logs and metrics labels ("lds", "rds", ...).
    pub fn short(type_url: &str) -> &'static str {
        match type_url {
            LISTENER => "lds",
            ROUTE => "rds",
            CLUSTER => "cds",
            ENDPOINT => "eds",
            NAME_TABLE => "ntds",
            META_ROUTE => "mrds",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Name;

    /// Aeraki's route messages carry Envoy's matchers (envoy-types' Rust types), travel
    /// under Aeraki's type URL, and render as JSON for `/config_dump`.
    #[test]
    fn aeraki_routes_use_envoy_types_and_render_as_json() {
        use super::aeraki::meta_protocol_proxy::config::route::v1alpha::{
            KeyValue, Route, RouteAction, RouteConfiguration, RouteMatch, route_action,
        };
        use super::envoy::config::route::v3::{HeaderMatcher, header_matcher};
        let config = RouteConfiguration {
            name: "greeter".into(),
            routes: vec![Route {
                name: "say-hello".into(),
                r#match: Some(RouteMatch {
                    metadata: vec![HeaderMatcher {
                        name: "method".into(),
                        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::ExactMatch("sayHello".into())),
                        ..Default::default()
                    }],
                }),
                route: Some(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("outbound|20880||greeter".into())),
                    ..Default::default()
                }),
                request_mutation: vec![KeyValue { key: "foo".into(), value: "bar".into() }],
                ..Default::default()
            }],
        };
        assert_eq!(RouteConfiguration::type_url(), super::type_url::META_ROUTE);
        let any = super::google::protobuf::Any {
            type_url: RouteConfiguration::type_url(),
            value: prost::Message::encode_to_vec(&config),
        };
        let json = super::json::any_to_json(&any).unwrap();
        assert_eq!(json["routes"][0]["match"]["metadata"][0]["exact_match"], "sayHello", "{json}");
        assert_eq!(json["routes"][0]["request_mutation"][0]["key"], "foo", "{json}");
    }

    #[test]
    fn name_table_type_url_is_the_served_one() {
        assert_eq!(
            super::corridor::dns::v1::NameTable::type_url(),
            super::type_url::NAME_TABLE
        );
    }
}
