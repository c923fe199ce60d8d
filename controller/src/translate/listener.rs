//! Listeners: one per meshed (service, port), bound on the service's gateway address.

use std::{collections::BTreeMap, net::SocketAddrV4};

use corridor_proto::{
    aeraki::meta_protocol_proxy::v1alpha::{
        ApplicationProtocol, Codec, MetaProtocolProxy, Rds as MetaRds, meta_protocol_proxy,
    },
    envoy::{
        config::{
            core::v3::{Address, SocketAddress, address, socket_address},
            listener::v3::{Filter, FilterChain, Listener, filter},
        },
        extensions::filters::network::{
            http_connection_manager::v3::{HttpConnectionManager, Rds, http_connection_manager},
            redis_proxy::v3::RedisProxy,
            tcp_proxy::v3::{TcpProxy, tcp_proxy},
        },
    },
    pack_any,
};

use super::{
    MetaValue, PortInfo, ServiceInfo, ads_config_source, cluster_name, corridor_metadata,
    filters::{self, PolicySources},
};
use crate::xds::snapshot::Resource;

/// Network filter name of the HTTP connection manager.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// Network filter name of the TCP proxy.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// Network filter name of Aeraki's MetaProtocol proxy (Dubbo, Thrift).
pub const META_PROTOCOL_FILTER: &str = "aeraki.meta_protocol_proxy";
/// Prefix of Aeraki's codec names.
pub const CODEC_PREFIX: &str = "aeraki.meta_protocol.codec.";

/// `<host>:<port>`, the name of a listener and of its route configuration.
pub fn listener_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// The listener of one (service, port), bound on `bind` (the service's gateway address and
/// the original port locally; every interface and the gateway port in a cluster). Its name
/// keeps the original port either way. An HTTP or Dubbo/Thrift port runs the policy
/// filters made from `policies` ([`filters`]), then the router; a Redis port runs `redis`
/// (built by translate/redis.rs).
pub(super) fn build(
    info: &ServiceInfo,
    port: &PortInfo,
    bind: SocketAddrV4,
    policies: &PolicySources<'_>,
    redis: Option<RedisProxy>,
) -> Resource {
    let name = listener_name(&info.host, port.number);
    let filter = if port.protocol.is_http() {
        let hcm = HttpConnectionManager {
            stat_prefix: name.clone(),
            codec_type: http_connection_manager::CodecType::Auto as i32,
            route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
                config_source: Some(ads_config_source()),
                route_config_name: name.clone(),
            })),
            http_filters: filters::http_filters(policies, &name),
            ..Default::default()
        };
        Filter {
            name: HCM_FILTER.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
        }
    } else if port.protocol.is_meta() {
        let protocol = port.protocol.as_str();
        let proxy = MetaProtocolProxy {
            stat_prefix: name.clone(),
            route_specifier: Some(meta_protocol_proxy::RouteSpecifier::Rds(MetaRds {
                config_source: Some(ads_config_source()),
                route_config_name: name.clone(),
            })),
            protocol: Some(ApplicationProtocol {
                name: protocol.to_string(),
                codec: Some(Codec {
                    name: format!("{CODEC_PREFIX}{protocol}"),
                    config: None,
                }),
                multiplexing: true,
            }),
            meta_protocol_filters: filters::meta_filters(policies, &name),
            ..Default::default()
        };
        Filter {
            name: META_PROTOCOL_FILTER.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
        }
    } else if let Some(proxy) = redis {
        Filter {
            name: super::redis::REDIS_PROXY_FILTER.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
        }
    } else {
        let tcp = TcpProxy {
            stat_prefix: name.clone(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster_name(
                port.number,
                "",
                &info.host,
            ))),
            ..Default::default()
        };
        Filter {
            name: TCP_PROXY_FILTER.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(tcp))),
        }
    };
    let mut listener = Listener {
        name: name.clone(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                protocol: socket_address::Protocol::Tcp as i32,
                address: bind.ip().to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    bind.port(),
                ))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![filter],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (metadata, canonical) = corridor_metadata(BTreeMap::from([
        ("service", MetaValue::Str(info.host.clone())),
        ("namespace", MetaValue::Str(info.key.namespace.clone())),
        ("name", MetaValue::Str(info.key.name.clone())),
        ("port", MetaValue::Num(f64::from(port.number))),
        (
            "protocol",
            MetaValue::Str(port.protocol.as_str().to_string()),
        ),
    ]));
    let bare = listener.clone();
    listener.metadata = Some(metadata);
    Resource::with_canonical(name, &listener, &bare, &canonical)
}
