//! The translator: a pure function from the [`Store`] to a [`Snapshot`] of Envoy v3
//! resources and the DNS name table, shaped as docs/xds.md says.

mod authz;
mod cluster;
mod endpoint;
mod fault;
mod filters;
mod listener;
mod meta;
mod names;
mod placement;
mod ratelimit;
mod redis;
mod resilience;
mod route;
#[cfg(test)]
pub(crate) mod tests;
mod workload;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use corridor_proto::{
    envoy::config::core::v3::{
        AggregatedConfigSource, ApiVersion, ConfigSource, Metadata,
        config_source::ConfigSourceSpecifier,
    },
    google::protobuf::{self as pb, Struct, value::Kind as ValueKind},
    type_url,
};
use k8s_openapi::api::core::v1::Service;
use serde::Serialize;

use crate::{
    config::Ipv4Cidr,
    protocol::Protocol,
    resources::{DestinationRule, MetaRouter, RedisDestination, RedisService, VirtualService},
    store::{ObjectKey, Store},
    xds::snapshot::{Snapshot, TypeSnapshot},
};

pub use authz::validate as validate_authorization_policy;
pub use cluster::validate_destination_rule;
pub use names::with_gateway_available;
pub(crate) use placement::Placement;

/// Label that opts a Namespace or a Service out of the mesh when set to `disabled`.
pub const MESH_LABEL: &str = "corridor.io/mesh";
/// Namespaces never meshed, besides the controller's own.
pub const SYSTEM_NAMESPACES: [&str; 1] = ["kube-system"];
/// Key of Corridor's entry in `metadata.filter_metadata`.
pub const METADATA_KEY: &str = "corridor";

/// Inputs of the translation besides the store.
#[derive(Debug, Clone, Serialize)]
pub struct TranslateOptions {
    /// Where meshed services are reached on the gateway.
    pub addressing: Addressing,
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// Corridor's own namespace, never meshed; in cluster mode it also holds the gateway
    /// address Services.
    pub own_namespace: String,
    /// Trust domain of workload principals (`cluster.local`).
    pub trust_domain: String,
    /// Namespace whose AuthorizationPolicies apply to the whole mesh.
    pub root_namespace: String,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        Self {
            addressing: Addressing::File {
                gateway_cidr: Ipv4Cidr::DEFAULT,
            },
            cluster_domain: crate::config::DEFAULT_CLUSTER_DOMAIN.to_string(),
            own_namespace: crate::config::DEFAULT_NAMESPACE.to_string(),
            trust_domain: crate::config::DEFAULT_TRUST_DOMAIN.to_string(),
            root_namespace: crate::config::DEFAULT_ROOT_NAMESPACE.to_string(),
        }
    }
}

/// How a meshed service gets its gateway address and its listeners (DESIGN.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Addressing {
    /// One machine, no cluster: each meshed service gets an address from `gateway_cidr`
    /// ([`crate::addressing`]) and the gateway binds there on the original port numbers.
    File {
        /// Range gateway addresses are taken from.
        gateway_cidr: Ipv4Cidr,
    },
    /// In a cluster: the gateway address Services in the own namespace
    /// ([`crate::cluster::address`]) give each meshed service a ClusterIP, which DNS
    /// answers, and each of its ports a gateway port, which the gateway binds on every
    /// interface. The namespace is [`TranslateOptions::own_namespace`].
    Cluster,
}

/// One TCP port of a Service.
#[derive(Debug, Clone)]
pub(crate) struct PortInfo {
    pub number: u16,
    pub name: Option<String>,
    pub protocol: Protocol,
}

/// A Service as the translator sees it.
#[derive(Debug, Clone)]
pub(crate) struct ServiceInfo {
    pub key: ObjectKey,
    pub host: String,
    pub ports: Vec<PortInfo>,
    /// `spec.trafficDistribution: PreferClose`: zone-aware balancing.
    pub prefer_close: bool,
}

impl ServiceInfo {
    fn of(key: &ObjectKey, svc: &Service, domain: &str) -> Self {
        let ports = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
            .filter_map(|p| {
                Some(PortInfo {
                    number: u16::try_from(p.port).ok()?,
                    name: p.name.clone(),
                    protocol: Protocol::of_port(p),
                })
            })
            .collect();
        ServiceInfo {
            key: key.clone(),
            host: service_host(key, domain),
            ports,
            prefer_close: svc.spec.as_ref().and_then(|s| s.traffic_distribution.as_deref())
                == Some("PreferClose"),
        }
    }

    pub fn port(&self, number: u16) -> Option<&PortInfo> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// The meshed services of the store with what the translator knows of them: not opted
/// out (see [`unmeshed_reason`]) and with at least one TCP port. The one definition of
/// "meshed" that the translator and the gateway address Services share.
pub(crate) fn meshed_services(
    store: &Store,
    opts: &TranslateOptions,
) -> BTreeMap<ObjectKey, ServiceInfo> {
    store
        .services
        .iter()
        .filter(|(k, s)| unmeshed_reason(store, k, s, opts).is_none())
        .map(|(k, s)| (k.clone(), ServiceInfo::of(k, s, &opts.cluster_domain)))
        .filter(|(_, info)| !info.ports.is_empty())
        .collect()
}

/// `<name>.<namespace>.svc.<domain>`.
pub fn service_host(key: &ObjectKey, domain: &str) -> String {
    format!("{}.{}.svc.{}", key.name, key.namespace, domain)
}

/// Istio's cluster name `outbound|<port>|<subset>|<host>`.
pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// Why a Service is not meshed, or `None` when it is.
pub fn unmeshed_reason(
    store: &Store,
    key: &ObjectKey,
    svc: &Service,
    opts: &TranslateOptions,
) -> Option<&'static str> {
    if SYSTEM_NAMESPACES.contains(&key.namespace.as_str()) || key.namespace == opts.own_namespace {
        return Some("system namespace");
    }
    let disabled = |labels: Option<&BTreeMap<String, String>>| {
        labels
            .and_then(|l| l.get(MESH_LABEL))
            .is_some_and(|v| v == "disabled")
    };
    if disabled(store.namespace_labels(&key.namespace)) {
        return Some("namespace opted out");
    }
    if disabled(svc.metadata.labels.as_ref()) {
        return Some("service opted out");
    }
    let spec = svc.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Some("ExternalName service");
    }
    if spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        return Some("headless service");
    }
    None
}

/// Context shared by the builders: the store, options and the indexes built once.
pub(crate) struct Context<'a> {
    pub store: &'a Store,
    pub opts: &'a TranslateOptions,
    pub services: BTreeMap<ObjectKey, ServiceInfo>,
    /// DestinationRule per service (the first by namespace/name when several apply).
    pub rules: BTreeMap<ObjectKey, &'a DestinationRule>,
}

impl<'a> Context<'a> {
    pub fn new(store: &'a Store, opts: &'a TranslateOptions) -> Self {
        let services = store
            .services
            .iter()
            .map(|(k, s)| (k.clone(), ServiceInfo::of(k, s, &opts.cluster_domain)))
            .collect();
        let mut rules = BTreeMap::new();
        for (key, dr) in &store.destination_rules {
            if let Some(target) =
                store.resolve_host(&dr.spec.host, &key.namespace, &opts.cluster_domain)
            {
                rules.entry(target).or_insert(dr);
            }
        }
        Context {
            store,
            opts,
            services,
            rules,
        }
    }

    pub fn resolve(&self, host: &str, from_namespace: &str) -> Option<&ServiceInfo> {
        let key = self
            .store
            .resolve_host(host, from_namespace, &self.opts.cluster_domain)?;
        self.services.get(&key)
    }
}

/// Validates routing objects against a store (destinations must exist, subsets be defined).
pub struct Validator<'a> {
    ctx: Context<'a>,
}

impl<'a> Validator<'a> {
    /// Indexes the store once for many validations.
    pub fn new(store: &'a Store, opts: &'a TranslateOptions) -> Self {
        Validator {
            ctx: Context::new(store, opts),
        }
    }

    /// Checks a VirtualService; the error says which field is wrong and why.
    pub fn virtual_service(&self, key: &ObjectKey, vs: &VirtualService) -> Result<(), String> {
        route::validate(&self.ctx, key, vs)
    }

    /// Checks a MetaRouter; the error says which field is wrong and why.
    pub fn meta_router(
        &self,
        key: &ObjectKey,
        mr: &crate::resources::MetaRouter,
    ) -> Result<(), String> {
        meta::validate(&self.ctx, key, mr)
    }

    /// Checks a RedisService; when it is good, returns it with the Secrets its auth names
    /// replaced by their values (so its last good version outlives a deleted Secret).
    pub fn redis_service(
        &self,
        key: &ObjectKey,
        rs: &RedisService,
    ) -> Result<RedisService, String> {
        redis::validate_service(&self.ctx, key, rs)
    }

    /// Checks a RedisDestination; when it is good, returns it with its Secret resolved,
    /// as [`Validator::redis_service`] does.
    pub fn redis_destination(
        &self,
        key: &ObjectKey,
        rd: &RedisDestination,
    ) -> Result<RedisDestination, String> {
        redis::validate_destination(&self.ctx, key, rd)
    }
}

/// Translates the whole store. Pure: the same store and options give the same snapshot.
pub fn translate(store: &Store, opts: &TranslateOptions) -> Snapshot {
    let ctx = Context::new(store, opts);
    let meshed_infos = meshed_services(store, opts);
    let meshed: BTreeSet<ObjectKey> = meshed_infos.keys().cloned().collect();
    let placements = placement::place(store, opts, &meshed_infos);

    // VirtualService per meshed host; in-mesh ones only (no `gateways`, or `mesh` listed).
    let mut routing: BTreeMap<ObjectKey, (&ObjectKey, &VirtualService)> = BTreeMap::new();
    for (key, vs) in &store.virtual_services {
        if !vs.spec.gateways.is_empty() && !vs.spec.gateways.iter().any(|g| g == "mesh") {
            continue;
        }
        for host in &vs.spec.hosts {
            if let Some(target) = store.resolve_host(host, &key.namespace, &opts.cluster_domain) {
                routing.entry(target).or_insert((key, vs));
            }
        }
    }

    // MetaRouter per meshed host (Dubbo/Thrift); in-mesh ones only, its first host only
    // (as Aeraki does).
    let mut meta_routing: BTreeMap<ObjectKey, (&ObjectKey, &MetaRouter)> = BTreeMap::new();
    for (key, mr) in &store.meta_routers {
        if !mr.spec.gateways.is_empty() && !mr.spec.gateways.iter().any(|g| g == "mesh") {
            continue;
        }
        if let Some(target) = mr
            .spec
            .hosts
            .first()
            .and_then(|h| store.resolve_host(h, &key.namespace, &opts.cluster_domain))
        {
            meta_routing.entry(target).or_insert((key, mr));
        }
    }

    // Clusters for every meshed service and every service a route sends traffic to.
    let mut targets = meshed.clone();
    let resolve = |host: &str, ns: &str| store.resolve_host(host, ns, &opts.cluster_domain);
    for (key, vs) in routing.values() {
        for r in vs.spec.http.iter().flat_map(|h| &h.route) {
            targets.extend(resolve(&r.destination.host, &key.namespace));
        }
        let mirrors = vs.spec.http.iter().flat_map(|h| h.mirror.iter().chain(h.mirrors.iter().map(|m| &m.destination)));
        for d in mirrors {
            targets.extend(resolve(&d.host, &key.namespace));
        }
    }
    for (key, mr) in meta_routing.values() {
        for r in &mr.spec.routes {
            let destinations = r.route.iter().map(|d| &d.destination).chain(&r.mirror);
            for d in destinations {
                targets.extend(resolve(&d.host, &key.namespace));
            }
        }
    }

    // RedisService and RedisDestination per Redis service; their routes' targets.
    let redis_index = redis::Index::new(&ctx);
    targets.extend(redis_index.targets(&ctx));

    let (mut listeners, mut routes, mut clusters, mut endpoints, mut meta_routes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for key in &targets {
        let Some(info) = ctx.services.get(key) else {
            continue;
        };
        let rule = ctx.rules.get(key).copied();
        for port in &info.ports {
            for (subset, policy) in cluster::subsets(rule) {
                let name = cluster_name(
                    port.number,
                    subset.map_or("", |s| s.name.as_str()),
                    &info.host,
                );
                // A Redis port's clusters take their shape from its RedisDestination; a
                // Redis Cluster carries its seed servers itself, without EDS.
                let (policy, redis) = if port.protocol.is_redis() {
                    let upstream = redis_index.upstream(&ctx, &name, info, port, subset);
                    (redis_index.policy(key, policy), Some(upstream))
                } else {
                    (policy, None)
                };
                clusters.push(cluster::build(
                    &name,
                    info,
                    port,
                    subset,
                    policy.as_ref(),
                    redis.as_ref(),
                ));
                if redis.as_ref().is_none_or(redis::Upstream::uses_eds) {
                    endpoints.push(endpoint::build(&ctx, &name, info, port, subset));
                }
            }
        }
    }
    for key in &meshed {
        let (Some(info), Some(placement)) = (ctx.services.get(key), placements.get(key)) else {
            continue;
        };
        for port in &info.ports {
            let Some(bind) = placement.bind(port.number) else {
                continue;
            };
            // Authorization applies to the L7 protocols; Redis and TCP have no requests
            // the RBAC filter reads.
            let authz = (port.protocol.is_http() || port.protocol.is_meta())
                .then(|| authz::for_listener(&ctx, info, port))
                .flatten();
            let policies = filters::PolicySources {
                meta_router: meta_routing
                    .get(key)
                    .map(|(_, mr)| *mr)
                    // HTTP ports read its rate limits only (a Corridor extension).
                    .filter(|_| port.protocol.is_meta() || port.protocol.is_http()),
                authz: authz.as_ref(),
                faults: fault::injects_faults(
                    port.protocol.is_meta(),
                    meta_routing.get(key).map(|(_, mr)| *mr),
                    routing.get(key).map(|(_, vs)| *vs),
                ),
            };
            let redis_proxy = port
                .protocol
                .is_redis()
                .then(|| redis::proxy(&ctx, &redis_index, info, port));
            listeners.push(listener::build(info, port, bind, &policies, redis_proxy));
            if port.protocol.is_http() {
                routes.push(route::build(&ctx, info, port, routing.get(key).copied()));
            } else if port.protocol.is_meta() {
                let how = match (meta_routing.get(key), routing.get(key)) {
                    (Some((k, mr)), _) => meta::MetaRouting::Router(k, mr),
                    (None, Some((k, vs))) => meta::MetaRouting::Virtual(k, vs),
                    (None, None) => meta::MetaRouting::Default,
                };
                meta_routes.push(meta::build(&ctx, info, port, how));
            }
        }
    }

    let name_table = names::build(store, &opts.cluster_domain, &placements);

    let mut snapshot = Snapshot::default();
    for (url, resources) in [
        (type_url::LISTENER, listeners),
        (type_url::ROUTE, routes),
        (type_url::CLUSTER, clusters),
        (type_url::ENDPOINT, endpoints),
        (type_url::META_ROUTE, meta_routes),
        (type_url::NAME_TABLE, vec![name_table]),
        (
            type_url::WORKLOAD,
            workload::build(store, &opts.trust_domain),
        ),
    ] {
        snapshot
            .types
            .insert(url.to_string(), TypeSnapshot::from_resources(resources));
    }
    snapshot
}

/// Gateway address of each meshed service that has one, as the translator assigns them
/// (for logs and the umbrella binary's hints). In cluster mode it is the IPv4 ClusterIP of
/// the service's address Service; a service whose address Service is missing, incomplete
/// or IPv6-only is left out.
pub fn gateway_addresses(store: &Store, opts: &TranslateOptions) -> BTreeMap<ObjectKey, Ipv4Addr> {
    placement::place(store, opts, &meshed_services(store, opts))
        .into_iter()
        .filter_map(|(key, p)| {
            let v4 = p.dns.iter().find_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })?;
            Some((key, v4))
        })
        .collect()
}

// === helpers shared by the builders ===

/// `ConfigSource { ads {}, resource_api_version: V3 }`.
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// A protobuf Duration.
pub(crate) fn pb_duration(d: Duration) -> pb::Duration {
    pb::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A value of Corridor's metadata.
#[derive(Debug, Clone)]
pub(crate) enum MetaValue {
    Str(String),
    Num(f64),
}

/// Builds `filter_metadata["corridor"]` and its canonical byte form (sorted keys) for the
/// resource version, since protobuf maps encode in hash-map order.
pub(crate) fn corridor_metadata(fields: BTreeMap<&str, MetaValue>) -> (Metadata, Vec<u8>) {
    let mut canonical = Vec::new();
    let mut st = Struct::default();
    for (k, v) in fields {
        canonical.extend_from_slice(k.as_bytes());
        canonical.push(0);
        let kind = match v {
            MetaValue::Str(s) => {
                canonical.extend_from_slice(s.as_bytes());
                ValueKind::StringValue(s)
            }
            MetaValue::Num(n) => {
                canonical.extend_from_slice(&n.to_le_bytes());
                ValueKind::NumberValue(n)
            }
        };
        canonical.push(0);
        st.fields
            .insert(k.to_string(), pb::Value { kind: Some(kind) });
    }
    let mut meta = Metadata::default();
    meta.filter_metadata.insert(METADATA_KEY.to_string(), st);
    (meta, canonical)
}
