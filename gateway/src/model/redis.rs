//! The Redis proxy's configuration, from Envoy's `RedisProxy` listener filter
//! (`envoy.filters.network.redis_proxy`) and the Redis options of its clusters: key-prefix
//! routes with mirrors, the catch-all route, connection pool settings, downstream
//! passwords and faults.

use std::sync::Arc;
use std::time::Duration;

use corridor_proto::envoy::config::core::v3::{
    DataSource, RuntimeFractionalPercent, data_source::Specifier,
};
use corridor_proto::envoy::extensions::filters::network::redis_proxy::v3::{
    RedisProtocolOptions, RedisProxy,
    redis_proxy::{
        ConnPoolSettings, RedisFault, conn_pool_settings::ReadPolicy as PbReadPolicy,
        prefix_routes::Route, redis_fault::RedisFaultType,
    },
};
use corridor_proto::envoy::r#type::v3::fractional_percent::DenominatorType;

use super::{ModelError, duration};

/// Network filter name of Envoy's Redis proxy.
pub const REDIS_PROXY_FILTER: &str = "envoy.filters.network.redis_proxy";
/// Cluster type of a Redis Cluster (slots discovered from the seeds).
pub const REDIS_CLUSTER_TYPE: &str = "envoy.clusters.redis";
/// An operation's timeout when the filter sets none.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated `RedisProxy`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisProxyConfig {
    /// Key-prefix routes, longest prefix first.
    pub routes: Vec<PrefixRoute>,
    /// Prefixes compare without case.
    pub case_insensitive: bool,
    /// Where keys no prefix matches go; without one they get an error.
    pub catch_all: Option<PrefixRoute>,
    /// How long one command may wait for its upstream reply.
    pub op_timeout: Duration,
    /// Hash only the `{tag}` of keys that have one (PROXY mode), so related keys meet.
    pub hashtagging: bool,
    /// Follow MOVED/ASK redirections.
    pub redirection: bool,
    /// Where reads may go when replicas exist.
    pub read_policy: ReadPolicy,
    /// Passwords a client may AUTH with; empty: no AUTH needed.
    pub passwords: Vec<String>,
    /// The username AUTH must name, when set.
    pub username: Option<String>,
    /// Injected faults, in order; the first whose commands include the command applies.
    pub faults: Vec<Fault>,
}

/// A key-prefix route.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixRoute {
    /// The prefix (lowercased when the routes are case-insensitive).
    pub prefix: String,
    /// Strip the prefix from keys before sending them on.
    pub remove_prefix: bool,
    /// The upstream cluster.
    pub cluster: Arc<str>,
    /// Clusters that get copies of the route's commands.
    pub mirrors: Vec<RedisMirror>,
}

/// A mirror of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisMirror {
    /// The cluster.
    pub cluster: Arc<str>,
    /// Share of commands copied, 0.0–1.0.
    pub fraction: f64,
    /// Copy writes only.
    pub exclude_read_commands: bool,
}

/// Where reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The primary only.
    Master,
    /// The primary, a replica when it is unavailable.
    PreferMaster,
    /// Replicas only.
    Replica,
    /// A replica, the primary when none is available.
    PreferReplica,
    /// Any node.
    Any,
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// Share of matching commands it hits, 0.0–1.0.
    pub fraction: f64,
    /// Uppercased command names it applies to; empty: every command.
    pub commands: Vec<String>,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Holds the command this long before handling it.
    Delay(Duration),
    /// Answers `-ERR Fault injected` instead of handling it.
    Error,
}

/// How a Redis cluster's endpoints are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// Independent servers: each key is hashed onto one (consistent hashing).
    #[default]
    Proxy,
    /// A Redis Cluster: the endpoints are seeds, slots are discovered from them.
    Cluster,
}

/// The Redis options of an upstream cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisUpstream {
    /// PROXY or CLUSTER.
    pub mode: RedisMode,
    /// AUTH username for upstream connections.
    pub username: Option<String>,
    /// AUTH password for upstream connections.
    pub password: Option<String>,
}

impl RedisUpstream {
    /// The options from a cluster's `RedisProtocolOptions` (upstream auth), in `mode`.
    pub fn new(
        mode: RedisMode,
        options: Option<&RedisProtocolOptions>,
    ) -> Result<Self, ModelError> {
        let Some(o) = options else {
            return Ok(RedisUpstream {
                mode,
                ..Default::default()
            });
        };
        Ok(RedisUpstream {
            mode,
            username: o
                .auth_username
                .as_ref()
                .map(|d| data(d, "auth_username"))
                .transpose()?
                .filter(|s| !s.is_empty()),
            password: o
                .auth_password
                .as_ref()
                .map(|d| data(d, "auth_password"))
                .transpose()?
                .filter(|s| !s.is_empty()),
        })
    }
}

impl TryFrom<&RedisProxy> for RedisProxyConfig {
    type Error = ModelError;

    fn try_from(p: &RedisProxy) -> Result<Self, ModelError> {
        let default_settings = ConnPoolSettings::default();
        let settings = p.settings.as_ref().unwrap_or(&default_settings);
        let routes_pb = p.prefix_routes.clone().unwrap_or_default();
        let case_insensitive = routes_pb.case_insensitive;
        let mut routes = routes_pb
            .routes
            .iter()
            .map(|r| route(r, case_insensitive))
            .collect::<Result<Vec<_>, _>>()?;
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let catch_all = routes_pb
            .catch_all_route
            .as_ref()
            .map(|r| route(r, case_insensitive))
            .transpose()?;
        if routes.is_empty() && catch_all.is_none() {
            return Err(ModelError::Missing(
                "prefix_routes (no route and no catch_all_route)",
            ));
        }
        #[allow(deprecated)]
        let legacy = p.downstream_auth_password.iter();
        let passwords = p
            .downstream_auth_passwords
            .iter()
            .chain(legacy)
            .map(|d| data(d, "downstream_auth_passwords"))
            .collect::<Result<Vec<_>, _>>()?;
        let read_policy = match PbReadPolicy::try_from(settings.read_policy) {
            Ok(PbReadPolicy::Master) => ReadPolicy::Master,
            Ok(PbReadPolicy::PreferMaster) => ReadPolicy::PreferMaster,
            Ok(PbReadPolicy::Replica) => ReadPolicy::Replica,
            Ok(PbReadPolicy::PreferReplica) => ReadPolicy::PreferReplica,
            Ok(PbReadPolicy::Any) => ReadPolicy::Any,
            Ok(other) => {
                return Err(ModelError::Unsupported(format!(
                    "read_policy {}",
                    other.as_str_name()
                )));
            }
            Err(_) => {
                return Err(ModelError::invalid(
                    "read_policy",
                    settings.read_policy.to_string(),
                ));
            }
        };
        Ok(RedisProxyConfig {
            routes,
            case_insensitive,
            catch_all,
            op_timeout: match &settings.op_timeout {
                Some(d) => Some(duration(d, "settings.op_timeout")?)
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_OP_TIMEOUT),
                None => DEFAULT_OP_TIMEOUT,
            },
            hashtagging: settings.enable_hashtagging,
            redirection: settings.enable_redirection,
            read_policy,
            passwords,
            username: p
                .downstream_auth_username
                .as_ref()
                .map(|d| data(d, "downstream_auth_username"))
                .transpose()?,
            faults: p.faults.iter().map(fault).collect::<Result<_, _>>()?,
        })
    }
}

impl RedisProxyConfig {
    /// The route for `key`: the longest matching prefix, else the catch-all.
    pub fn route_for(&self, key: &[u8]) -> Option<&PrefixRoute> {
        let matches = |r: &&PrefixRoute| {
            let p = r.prefix.as_bytes();
            key.len() >= p.len()
                && if self.case_insensitive {
                    key[..p.len()].eq_ignore_ascii_case(p)
                } else {
                    &key[..p.len()] == p
                }
        };
        self.routes.iter().find(matches).or(self.catch_all.as_ref())
    }
}

fn route(r: &Route, case_insensitive: bool) -> Result<PrefixRoute, ModelError> {
    if r.cluster.is_empty() {
        return Err(ModelError::Missing("prefix_routes.routes.cluster"));
    }
    let mirrors = r
        .request_mirror_policy
        .iter()
        .map(|m| {
            if m.cluster.is_empty() {
                return Err(ModelError::Missing("request_mirror_policy.cluster"));
            }
            Ok(RedisMirror {
                cluster: Arc::from(m.cluster.as_str()),
                fraction: fraction(m.runtime_fraction.as_ref()),
                exclude_read_commands: m.exclude_read_commands,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(PrefixRoute {
        prefix: if case_insensitive {
            r.prefix.to_ascii_lowercase()
        } else {
            r.prefix.clone()
        },
        remove_prefix: r.remove_prefix,
        cluster: Arc::from(r.cluster.as_str()),
        mirrors,
    })
}

fn fault(f: &RedisFault) -> Result<Fault, ModelError> {
    let kind = match RedisFaultType::try_from(f.fault_type) {
        Ok(RedisFaultType::Delay) => {
            let d = f
                .delay
                .as_ref()
                .ok_or(ModelError::Missing("faults.delay"))?;
            FaultKind::Delay(duration(d, "faults.delay")?)
        }
        Ok(RedisFaultType::Error) => FaultKind::Error,
        Err(_) => {
            return Err(ModelError::invalid(
                "faults.fault_type",
                f.fault_type.to_string(),
            ));
        }
    };
    Ok(Fault {
        kind,
        fraction: fraction(f.fault_enabled.as_ref()),
        commands: f.commands.iter().map(|c| c.to_ascii_uppercase()).collect(),
    })
}

/// A runtime fraction's default share; absent: everything.
fn fraction(f: Option<&RuntimeFractionalPercent>) -> f64 {
    let Some(p) = f.and_then(|f| f.default_value.as_ref()) else {
        return 1.0;
    };
    let denominator = match DenominatorType::try_from(p.denominator) {
        Ok(DenominatorType::TenThousand) => 10_000.0,
        Ok(DenominatorType::Million) => 1_000_000.0,
        _ => 100.0,
    };
    (f64::from(p.numerator) / denominator).clamp(0.0, 1.0)
}

/// An inline data source as text (files and environment variables are not read).
fn data(d: &DataSource, field: &'static str) -> Result<String, ModelError> {
    match &d.specifier {
        Some(Specifier::InlineString(s)) => Ok(s.clone()),
        Some(Specifier::InlineBytes(b)) => {
            String::from_utf8(b.clone()).map_err(|_| ModelError::invalid(field, "not UTF-8"))
        }
        Some(_) => Err(ModelError::Unsupported(format!(
            "{field}: only inline data sources"
        ))),
        None => Err(ModelError::Missing(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_proto::envoy::extensions::filters::network::redis_proxy::v3::redis_proxy::PrefixRoutes;

    fn pb_route(prefix: &str, cluster: &str) -> Route {
        Route {
            prefix: prefix.into(),
            cluster: cluster.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_the_catch_all_takes_the_rest() {
        let p = RedisProxy {
            prefix_routes: Some(PrefixRoutes {
                routes: vec![pb_route("user:", "a"), pb_route("user:vip:", "b")],
                case_insensitive: true,
                catch_all_route: Some(pb_route("", "c")),
            }),
            ..Default::default()
        };
        let c = RedisProxyConfig::try_from(&p).unwrap();
        assert_eq!(&*c.route_for(b"USER:vip:1").unwrap().cluster, "b");
        assert_eq!(&*c.route_for(b"user:2").unwrap().cluster, "a");
        assert_eq!(&*c.route_for(b"other").unwrap().cluster, "c");
        assert_eq!(c.op_timeout, DEFAULT_OP_TIMEOUT);
    }

    #[test]
    fn a_proxy_without_any_route_is_refused() {
        assert!(RedisProxyConfig::try_from(&RedisProxy::default()).is_err());
    }
}
