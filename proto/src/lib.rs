//! Corridor's wire types.
//!
//! Envoy's v3 xDS messages come from the `envoy-types` crate and are re-exported here so
//! every component names them the same way; the project's own messages (the DNS name
//! table, the pod table) and Aeraki's MetaProtocol API are compiled from `proto/` at build
//! time.

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
    /// The pod table pushed to gateways: which workload a source IP belongs to.
    pub mod workload {
        /// Version 1 of the pod table: `Workload`, one resource per pod IP.
        pub mod v1 {
            #![allow(missing_docs, clippy::all)]
            include!(concat!(env!("OUT_DIR"), "/corridor.workload.v1.rs"));
        }
    }
}

/// OpenTelemetry's OTLP trace protos (same packages and field numbers), for the
/// gateway's span export; `common::v1` is envoy-types' copy.
pub mod opentelemetry {
    /// `opentelemetry.proto`.
    pub mod proto {
        pub use envoy_types::pb::opentelemetry::proto::common;
        /// `Resource`.
        pub mod resource {
            /// Version 1.
            pub mod v1 {
                #![allow(missing_docs, clippy::all)]
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.resource.v1.rs"));
            }
        }
        /// `Span`, `ResourceSpans`, `ScopeSpans`.
        pub mod trace {
            /// Version 1.
            pub mod v1 {
                #![allow(missing_docs, clippy::all)]
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.trace.v1.rs"));
            }
        }
        /// The OTLP/gRPC export services.
        pub mod collector {
            /// Traces.
            pub mod trace {
                /// `TraceService` client and server.
                pub mod v1 {
                    #![allow(missing_docs, clippy::all)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.trace.v1.rs"
                    ));
                }
            }
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
            /// The global rate limit filter (`aeraki.meta_protocol.filters.ratelimit`);
            /// Aeraki's package is `ratelimit` although its file sits under
            /// `global_ratelimit/`.
            pub mod ratelimit {
                /// `RateLimit`, `Descriptor`.
                pub mod v1alpha {
                    #![allow(missing_docs, clippy::all)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/aeraki.meta_protocol_proxy.filters.ratelimit.v1alpha.rs"
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
    /// The pod table, one resource per pod IP (project message).
    pub const WORKLOAD: &str = "type.googleapis.com/corridor.workload.v1.Workload";

    /// Short name used in logs and metrics labels ("lds", "rds", ...).
    pub fn short(type_url: &str) -> &'static str {
        match type_url {
            LISTENER => "lds",
            ROUTE => "rds",
            CLUSTER => "cds",
            ENDPOINT => "eds",
            NAME_TABLE => "ntds",
            META_ROUTE => "mrds",
            WORKLOAD => "wds",
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

    #[test]
    fn workload_type_url_is_the_served_one() {
        assert_eq!(
            super::corridor::workload::v1::Workload::type_url(),
            super::type_url::WORKLOAD
        );
        assert_eq!(super::type_url::short(super::type_url::WORKLOAD), "wds");
    }

    /// The meta route's fault extension carries Envoy's own `HTTPFault` (the gateway reads
    /// one message for HTTP and meta routes) and renders under its field name.
    #[test]
    fn meta_route_fault_is_envoys_http_fault() {
        use super::aeraki::meta_protocol_proxy::config::route::v1alpha::{
            Route, RouteAction, RouteConfiguration,
        };
        use super::envoy::extensions::filters::{
            common::fault::v3::{FaultDelay, fault_delay::FaultDelaySecifier},
            http::fault::v3::{FaultAbort, HttpFault, fault_abort::ErrorType},
        };
        use super::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
        use super::google::protobuf::Duration;
        let half = Some(FractionalPercent { numerator: 50, denominator: DenominatorType::Hundred as i32 });
        let fault = HttpFault {
            delay: Some(FaultDelay {
                percentage: half,
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(Duration { seconds: 1, nanos: 0 })),
            }),
            abort: Some(FaultAbort { percentage: half, error_type: Some(ErrorType::GrpcStatus(14)), ..Default::default() }),
            ..Default::default()
        };
        let config = RouteConfiguration {
            name: "r".into(),
            routes: vec![Route {
                route: Some(RouteAction { fault: Some(fault.clone()), ..Default::default() }),
                ..Default::default()
            }],
        };
        let bytes = prost::Message::encode_to_vec(&config);
        let back = <RouteConfiguration as prost::Message>::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.routes[0].route.as_ref().unwrap().fault, Some(fault));
        let any = super::google::protobuf::Any { type_url: RouteConfiguration::type_url(), value: bytes };
        let json = super::json::any_to_json(&any).unwrap();
        assert_eq!(json["routes"][0]["route"]["fault"]["abort"]["grpc_status"], 14, "{json}");
    }

    /// Aeraki's global rate limit config names its rate limit service in Envoy's terms and
    /// travels (inside a MetaProtocol filter's `Any`) under Aeraki's package name.
    #[test]
    fn global_rate_limit_uses_aerakis_package_and_envoys_service_config() {
        use super::aeraki::meta_protocol_proxy::filters::ratelimit::v1alpha::{Descriptor, RateLimit};
        use super::envoy::config::{
            core::v3::{GrpcService, grpc_service::{EnvoyGrpc, TargetSpecifier}},
            ratelimit::v3::RateLimitServiceConfig,
        };
        assert_eq!(
            RateLimit::type_url(),
            "type.googleapis.com/aeraki.meta_protocol_proxy.filters.ratelimit.v1alpha.RateLimit"
        );
        let limit = RateLimit {
            domain: "dubbo".into(),
            failure_mode_deny: true,
            rate_limit_service: Some(RateLimitServiceConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: "outbound|8081||rls.default.svc.cluster.local".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            descriptors: vec![Descriptor { property: "method".into(), descriptor_key: "method".into() }],
            ..Default::default()
        };
        let json = super::json::any_to_json(&super::pack_any(limit)).unwrap();
        assert_eq!(json["descriptors"][0]["descriptor_key"], "method", "{json}");
        assert_eq!(json["failure_mode_deny"], true, "{json}");
    }

    /// The Envoy messages the policy filters and the rate limit client are built from are
    /// all in envoy-types (this test stops compiling if an upgrade drops one).
    #[test]
    fn envoy_types_has_the_policy_messages() {
        use super::envoy::{config, extensions::filters::http, service};
        let names = [
            <config::rbac::v3::Rbac as prost::Name>::full_name(),
            <http::rbac::v3::Rbac as prost::Name>::full_name(),
            <http::fault::v3::HttpFault as prost::Name>::full_name(),
            <http::local_ratelimit::v3::LocalRateLimit as prost::Name>::full_name(),
            <http::ratelimit::v3::RateLimit as prost::Name>::full_name(),
            <service::ratelimit::v3::RateLimitRequest as prost::Name>::full_name(),
        ];
        assert_eq!(names[2], "envoy.extensions.filters.http.fault.v3.HTTPFault");
        assert_eq!(names[5], "envoy.service.ratelimit.v3.RateLimitRequest");
        // The client the gateway's global rate limit calls through.
        let _ = service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::<tonic::transport::Channel>::new;
    }
}
