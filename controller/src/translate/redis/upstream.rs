//! The clusters of a Redis port: consistent hashing over the endpoints (PROXY mode) or
//! Envoy's Redis Cluster type seeded with some servers (CLUSTER mode), and the upstream
//! credentials as `RedisProtocolOptions`.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use corridor_proto::{
    envoy::{
        config::{
            cluster::v3::{
                Cluster,
                cluster::{ClusterDiscoveryType, CustomClusterType, LbPolicy},
            },
            core::v3::{Address, SocketAddress, address, socket_address},
            endpoint::v3::{
                ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
            },
        },
        extensions::{
            clusters::redis::v3::RedisClusterConfig,
            filters::network::redis_proxy::v3::RedisProtocolOptions,
        },
    },
    google::protobuf::UInt32Value,
    pack_any,
};

use super::{Credentials, REDIS_CLUSTER_TYPE, REDIS_PROXY_FILTER, inline};
use crate::translate::{Context, endpoint, pb_duration};

/// How often a Redis Cluster's topology is read again (Envoy's default).
pub const CLUSTER_REFRESH_RATE: Duration = Duration::from_secs(5);
/// Timeout of a topology read (Envoy's default).
pub const CLUSTER_REFRESH_TIMEOUT: Duration = Duration::from_secs(3);
/// Window in which redirections are counted towards an early topology read (Envoy's
/// default) ...
pub const REDIRECT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// ... and how many trigger it (Envoy's default).
pub const REDIRECT_REFRESH_THRESHOLD: u32 = 5;

/// The Redis-specific shape of one cluster.
#[derive(Debug)]
pub(in crate::translate) struct Upstream {
    /// CLUSTER mode: the servers topology discovery starts from.
    pub(super) seeds: Option<ClusterLoadAssignment>,
    /// Upstream AUTH.
    pub(super) credentials: Option<Credentials>,
}

impl Upstream {
    /// False in CLUSTER mode, whose endpoints travel inside the cluster.
    pub fn uses_eds(&self) -> bool {
        self.seeds.is_none()
    }

    /// Turns a cluster built for the port into a Redis one.
    pub fn shape(&self, cluster: &mut Cluster) {
        match &self.seeds {
            // Envoy's redis_proxy hashes each command's key to pick a server; ring hash
            // keeps most keys on their server when one comes or goes.
            None => cluster.lb_policy = LbPolicy::RingHash as i32,
            Some(seeds) => {
                let config = RedisClusterConfig {
                    cluster_refresh_rate: Some(pb_duration(CLUSTER_REFRESH_RATE)),
                    cluster_refresh_timeout: Some(pb_duration(CLUSTER_REFRESH_TIMEOUT)),
                    redirect_refresh_interval: Some(pb_duration(REDIRECT_REFRESH_INTERVAL)),
                    redirect_refresh_threshold: Some(UInt32Value {
                        value: REDIRECT_REFRESH_THRESHOLD,
                    }),
                    ..Default::default()
                };
                cluster.cluster_discovery_type =
                    Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
                        name: REDIS_CLUSTER_TYPE.to_string(),
                        typed_config: Some(pack_any(config)),
                    }));
                cluster.eds_cluster_config = None;
                cluster.lb_policy = LbPolicy::ClusterProvided as i32;
                cluster.load_assignment = Some(seeds.clone());
            }
        }
        if let Some(c) = &self.credentials {
            let options = RedisProtocolOptions {
                auth_password: Some(inline(&c.password)),
                auth_username: c.username.as_deref().map(inline),
                ..Default::default()
            };
            // A single-entry map encodes deterministically.
            cluster.typed_extension_protocol_options =
                HashMap::from([(REDIS_PROXY_FILTER.to_string(), pack_any(options))]);
        }
    }
}

/// A seed list from `discoveryEndpoints` (`host:port`, `[v6]:port`, or `host` for
/// `default_port`), resolved from `namespace`. A host naming a known Service stands for
/// that Service's endpoints on the named port: its name would resolve to the gateway
/// itself, a loop. Addresses and other names are passed on as written.
pub(super) fn seed_assignment(
    ctx: &Context<'_>,
    namespace: &str,
    name: &str,
    listed: &[String],
    default_port: u16,
) -> ClusterLoadAssignment {
    let mut lb_endpoints = Vec::new();
    for (host, port) in listed
        .iter()
        .filter_map(|text| parse_host_port(text, default_port).ok())
    {
        if host.parse::<IpAddr>().is_err()
            && let Some(service) = ctx.resolve(&host, namespace)
        {
            if let Some(service_port) = service.port(port) {
                let cla = endpoint::assignment(ctx, name, service, service_port, None);
                lb_endpoints.extend(cla.endpoints.into_iter().flat_map(|l| l.lb_endpoints));
            }
            continue;
        }
        lb_endpoints.push(LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        protocol: socket_address::Protocol::Tcp as i32,
                        address: host,
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                            port,
                        ))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Splits `host:port`, `[v6]:port`, `v6` or `host`.
pub(super) fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?} has no closing ]"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{text:?} is not [address]:port")),
        }
    } else if text.matches(':').count() > 1 {
        (text, None) // a bare IPv6 address
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| format!("{text:?}: port {p:?} is not a number in 1-65535"))?,
    };
    Ok((host.to_string(), port))
}
