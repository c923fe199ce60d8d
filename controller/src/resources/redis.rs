//! Serde types for Aeraki's `redis.aeraki.io/v1alpha1` API: `RedisService` (key-prefix
//! routes, mirrors, faults and downstream auth for the clients of a Redis service) and
//! `RedisDestination` (how the gateway reaches the Redis servers: PROXY or CLUSTER mode,
//! upstream auth). Field names are Aeraki's, in their JSON (camelCase) form.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{aeraki::Percent, istio::TcpSettings};

/// The Aeraki Redis API group.
pub const GROUP: &str = "redis.aeraki.io";
/// The API versions accepted for RedisService and RedisDestination.
pub const VERSIONS: [&str; 1] = ["v1alpha1"];

/// Names of `RedisService.ReadPolicy`, in enum order.
pub const READ_POLICIES: [&str; 5] = [
    "MASTER",
    "PREFER_MASTER",
    "REPLICA",
    "PREFER_REPLICA",
    "ANY",
];
/// Names of `Fault.Type`, in enum order.
pub const FAULT_TYPES: [&str; 2] = ["DELAY", "ERROR"];
/// Names of `RedisSettings.Mode`, in enum order.
pub const MODES: [&str; 2] = ["PROXY", "CLUSTER"];

/// A protobuf enum as its JSON form allows it: the value's name, or its number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnumValue {
    /// `CLUSTER`.
    Name(String),
    /// `1`.
    Number(i64),
}

impl EnumValue {
    /// The index of the value in `names` (the enum's values in order), if it is one.
    pub fn index_in(&self, names: &[&str]) -> Option<usize> {
        match self {
            EnumValue::Name(n) => names.iter().position(|v| v.eq_ignore_ascii_case(n)),
            EnumValue::Number(n) => usize::try_from(*n).ok().filter(|i| *i < names.len()),
        }
    }
}

/// Index of an optional enum field: the zero value when absent, `None` when unknown.
pub fn enum_index(value: Option<&EnumValue>, names: &[&str]) -> Option<usize> {
    value.map_or(Some(0), |v| v.index_in(names))
}

// === RedisService ===

/// `redis.aeraki.io/v1alpha1` RedisService.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisService {
    /// Object metadata (name, namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The service's Redis policy.
    #[serde(default)]
    pub spec: RedisServiceSpec,
}

/// `RedisService.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisServiceSpec {
    /// The Redis services (hosts) the policy applies to.
    #[serde(default)]
    pub host: Vec<String>,
    /// Connection settings and downstream auth.
    #[serde(default)]
    pub settings: Option<Settings>,
    /// Routes; one without a key match catches every key the others do not.
    #[serde(default)]
    pub redis: Vec<Route>,
    /// Faults injected into commands.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// `RedisService.Settings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Prefix matching ignores case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Per-operation timeout (`5s`).
    #[serde(default)]
    pub op_timeout: Option<String>,
    /// Per-command statistics per upstream cluster.
    #[serde(default)]
    pub enable_command_stats: bool,
    /// Bytes of encoded requests buffered before a flush upstream (0: flush at once).
    #[serde(default)]
    pub max_buffer_size_before_flush: Option<u32>,
    /// Longest a buffered request waits for the flush.
    #[serde(default)]
    pub buffer_flush_timeout: Option<String>,
    /// Connections to hosts learnt from redirections, per worker.
    #[serde(default)]
    pub max_upstream_unknown_connections: Option<u32>,
    /// Hash only the `{...}` part of a key.
    #[serde(default)]
    pub enable_hashtagging: Option<bool>,
    /// Follow MOVED and ASK redirections.
    #[serde(default)]
    pub enable_redirection: Option<bool>,
    /// Where reads go (`MASTER`, `PREFER_MASTER`, `REPLICA`, `PREFER_REPLICA`, `ANY`).
    #[serde(default)]
    pub read_policy: Option<EnumValue>,
    /// The password (and user) clients must AUTH with.
    #[serde(default)]
    pub auth: Option<Auth>,
}

/// `RedisService.Route`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The keys the route takes; absent (or without `key`): every key.
    #[serde(default, rename = "match")]
    pub matches: Option<RouteMatch>,
    /// Where those keys go.
    #[serde(default)]
    pub route: Option<Destination>,
    /// Where copies of the commands go.
    #[serde(default)]
    pub mirror: Vec<Mirror>,
}

/// `RedisService.RouteMatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteMatch {
    /// A key-prefix match.
    #[serde(default)]
    pub key: Option<KeyMatch>,
}

/// `RedisService.KeyMatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyMatch {
    /// The prefix keys must start with (the longest matching prefix wins).
    #[serde(default)]
    pub prefix: String,
    /// Strip the prefix from keys sent upstream.
    #[serde(default)]
    pub remove_prefix: bool,
}

/// `RedisService.Destination`: a service, and optionally which of its ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// The service (short name, `name.namespace`, or FQDN).
    #[serde(default)]
    pub host: String,
    /// Its port; absent: its Redis port (see docs/controller.md).
    #[serde(default)]
    pub port: Option<u32>,
}

/// `RedisService.Mirror`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Where the copies go.
    #[serde(default)]
    pub route: Option<Destination>,
    /// Share of commands copied (absent: all).
    #[serde(default)]
    pub percentage: Option<Percent>,
    /// Copy writes only.
    #[serde(default)]
    pub exclude_read_commands: bool,
}

/// `Fault`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `DELAY` (default) or `ERROR`.
    #[serde(default, rename = "type")]
    pub fault_type: Option<EnumValue>,
    /// Share of commands affected (absent: all).
    #[serde(default)]
    pub percentage: Option<Percent>,
    /// Delay before the command runs (or the error is returned).
    #[serde(default)]
    pub delay: Option<String>,
    /// Commands affected (absent: all but AUTH and PING).
    #[serde(default)]
    pub commands: Vec<String>,
}

// === RedisDestination ===

/// `redis.aeraki.io/v1alpha1` RedisDestination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisDestination {
    /// Object metadata (name, namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// How the servers are reached.
    #[serde(default)]
    pub spec: RedisDestinationSpec,
}

/// `RedisDestination.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisDestinationSpec {
    /// The Redis service.
    #[serde(default)]
    pub host: String,
    /// Connection settings.
    #[serde(default)]
    pub traffic_policy: Option<RedisTrafficPolicy>,
}

/// `TrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisTrafficPolicy {
    /// TCP and Redis settings.
    #[serde(default)]
    pub connection_pool: Option<RedisConnectionPool>,
}

/// `ConnectionPoolSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisConnectionPool {
    /// Istio's TCP settings (`connectTimeout`, `maxConnections`).
    #[serde(default)]
    pub tcp: Option<TcpSettings>,
    /// Mode, auth and cluster discovery.
    #[serde(default)]
    pub redis: Option<RedisSettings>,
}

/// `RedisSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisSettings {
    /// `PROXY` (default: independent servers, keys spread by consistent hashing) or
    /// `CLUSTER` (a Redis Cluster, topology discovered from the servers).
    #[serde(default)]
    pub mode: Option<EnumValue>,
    /// The password (and user) the gateway authenticates with upstream.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// CLUSTER mode: the seed servers (`host:port`, or `host` for the service's port);
    /// absent: the service's endpoints.
    #[serde(default)]
    pub discovery_endpoints: Vec<String>,
}

// === shared ===

/// `Auth`: exactly one of a Secret reference or a plain password.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// A Secret in the referring object's namespace.
    #[serde(default)]
    pub secret: Option<SecretReference>,
    /// The credentials themselves.
    #[serde(default)]
    pub plain: Option<PlainAuth>,
}

/// `SecretReference`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's name.
    #[serde(default)]
    pub name: String,
    /// Key of the password (absent: `password`, else `token`).
    #[serde(default)]
    pub password_field: Option<String>,
    /// Key of the user name (absent: no user name).
    #[serde(default)]
    pub username_field: Option<String>,
}

/// `PlainAuth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlainAuth {
    /// The password.
    #[serde(default)]
    pub password: String,
    /// The ACL user (absent: the default user).
    #[serde(default)]
    pub username: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aeraki_examples_parse() {
        let rs: RedisService = serde_yaml_ng::from_str(
            r#"
metadata: {name: redis-cluster, namespace: redis}
spec:
  host: [redis-cluster.redis.svc.cluster.local]
  settings:
    opTimeout: 2s
    readPolicy: PREFER_REPLICA
    auth: {plain: {password: "testredis123!"}}
  redis:
  - match: {key: {prefix: cluster, removePrefix: true}}
    route: {host: redis-cluster.redis.svc.cluster.local}
  - route: {host: redis-single.redis.svc.cluster.local, port: 6379}
    mirror:
    - route: {host: redis-single.redis.svc.cluster.local}
      percentage: {value: 100}
      excludeReadCommands: true
  faults:
  - {type: ERROR, percentage: {value: 50}, commands: [GET]}
"#,
        )
        .unwrap();
        let settings = rs.spec.settings.unwrap();
        assert_eq!(
            enum_index(settings.read_policy.as_ref(), &READ_POLICIES),
            Some(3)
        );
        assert_eq!(
            settings.auth.unwrap().plain.unwrap().password,
            "testredis123!"
        );
        let key = rs.spec.redis[0]
            .matches
            .as_ref()
            .unwrap()
            .key
            .as_ref()
            .unwrap();
        assert!(key.remove_prefix);
        assert_eq!(rs.spec.redis[1].route.as_ref().unwrap().port, Some(6379));
        assert!(rs.spec.redis[1].mirror[0].exclude_read_commands);
        assert_eq!(
            enum_index(rs.spec.faults[0].fault_type.as_ref(), &FAULT_TYPES),
            Some(1)
        );

        let rd: RedisDestination = serde_yaml_ng::from_str(
            r#"
metadata: {name: redis-cluster, namespace: redis}
spec:
  host: redis-cluster.redis.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 1s}
      redis:
        mode: 1
        auth: {secret: {name: redis-service-secret, passwordField: pw}}
        discoveryEndpoints: ["10.0.0.1:7000"]
"#,
        )
        .unwrap();
        let redis = rd
            .spec
            .traffic_policy
            .unwrap()
            .connection_pool
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(enum_index(redis.mode.as_ref(), &MODES), Some(1));
        assert_eq!(
            redis
                .auth
                .unwrap()
                .secret
                .unwrap()
                .password_field
                .as_deref(),
            Some("pw")
        );
        assert_eq!(redis.discovery_endpoints, ["10.0.0.1:7000"]);
    }

    #[test]
    fn enum_values_by_name_or_number() {
        assert_eq!(enum_index(None, &MODES), Some(0));
        assert_eq!(
            enum_index(Some(&EnumValue::Name("cluster".into())), &MODES),
            Some(1)
        );
        assert_eq!(
            enum_index(Some(&EnumValue::Name("SHARDED".into())), &MODES),
            None
        );
        assert_eq!(enum_index(Some(&EnumValue::Number(2)), &MODES), None);
        assert_eq!(enum_index(Some(&EnumValue::Number(-1)), &MODES), None);
    }
}
