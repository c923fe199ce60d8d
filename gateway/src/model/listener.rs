//! Listeners: where the gateway accepts connections and what it does with them.

use std::net::{IpAddr, SocketAddr};

use corridor_proto::envoy::config::core::v3::{address, socket_address};
use corridor_proto::envoy::config::listener::v3::{Listener as PbListener, filter};
use corridor_proto::envoy::extensions::filters::http::fault::v3::HttpFault;
use corridor_proto::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit as HttpLocalRateLimit;
use corridor_proto::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier, http_filter,
};
use corridor_proto::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use corridor_proto::aeraki::meta_protocol_proxy::filters::local_ratelimit::v1alpha::LocalRateLimit;
use corridor_proto::envoy::extensions::filters::network::redis_proxy::v3::RedisProxy;

use super::redis::{REDIS_PROXY_FILTER, RedisProxyConfig};
use corridor_proto::aeraki::meta_protocol_proxy::v1alpha::{
    MetaProtocolProxy, meta_protocol_proxy::RouteSpecifier as MetaRouteSpecifier,
};

use super::{ModelError, decode_any, metadata_string};
use crate::policy::global_ratelimit::RateLimitSettings;
use crate::policy::local_ratelimit::LocalRateLimiter;
use corridor_proto::aeraki::meta_protocol_proxy::filters::ratelimit::v1alpha::RateLimit as AerakiRateLimit;
use corridor_proto::envoy::extensions::filters::http::ratelimit::v3::RateLimit as HttpRateLimit;
use crate::policy::rbac::{ParseMode, Rbac};
use corridor_proto::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;

/// Filter name of the HTTP connection manager.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// Filter name of the TCP proxy.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// Filter name of Aeraki's MetaProtocol proxy (Dubbo, Thrift, ...).
pub const META_PROTOCOL_FILTER: &str = "aeraki.meta_protocol_proxy";
/// Aeraki's MetaProtocol router filter (built in: accepted, nothing to configure).
pub const ROUTER_FILTER: &str = "aeraki.meta_protocol.filters.router";
/// Aeraki's MetaProtocol local rate limit filter.
pub const LOCAL_RATELIMIT_FILTER: &str = "aeraki.meta_protocol.filters.local_ratelimit";
/// Envoy's HTTP router filter (built in: accepted, nothing to configure).
pub const HTTP_ROUTER_FILTER: &str = "envoy.filters.http.router";
/// Envoy's HTTP local rate limit filter.
pub const HTTP_LOCAL_RATELIMIT_FILTER: &str = "envoy.filters.http.local_ratelimit";
/// Aeraki's MetaProtocol global rate limit filter (a rate limit service decides).
pub const RATELIMIT_FILTER: &str = "aeraki.meta_protocol.filters.ratelimit";
/// Envoy's HTTP global rate limit filter (a rate limit service decides).
pub const HTTP_RATELIMIT_FILTER: &str = "envoy.filters.http.ratelimit";
/// Envoy's RBAC filter (authorization); Dubbo and Thrift listeners name it the same.
pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Envoy's HTTP fault filter; Dubbo/Thrift listeners name it too (same message), so the
/// same filter runs the routes' fault rules for every protocol.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// Prefix of Aeraki's codec names (`aeraki.meta_protocol.codec.dubbo`).
pub const CODEC_PREFIX: &str = "aeraki.meta_protocol.codec.";

/// A validated listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Resource name, e.g. `reviews.default.svc.cluster.local:9080`.
    pub name: String,
    /// Address to bind.
    pub address: SocketAddr,
    /// What runs on accepted connections.
    pub kind: ListenerKind,
    /// Labels of the destination service, for telemetry.
    pub service: ServiceLabels,
}

/// The protocol handling of a listener.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// HTTP/1.1 and h2c, routed through the named RouteConfiguration.
    Http {
        /// RDS resource name.
        route_config: String,
        /// The request filters before the router, in order (validated).
        filters: Vec<FilterConfig>,
    },
    /// Opaque TCP to one cluster.
    Tcp {
        /// Cluster name.
        cluster: String,
    },
    /// A codec-based protocol, routed through the named MetaProtocol route configuration.
    Meta {
        /// MetaProtocol RDS resource name.
        route_config: String,
        /// Which codec reads the bytes.
        codec: CodecKind,
        /// The request filters before the router, in order (validated).
        filters: Vec<FilterConfig>,
    },
    /// Redis, routed by key prefix (Envoy's `redis_proxy`).
    Redis(std::sync::Arc<RedisProxyConfig>),
}

/// A request filter's configuration, validated when the listener was accepted; the
/// listener builds its `policy::chain::Chain` from the list.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterConfig {
    /// Aeraki's MetaProtocol local rate limit (Dubbo, Thrift).
    MetaLocalRateLimit(LocalRateLimit),
    /// Envoy's HTTP local rate limit.
    HttpLocalRateLimit(HttpLocalRateLimit),
    /// Aeraki's MetaProtocol global rate limit (Dubbo, Thrift).
    MetaRateLimit(AerakiRateLimit),
    /// Envoy's HTTP global rate limit.
    HttpRateLimit(HttpRateLimit),
    /// Envoy's RBAC filter, reading HTTP headers or codec attributes per `mode`.
    Rbac {
        /// The filter's configuration.
        config: RbacFilter,
        /// What its header rules read.
        mode: ParseMode,
    },
    /// Fault injection (Envoy's HTTP fault filter, for every protocol): the
    /// listener-wide rule, usually empty, as routes carry their own.
    Fault(HttpFault),
}

/// The codecs the gateway has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    /// Dubbo2 with Hessian2.
    Dubbo,
    /// Thrift, any transport and protocol.
    Thrift,
}

impl CodecKind {
    /// From an Aeraki codec name (`aeraki.meta_protocol.codec.dubbo`) or an application
    /// protocol name (`dubbo`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.strip_prefix(CODEC_PREFIX).unwrap_or(name) {
            "dubbo" => Some(CodecKind::Dubbo),
            "thrift" => Some(CodecKind::Thrift),
            _ => None,
        }
    }
}

/// Destination-service labels read from `metadata.filter_metadata["corridor"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ServiceLabels {
    /// FQDN of the service (`destination_service`).
    pub service: String,
    /// Short name (`destination_service_name`).
    pub name: String,
    /// Namespace (`destination_service_namespace`).
    pub namespace: String,
    /// Declared protocol of the port (`http`, `grpc`, `tcp`, ...).
    pub protocol: String,
}

impl Listener {
    /// The route configuration an HTTP listener references.
    pub fn route_config(&self) -> Option<&str> {
        match &self.kind {
            ListenerKind::Http { route_config, .. } => Some(route_config),
            ListenerKind::Tcp { .. } | ListenerKind::Meta { .. } | ListenerKind::Redis(_) => None,
        }
    }

    /// The MetaProtocol route configuration a Dubbo/Thrift listener references.
    pub fn meta_route_config(&self) -> Option<&str> {
        match &self.kind {
            ListenerKind::Meta { route_config, .. } => Some(route_config),
            ListenerKind::Http { .. } | ListenerKind::Tcp { .. } | ListenerKind::Redis(_) => None,
        }
    }
}

impl TryFrom<&PbListener> for Listener {
    type Error = ModelError;

    fn try_from(l: &PbListener) -> Result<Self, ModelError> {
        if l.name.is_empty() {
            return Err(ModelError::Missing("name"));
        }
        let address = socket_addr(l.address.as_ref())?;
        let chain = match l.filter_chains.as_slice() {
            [] => return Err(ModelError::Missing("filter_chains")),
            [one] => one,
            _ => return Err(ModelError::Unsupported("more than one filter chain".into())),
        };
        let f = match chain.filters.as_slice() {
            [one] => one,
            [] => return Err(ModelError::Missing("filter_chains[0].filters")),
            _ => {
                return Err(ModelError::Unsupported(
                    "more than one network filter".into(),
                ));
            }
        };
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            return Err(ModelError::Missing("filters[0].typed_config"));
        };
        let kind = match f.name.as_str() {
            HCM_FILTER => {
                let hcm: HttpConnectionManager = decode_any(any)?;
                let filters = http_filters(&hcm.http_filters)?;
                match hcm.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) if !rds.route_config_name.is_empty() => {
                        ListenerKind::Http {
                            route_config: rds.route_config_name,
                            filters,
                        }
                    }
                    Some(RouteSpecifier::Rds(_)) => {
                        return Err(ModelError::Missing("rds.route_config_name"));
                    }
                    Some(_) => {
                        return Err(ModelError::Unsupported(
                            "route specifier other than rds".into(),
                        ));
                    }
                    None => return Err(ModelError::Missing("http_connection_manager.rds")),
                }
            }
            TCP_PROXY_FILTER => {
                let tcp: TcpProxy = decode_any(any)?;
                match tcp.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(c)) if !c.is_empty() => {
                        ListenerKind::Tcp { cluster: c }
                    }
                    _ => return Err(ModelError::Missing("tcp_proxy.cluster")),
                }
            }
            META_PROTOCOL_FILTER => meta_kind(&decode_any::<MetaProtocolProxy>(any)?)?,
            REDIS_PROXY_FILTER => {
                let proxy: RedisProxy = decode_any(any)?;
                ListenerKind::Redis(std::sync::Arc::new(RedisProxyConfig::try_from(&proxy)?))
            }
            other => return Err(ModelError::Unsupported(format!("network filter {other:?}"))),
        };
        let md = l.metadata.as_ref();
        let service = ServiceLabels {
            service: metadata_string(md, "corridor", "service").unwrap_or_default(),
            name: metadata_string(md, "corridor", "name").unwrap_or_default(),
            namespace: metadata_string(md, "corridor", "namespace").unwrap_or_default(),
            protocol: metadata_string(md, "corridor", "protocol").unwrap_or_default(),
        };
        Ok(Listener {
            name: l.name.clone(),
            address,
            kind,
            service,
        })
    }
}

/// A MetaProtocol listener: its route configuration (RDS only) and its codec, named by
/// `protocol.codec` (or the older `codec` / `application_protocol` fields).
#[allow(deprecated)]
fn meta_kind(p: &MetaProtocolProxy) -> Result<ListenerKind, ModelError> {
    let route_config = match &p.route_specifier {
        Some(MetaRouteSpecifier::Rds(rds)) if !rds.route_config_name.is_empty() => {
            rds.route_config_name.clone()
        }
        Some(MetaRouteSpecifier::Rds(_)) | None => {
            return Err(ModelError::Missing(
                "meta_protocol_proxy.rds.route_config_name",
            ));
        }
        Some(MetaRouteSpecifier::RouteConfig(_)) => {
            return Err(ModelError::Unsupported(
                "inline MetaProtocol route_config".into(),
            ));
        }
    };
    let names = [
        p.protocol
            .as_ref()
            .and_then(|a| a.codec.as_ref())
            .map(|c| c.name.as_str()),
        p.protocol.as_ref().map(|a| a.name.as_str()),
        p.codec.as_ref().map(|c| c.name.as_str()),
        Some(p.application_protocol.as_str()),
    ];
    let named: Vec<&str> = names
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
    let codec = named
        .iter()
        .find_map(|n| CodecKind::from_name(n))
        .ok_or_else(|| {
            ModelError::Unsupported(format!(
                "MetaProtocol codec {:?}",
                named.first().unwrap_or(&"")
            ))
        })?;
    let mut filters = Vec::new();
    for f in &p.meta_protocol_filters {
        match f.name.as_str() {
            // The router is built in and always runs last.
            ROUTER_FILTER => {}
            LOCAL_RATELIMIT_FILTER => {
                let any = f
                    .config
                    .as_ref()
                    .ok_or(ModelError::Missing("local_ratelimit.config"))?;
                let config = decode_any::<LocalRateLimit>(any)?;
                LocalRateLimiter::from_aeraki(&config)?;
                filters.push(FilterConfig::MetaLocalRateLimit(config));
            }
            RATELIMIT_FILTER => {
                let any = f.config.as_ref().ok_or(ModelError::Missing("ratelimit.config"))?;
                let config = decode_any::<AerakiRateLimit>(any)?;
                RateLimitSettings::from_aeraki(&config)?;
                filters.push(FilterConfig::MetaRateLimit(config));
            }
            RBAC_FILTER => {
                let any = f.config.as_ref().ok_or(ModelError::Missing("rbac.config"))?;
                filters.push(rbac(decode_any::<RbacFilter>(any)?, ParseMode::Meta)?);
            }
            FAULT_FILTER => {
                let config = match &f.config {
                    Some(any) => decode_any::<HttpFault>(any)?,
                    None => HttpFault::default(),
                };
                filters.push(fault_filter(config)?);
            }
            other => {
                return Err(ModelError::Unsupported(format!(
                    "MetaProtocol filter {other:?}"
                )));
            }
        }
    }
    Ok(ListenerKind::Meta {
        route_config,
        codec,
        filters,
    })
}

/// The HCM's HTTP filters, validated. A filter the gateway does not implement refuses
/// the listener (naming it) unless marked `is_optional`: dropping an authorization or
/// rate limit filter silently would serve requests it should refuse. Envoy's RBAC,
/// fault and rate limit service filters are refused this way until the gateway
/// implements them (issue 8's later work packages).
fn http_filters(list: &[HttpFilter]) -> Result<Vec<FilterConfig>, ModelError> {
    let mut filters = Vec::new();
    for f in list {
        if f.disabled {
            // Disabled by default and enabled per route: routes' per-filter configuration
            // is not read yet, so the filter could never run where a route wants it.
            if f.is_optional {
                continue;
            }
            return Err(ModelError::Unsupported(format!(
                "disabled HTTP filter {:?} (enabled per route; per-route filter configuration is not read yet)",
                f.name
            )));
        }
        match f.name.as_str() {
            // The router is built in and always runs last.
            HTTP_ROUTER_FILTER => {}
            HTTP_LOCAL_RATELIMIT_FILTER => {
                let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    return Err(ModelError::Missing("local_ratelimit.typed_config"));
                };
                let config = decode_any::<HttpLocalRateLimit>(any)?;
                LocalRateLimiter::from_envoy(&config)?;
                filters.push(FilterConfig::HttpLocalRateLimit(config));
            }
            HTTP_RATELIMIT_FILTER => {
                let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    return Err(ModelError::Missing("ratelimit.typed_config"));
                };
                let config = decode_any::<HttpRateLimit>(any)?;
                RateLimitSettings::from_envoy(&config)?;
                filters.push(FilterConfig::HttpRateLimit(config));
            }
            RBAC_FILTER => {
                let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    return Err(ModelError::Missing("rbac.typed_config"));
                };
                filters.push(rbac(decode_any::<RbacFilter>(any)?, ParseMode::Http)?);
            }
            FAULT_FILTER => {
                let config = match &f.config_type {
                    Some(http_filter::ConfigType::TypedConfig(any)) => decode_any::<HttpFault>(any)?,
                    _ => HttpFault::default(),
                };
                filters.push(fault_filter(config)?);
            }
            other if f.is_optional => {
                tracing::debug!(
                    filter = other,
                    "optional HTTP filter not implemented: skipped"
                );
            }
            other => {
                return Err(ModelError::Unsupported(format!("HTTP filter {other:?}")));
            }
        }
    }
    Ok(filters)
}

/// The fault filter's configuration, validated.
fn fault_filter(config: HttpFault) -> Result<FilterConfig, ModelError> {
    crate::policy::fault::from_envoy(&config)?;
    Ok(FilterConfig::Fault(config))
}

/// An RBAC filter, validated.
fn rbac(config: RbacFilter, mode: ParseMode) -> Result<FilterConfig, ModelError> {
    Rbac::from_filter(&config, mode)?;
    Ok(FilterConfig::Rbac { config, mode })
}

/// Converts an Envoy address holding a literal IP and a numeric port.
pub(crate) fn socket_addr(
    a: Option<&corridor_proto::envoy::config::core::v3::Address>,
) -> Result<SocketAddr, ModelError> {
    let Some(address::Address::SocketAddress(sa)) = a.and_then(|a| a.address.as_ref()) else {
        return Err(ModelError::Missing("address.socket_address"));
    };
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        ModelError::invalid(
            "socket_address.address",
            format!("{:?} is not an IP address", sa.address),
        )
    })?;
    let port = match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) if p <= u16::MAX as u32 => p as u16,
        Some(socket_address::PortSpecifier::PortValue(p)) => {
            return Err(ModelError::invalid(
                "socket_address.port_value",
                format!("{p} out of range"),
            ));
        }
        _ => return Err(ModelError::Missing("socket_address.port_value")),
    };
    Ok(SocketAddr::new(ip, port))
}
