//! Issue 8's cluster fields: connection breakers, outlier detection, hash tables, zone
//! awareness and endpoint labels.

use corridor_proto::envoy::config::cluster::v3 as cl;
use corridor_proto::envoy::config::core::v3::{
    Address, Locality, Metadata, SocketAddress, address, socket_address,
};
use corridor_proto::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints,
    lb_endpoint::HostIdentifier,
};
use corridor_proto::envoy::r#type::v3::Percent;
use corridor_proto::google::protobuf::{Struct, UInt32Value, UInt64Value, Value, value::Kind};

use super::*;
use crate::testing::cluster;

#[test]
fn connection_breakers_default_to_envoys_and_take_the_thresholds() {
    let m = Cluster::try_from(&cluster("c", false)).unwrap();
    assert_eq!((m.max_connections, m.max_pending), (1024, 1024));
    assert_eq!((m.outlier.as_ref(), m.zone_aware), (None, false));
    let mut c = cluster("c", false);
    c.circuit_breakers = Some(cl::CircuitBreakers {
        thresholds: vec![cl::circuit_breakers::Thresholds {
            max_connections: Some(UInt32Value { value: 1 }),
            max_pending_requests: Some(UInt32Value { value: 2 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let m = Cluster::try_from(&c).unwrap();
    assert_eq!((m.max_connections, m.max_pending), (1, 2));
}

#[test]
fn hash_policies_and_their_tables() {
    let mut c = cluster("c", false);
    c.lb_policy = cl::cluster::LbPolicy::RingHash as i32;
    assert_eq!(
        Cluster::try_from(&c).unwrap().lb,
        LbPolicy::RingHash {
            minimum_ring_size: 1024
        }
    );
    c.lb_policy = cl::cluster::LbPolicy::Maglev as i32;
    c.lb_config = Some(cl::cluster::LbConfig::MaglevLbConfig(
        cl::cluster::MaglevLbConfig {
            table_size: Some(UInt64Value { value: 7 }),
        },
    ));
    assert_eq!(
        Cluster::try_from(&c).unwrap().lb,
        LbPolicy::Maglev { table_size: 7 }
    );
    c.lb_config = Some(cl::cluster::LbConfig::MaglevLbConfig(
        cl::cluster::MaglevLbConfig {
            table_size: Some(UInt64Value { value: 0 }),
        },
    ));
    assert!(Cluster::try_from(&c).is_err());
}

#[test]
fn outlier_detection_and_zone_awareness() {
    use cl::cluster::common_lb_config::{LocalityConfigSpecifier, ZoneAwareLbConfig};
    let mut c = cluster("c", false);
    c.outlier_detection = Some(cl::OutlierDetection {
        consecutive_5xx: Some(UInt32Value { value: 3 }),
        ..Default::default()
    });
    let zone = |percent| {
        Some(cl::cluster::CommonLbConfig {
            locality_config_specifier: Some(LocalityConfigSpecifier::ZoneAwareLbConfig(
                ZoneAwareLbConfig {
                    routing_enabled: Some(Percent { value: percent }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
    };
    c.common_lb_config = zone(100.0);
    let m = Cluster::try_from(&c).unwrap();
    assert_eq!(m.outlier.unwrap().consecutive_5xx, Some(3));
    assert!(m.zone_aware);
    c.common_lb_config = zone(0.0);
    assert!(!Cluster::try_from(&c).unwrap().zone_aware);
}

#[test]
fn endpoint_labels_come_from_corridor_metadata() {
    let field = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let md = Metadata {
        filter_metadata: [(
            "corridor".to_string(),
            Struct {
                fields: [
                    ("workload".to_string(), field("web")),
                    ("namespace".to_string(), field("prod")),
                    ("sa".to_string(), field("web-sa")),
                ]
                .into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    let endpoint = |metadata| LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(PbEndpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "10.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(80)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        metadata,
        ..Default::default()
    };
    let cla = ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: vec![LocalityLbEndpoints {
            locality: Some(Locality {
                zone: "z1".into(),
                ..Default::default()
            }),
            lb_endpoints: vec![endpoint(Some(md)), endpoint(None)],
            ..Default::default()
        }],
        ..Default::default()
    };
    let eps = Endpoints::try_from(&cla).unwrap();
    let labels = eps.endpoints[0].labels.as_deref().unwrap();
    assert_eq!(labels.workload, "web");
    assert_eq!(labels.namespace, "prod");
    assert_eq!(labels.service_account, "web-sa");
    assert_eq!(labels.app, "");
    assert_eq!(eps.endpoints[0].zone, "z1");
    assert!(eps.endpoints[1].labels.is_none());
}
