//! Redis ports: Aeraki's RedisService becomes the listener's `redis_proxy` filter (Envoy's
//! `RedisProxy`: prefix routes, mirrors, faults, downstream auth) and RedisDestination
//! shapes the clusters of the service (PROXY: consistent hashing over the endpoints;
//! CLUSTER: Envoy's `envoy.clusters.redis` seeded with the servers; upstream auth as
//! `RedisProtocolOptions`). A Redis port without a RedisService still gets a
//! `redis_proxy`, with one catch-all route to its own cluster.

#[cfg(test)]
mod tests;
mod upstream;
mod validate;

use std::{collections::BTreeMap, time::Duration};

use corridor_proto::{
    envoy::{
        config::core::v3::{DataSource, RuntimeFractionalPercent, data_source},
        extensions::filters::network::redis_proxy::v3::{
            RedisProxy,
            redis_proxy::{
                ConnPoolSettings, PrefixRoutes, RedisFault, prefix_routes::Route,
                prefix_routes::route::RequestMirrorPolicy, redis_fault::RedisFaultType,
            },
        },
        r#type::v3::{FractionalPercent, fractional_percent::DenominatorType},
    },
    google::protobuf::UInt32Value,
};

use super::{
    Context, PortInfo, ServiceInfo, cluster_name, endpoint, listener::listener_name, pb_duration,
};
use crate::{
    resources::{
        RedisDestination, RedisService,
        duration::parse_duration,
        istio::{ConnectionPoolSettings, Subset, TrafficPolicy},
        redis::{Auth, Destination, FAULT_TYPES, MODES, READ_POLICIES, RedisSettings, enum_index},
    },
    store::{ObjectKey, Store},
};

pub(super) use upstream::Upstream;
pub(super) use validate::{validate_destination, validate_service};

use upstream::{parse_host_port, seed_assignment};

/// Network filter name of Envoy's Redis proxy; also the key of its upstream protocol
/// options on a cluster.
pub const REDIS_PROXY_FILTER: &str = "envoy.filters.network.redis_proxy";
/// Cluster type of Envoy's Redis Cluster support.
pub const REDIS_CLUSTER_TYPE: &str = "envoy.clusters.redis";
/// Operation timeout when the RedisService sets none: long enough for any non-blocking
/// command, short enough that a silent server fails the client's command quickly.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Secret key of the password when the reference names none (Aeraki's default) ...
pub const DEFAULT_PASSWORD_FIELD: &str = "password";
/// ... and the key tried next, the name many Redis charts use.
pub const FALLBACK_PASSWORD_FIELD: &str = "token";
/// PROXY or CLUSTER (`RedisSettings.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Independent servers; keys spread over them by consistent hashing.
    Proxy,
    /// A Redis Cluster; slots and servers discovered from the seeds.
    Cluster,
}

/// A user name (optional) and password.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Credentials {
    pub username: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Which RedisService and RedisDestination apply to each service (the first in
/// namespace/name order, when several name the same one).
pub(super) struct Index<'a> {
    services: BTreeMap<ObjectKey, (&'a ObjectKey, &'a RedisService)>,
    destinations: BTreeMap<ObjectKey, (&'a ObjectKey, &'a RedisDestination)>,
}

impl<'a> Index<'a> {
    pub fn new(ctx: &Context<'a>) -> Self {
        let store = ctx.store;
        let resolve = |host: &str, ns: &str| store.resolve_host(host, ns, &ctx.opts.cluster_domain);
        let mut services = BTreeMap::new();
        for (key, rs) in &store.redis_services {
            for host in &rs.spec.host {
                if let Some(target) = resolve(host, &key.namespace) {
                    services.entry(target).or_insert((key, rs));
                }
            }
        }
        let mut destinations = BTreeMap::new();
        for (key, rd) in &store.redis_destinations {
            if let Some(target) = resolve(&rd.spec.host, &key.namespace) {
                destinations.entry(target).or_insert((key, rd));
            }
        }
        Index {
            services,
            destinations,
        }
    }

    /// Services RedisService routes and mirrors send commands to (their clusters must exist).
    pub fn targets(&self, ctx: &Context<'_>) -> Vec<ObjectKey> {
        let mut out = Vec::new();
        for (key, rs) in self.services.values() {
            for route in &rs.spec.redis {
                let mirrors = route.mirror.iter().filter_map(|m| m.route.as_ref());
                for d in route.route.iter().chain(mirrors) {
                    out.extend(ctx.resolve(&d.host, &key.namespace).map(|s| s.key.clone()));
                }
            }
        }
        out
    }

    fn settings(&self, service: &ObjectKey) -> Option<(&'a ObjectKey, &'a RedisSettings)> {
        let (key, rd) = self.destinations.get(service)?;
        let pool = rd.spec.traffic_policy.as_ref()?.connection_pool.as_ref()?;
        Some((*key, pool.redis.as_ref()?))
    }

    fn mode(&self, service: &ObjectKey) -> Mode {
        match self
            .settings(service)
            .and_then(|(_, s)| enum_index(s.mode.as_ref(), &MODES))
        {
            Some(1) => Mode::Cluster,
            _ => Mode::Proxy,
        }
    }

    /// The traffic policy of a Redis cluster: the DestinationRule's, with the
    /// RedisDestination's `tcp` settings (connect timeout, connection limit) over it.
    pub fn policy(
        &self,
        service: &ObjectKey,
        policy: Option<TrafficPolicy>,
    ) -> Option<TrafficPolicy> {
        let Some(tcp) = self.destinations.get(service).and_then(|(_, rd)| {
            rd.spec
                .traffic_policy
                .as_ref()?
                .connection_pool
                .as_ref()?
                .tcp
                .clone()
        }) else {
            return policy;
        };
        let mut policy = policy.unwrap_or_default();
        let pool = policy
            .connection_pool
            .get_or_insert_with(ConnectionPoolSettings::default);
        pool.tcp = Some(tcp);
        Some(policy)
    }

    /// How the gateway reaches the servers behind one cluster of a Redis port.
    pub fn upstream(
        &self,
        ctx: &Context<'_>,
        name: &str,
        info: &ServiceInfo,
        port: &PortInfo,
        subset: Option<&Subset>,
    ) -> Upstream {
        let settings = self.settings(&info.key);
        let credentials = settings
            .and_then(|(key, s)| credentials(ctx.store, &key.namespace, s.auth.as_ref()?).ok());
        let seeds = (self.mode(&info.key) == Mode::Cluster).then(|| match settings {
            Some((key, s)) if !s.discovery_endpoints.is_empty() => seed_assignment(
                ctx,
                &key.namespace,
                name,
                &s.discovery_endpoints,
                port.number,
            ),
            _ => endpoint::assignment(ctx, name, info, port, subset),
        });
        Upstream { seeds, credentials }
    }
}

/// The `redis_proxy` of one Redis port.
pub(super) fn proxy(
    ctx: &Context<'_>,
    index: &Index<'_>,
    info: &ServiceInfo,
    port: &PortInfo,
) -> RedisProxy {
    let own = cluster_name(port.number, "", &info.host);
    let found = index.services.get(&info.key).copied();
    let settings = found.and_then(|(_, rs)| rs.spec.settings.as_ref());
    let mut routes = Vec::new();
    let mut catch_all = None;
    let mut any_cluster_mode = index.mode(&info.key) == Mode::Cluster;
    if let Some((key, rs)) = found {
        let mut target = |d: &Destination| {
            let (service, cluster) = destination_cluster(ctx, &key.namespace, d, port)?;
            any_cluster_mode |= index.mode(&service) == Mode::Cluster;
            Some(cluster)
        };
        for r in &rs.spec.redis {
            let Some(cluster) = r.route.as_ref().and_then(&mut target) else {
                continue;
            };
            let request_mirror_policy = r
                .mirror
                .iter()
                .filter_map(|m| {
                    Some(RequestMirrorPolicy {
                        cluster: target(m.route.as_ref()?)?,
                        runtime_fraction: m.percentage.as_ref().map(|p| runtime_fraction(p.value)),
                        exclude_read_commands: m.exclude_read_commands,
                    })
                })
                .collect();
            let mut route = Route {
                cluster,
                request_mirror_policy,
                ..Default::default()
            };
            match r.matches.as_ref().and_then(|m| m.key.as_ref()) {
                Some(key) => {
                    route.prefix = key.prefix.clone();
                    route.remove_prefix = key.remove_prefix;
                    routes.push(route);
                }
                None => catch_all = Some(route),
            }
        }
    }
    let (downstream_auth_passwords, downstream_auth_username) = match found
        .zip(settings.and_then(|s| s.auth.as_ref()))
        .and_then(|((key, _), auth)| credentials(ctx.store, &key.namespace, auth).ok())
    {
        Some(c) => (vec![inline(&c.password)], c.username.as_deref().map(inline)),
        None => (Vec::new(), None),
    };
    let duration = |text: Option<&String>| text.and_then(|t| parse_duration(t).ok());
    RedisProxy {
        stat_prefix: listener_name(&info.host, port.number),
        settings: Some(ConnPoolSettings {
            op_timeout: Some(pb_duration(
                duration(settings.and_then(|s| s.op_timeout.as_ref()))
                    .unwrap_or(DEFAULT_OP_TIMEOUT),
            )),
            // On by default: a client's `{user}`-tagged keys stay together, as they must
            // for multi-key commands in a Redis Cluster.
            enable_hashtagging: settings.and_then(|s| s.enable_hashtagging).unwrap_or(true),
            enable_redirection: settings
                .and_then(|s| s.enable_redirection)
                .unwrap_or(any_cluster_mode),
            max_buffer_size_before_flush: settings
                .and_then(|s| s.max_buffer_size_before_flush)
                .unwrap_or(0),
            buffer_flush_timeout: duration(settings.and_then(|s| s.buffer_flush_timeout.as_ref()))
                .map(pb_duration),
            max_upstream_unknown_connections: settings
                .and_then(|s| s.max_upstream_unknown_connections)
                .map(|value| UInt32Value { value }),
            enable_command_stats: settings.is_some_and(|s| s.enable_command_stats),
            // Aeraki's ReadPolicy values are Envoy's first five, in the same order.
            read_policy: settings
                .and_then(|s| enum_index(s.read_policy.as_ref(), &READ_POLICIES))
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(0),
            ..Default::default()
        }),
        prefix_routes: Some(PrefixRoutes {
            routes,
            case_insensitive: settings.is_some_and(|s| s.case_insensitive),
            catch_all_route: Some(catch_all.unwrap_or(Route {
                cluster: own,
                ..Default::default()
            })),
        }),
        downstream_auth_passwords,
        downstream_auth_username,
        faults: found
            .iter()
            .flat_map(|(_, rs)| &rs.spec.faults)
            .map(|f| RedisFault {
                fault_type: match enum_index(f.fault_type.as_ref(), &FAULT_TYPES) {
                    Some(1) => RedisFaultType::Error,
                    _ => RedisFaultType::Delay,
                } as i32,
                // No percentage: every command the fault names.
                fault_enabled: Some(runtime_fraction(
                    f.percentage.as_ref().map_or(100.0, |p| p.value),
                )),
                delay: duration(f.delay.as_ref()).map(pb_duration),
                commands: f.commands.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

/// The service and cluster a route or mirror destination names, resolved from the
/// RedisService's namespace: the port it names, else the service's Redis port (the one
/// with the listener's number or name when it has several, else its first).
fn destination_cluster(
    ctx: &Context<'_>,
    from: &str,
    d: &Destination,
    listener: &PortInfo,
) -> Option<(ObjectKey, String)> {
    let target = ctx.resolve(&d.host, from)?;
    let port = match d.port {
        Some(n) => target.port(u16::try_from(n).ok()?)?,
        None => redis_port(target, listener)?,
    };
    Some((
        target.key.clone(),
        cluster_name(port.number, "", &target.host),
    ))
}

fn redis_port<'s>(target: &'s ServiceInfo, listener: &PortInfo) -> Option<&'s PortInfo> {
    let mut redis = target.ports.iter().filter(|p| p.protocol.is_redis());
    let first = redis.clone().next()?;
    Some(
        redis
            .clone()
            .find(|p| p.number == listener.number)
            .or_else(|| redis.find(|p| p.name.is_some() && p.name == listener.name))
            .unwrap_or(first),
    )
}

/// The credentials an `auth` names: its plain values, or its Secret's fields (in
/// `namespace`). The error says what is missing, without the field path.
pub(super) fn credentials(
    store: &Store,
    namespace: &str,
    auth: &Auth,
) -> Result<Credentials, String> {
    match (&auth.plain, &auth.secret) {
        (Some(_), Some(_)) => Err("sets both plain and secret; use one".to_string()),
        (None, None) => Err("sets neither plain nor secret".to_string()),
        (Some(plain), None) => {
            if plain.password.is_empty() {
                return Err("plain.password is empty".to_string());
            }
            Ok(Credentials {
                username: plain.username.clone().filter(|u| !u.is_empty()),
                password: plain.password.clone(),
            })
        }
        (None, Some(reference)) => {
            if reference.name.is_empty() {
                return Err("secret.name is empty".to_string());
            }
            let key = ObjectKey::new(namespace, reference.name.clone());
            let secret = store
                .secrets
                .get(&key)
                .ok_or_else(|| format!("secret: Secret {key} does not exist"))?;
            let password_field = match reference
                .password_field
                .as_deref()
                .filter(|f| !f.is_empty())
            {
                Some(field) => field,
                None if secret.has(DEFAULT_PASSWORD_FIELD) => DEFAULT_PASSWORD_FIELD,
                None if secret.has(FALLBACK_PASSWORD_FIELD) => FALLBACK_PASSWORD_FIELD,
                None => {
                    return Err(format!(
                        "secret: Secret {key} has neither field {DEFAULT_PASSWORD_FIELD:?} nor {FALLBACK_PASSWORD_FIELD:?} (or set passwordField)"
                    ));
                }
            };
            let password = secret
                .text(password_field)
                .map_err(|e| format!("secret: Secret {key} {e}"))?;
            let username = match reference
                .username_field
                .as_deref()
                .filter(|f| !f.is_empty())
            {
                Some(field) => Some(
                    secret
                        .text(field)
                        .map_err(|e| format!("secret: Secret {key} {e}"))?,
                ),
                None => None,
            };
            Ok(Credentials { username, password })
        }
    }
}

pub(super) fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    }
}

/// A percentage (0-100) in millionths, as Aeraki writes it.
fn runtime_fraction(percent: f64) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
            denominator: DenominatorType::Million as i32,
        }),
        ..Default::default()
    }
}
