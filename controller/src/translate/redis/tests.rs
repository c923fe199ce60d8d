//! Redis translation and validation: from YAML objects to decoded Envoy messages.

use corridor_proto::{
    envoy::{
        config::{
            cluster::v3::{
                Cluster,
                cluster::{ClusterDiscoveryType, LbPolicy},
            },
            core::v3::{DataSource, data_source::Specifier},
            endpoint::v3::lb_endpoint::HostIdentifier,
            listener::v3::{Listener, filter::ConfigType},
        },
        extensions::{
            clusters::redis::v3::RedisClusterConfig,
            filters::network::redis_proxy::v3::{
                RedisProtocolOptions, RedisProxy,
                redis_proxy::{conn_pool_settings::ReadPolicy, redis_fault::RedisFaultType},
            },
        },
        r#type::v3::fractional_percent::DenominatorType,
    },
    type_url,
};
use prost::Message;

use super::{REDIS_CLUSTER_TYPE, REDIS_PROXY_FILTER};
use crate::{
    admission::Admission,
    resources::ObjectRef,
    store::{ObjectKey, Store, store_from_yaml},
    translate::{TranslateOptions, Validator, translate},
    xds::snapshot::Snapshot,
};

/// A cache (one Redis port), a Redis Cluster `sessions` (a Redis port and an HTTP one),
/// and a twemproxy pool `shadow` that receives mirrored writes.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: cache, namespace: shop }
spec: { ports: [ { name: redis, port: 6379 } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: cache-1, namespace: shop, labels: { kubernetes.io/service-name: cache } }
addressType: IPv4
ports: [ { name: redis, port: 6379 } ]
endpoints: [ { addresses: [10.1.0.1] }, { addresses: [10.1.0.2] } ]
---
apiVersion: v1
kind: Service
metadata: { name: sessions, namespace: shop }
spec: { ports: [ { name: tcp-redis-main, port: 7000 }, { name: http-admin, port: 8080 } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: sessions-1, namespace: shop, labels: { kubernetes.io/service-name: sessions } }
addressType: IPv4
ports: [ { name: tcp-redis-main, port: 7001 }, { name: http-admin, port: 8080 } ]
endpoints: [ { addresses: [10.2.0.1] }, { addresses: [10.2.0.2] }, { addresses: [10.2.0.3] } ]
---
apiVersion: v1
kind: Service
metadata: { name: shadow, namespace: shop }
spec: { ports: [ { name: twem, port: 22121, appProtocol: redis } ] }
"#;

const REDIS_SERVICE: &str = r#"
apiVersion: redis.aeraki.io/v1alpha1
kind: RedisService
metadata: { name: cache, namespace: shop }
spec:
  host: [cache]
  settings:
    opTimeout: 2s
    caseInsensitive: true
    readPolicy: PREFER_REPLICA
    auth: { secret: { name: cache-auth, passwordField: client-password, usernameField: client-user } }
  redis:
  - match: { key: { prefix: "session:", removePrefix: true } }
    route: { host: sessions }
    mirror: [ { route: { host: shadow.shop }, percentage: { value: 25 }, excludeReadCommands: true } ]
  - match: { key: { prefix: "user:" } }
    route: { host: cache.shop.svc.cluster.local, port: 6379 }
  faults:
  - { type: ERROR, percentage: { value: 10 }, commands: [GET] }
  - { type: DELAY, delay: 50ms }
"#;

const REDIS_DESTINATION: &str = r#"
apiVersion: redis.aeraki.io/v1alpha1
kind: RedisDestination
metadata: { name: sessions, namespace: shop }
spec:
  host: sessions.shop.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: { connectTimeout: 2s }
      redis: { mode: CLUSTER, auth: { secret: { name: sessions-auth } } }
"#;

const CACHE_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata: { name: cache-auth, namespace: shop }
stringData: { client-password: s3cret, client-user: app }
"#;

/// `upstream-pw` and a newline, as `echo upstream-pw | base64` gives it.
const SESSIONS_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata: { name: sessions-auth, namespace: shop }
data: { password: dXBzdHJlYW0tcHcK }
"#;

const CACHE: &str = "cache.shop.svc.cluster.local";
const SESSIONS: &str = "sessions.shop.svc.cluster.local";

fn yaml(parts: &[&str]) -> String {
    parts.join("\n---\n")
}

fn admitted(text: &str, admission: &mut Admission) -> Store {
    let mut store = store_from_yaml(text);
    admission.admit(
        &mut store,
        &TranslateOptions::default(),
        &|_: &ObjectRef| "test.yaml".to_string(),
    );
    store
}

fn snapshot(text: &str) -> Snapshot {
    translate(
        &admitted(text, &mut Admission::default()),
        &TranslateOptions::default(),
    )
}

fn body(s: &Snapshot, url: &str, name: &str) -> Option<Vec<u8>> {
    s.get(url)?
        .resources
        .get(name)
        .map(|r| r.body.value.clone())
}

fn redis_proxy(s: &Snapshot, listener: &str) -> RedisProxy {
    let l =
        Listener::decode(&body(s, type_url::LISTENER, listener).expect("listener")[..]).unwrap();
    let filter = &l.filter_chains[0].filters[0];
    assert_eq!(filter.name, REDIS_PROXY_FILTER);
    let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("no typed config")
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"
    );
    RedisProxy::decode(&any.value[..]).unwrap()
}

fn cluster(s: &Snapshot, name: &str) -> Cluster {
    Cluster::decode(&body(s, type_url::CLUSTER, name).expect("cluster")[..]).unwrap()
}

fn text(d: Option<&DataSource>) -> Option<&str> {
    match d?.specifier.as_ref()? {
        Specifier::InlineString(s) => Some(s),
        _ => None,
    }
}

fn auth(c: &Cluster) -> Option<RedisProtocolOptions> {
    let any = c.typed_extension_protocol_options.get(REDIS_PROXY_FILTER)?;
    Some(RedisProtocolOptions::decode(&any.value[..]).unwrap())
}

#[test]
fn a_redis_service_becomes_the_listeners_redis_proxy() {
    let s = snapshot(&yaml(&[
        SERVICES,
        REDIS_SERVICE,
        REDIS_DESTINATION,
        CACHE_SECRET,
        SESSIONS_SECRET,
    ]));
    let proxy = redis_proxy(&s, &format!("{CACHE}:6379"));
    assert_eq!(proxy.stat_prefix, format!("{CACHE}:6379"));

    let settings = proxy.settings.unwrap();
    assert_eq!(settings.op_timeout.unwrap().seconds, 2);
    assert!(settings.enable_hashtagging);
    assert!(
        settings.enable_redirection,
        "a route goes to a Redis Cluster"
    );
    assert_eq!(settings.read_policy, ReadPolicy::PreferReplica as i32);

    let routes = proxy.prefix_routes.unwrap();
    assert!(routes.case_insensitive);
    let session = &routes.routes[0];
    assert_eq!(
        (session.prefix.as_str(), session.remove_prefix),
        ("session:", true)
    );
    assert_eq!(session.cluster, format!("outbound|7000||{SESSIONS}"));
    let mirror = &session.request_mirror_policy[0];
    assert_eq!(
        mirror.cluster,
        "outbound|22121||shadow.shop.svc.cluster.local"
    );
    assert!(mirror.exclude_read_commands);
    let fraction = mirror
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!(
        (fraction.numerator, fraction.denominator),
        (250_000, DenominatorType::Million as i32)
    );
    let user = &routes.routes[1];
    assert_eq!((user.prefix.as_str(), user.remove_prefix), ("user:", false));
    assert_eq!(user.cluster, format!("outbound|6379||{CACHE}"));
    assert_eq!(
        routes.catch_all_route.unwrap().cluster,
        format!("outbound|6379||{CACHE}")
    );

    // Downstream auth, from the Secret's named fields.
    let passwords: Vec<_> = proxy
        .downstream_auth_passwords
        .iter()
        .map(|d| text(Some(d)))
        .collect();
    assert_eq!(passwords, [Some("s3cret")]);
    assert_eq!(text(proxy.downstream_auth_username.as_ref()), Some("app"));

    let error = &proxy.faults[0];
    assert_eq!(error.fault_type, RedisFaultType::Error as i32);
    assert_eq!(
        error
            .fault_enabled
            .as_ref()
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        100_000
    );
    assert_eq!(error.commands, ["GET"]);
    let delay = &proxy.faults[1];
    assert_eq!(delay.fault_type, RedisFaultType::Delay as i32);
    assert_eq!(delay.delay.unwrap().nanos, 50_000_000);
    assert_eq!(
        delay
            .fault_enabled
            .as_ref()
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        1_000_000,
        "no percentage: all"
    );
    assert!(delay.commands.is_empty());

    // It renders as Envoy's /config_dump would show it.
    let listener = &s.get(type_url::LISTENER).unwrap().resources[&format!("{CACHE}:6379")].body;
    let json = corridor_proto::json::any_to_json(listener).unwrap();
    let config = &json["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        config["prefix_routes"]["routes"][0]["prefix"], "session:",
        "{json}"
    );
}

#[test]
fn a_cluster_mode_destination_gets_envoys_redis_cluster_with_seeds_and_auth() {
    let s = snapshot(&yaml(&[
        SERVICES,
        REDIS_SERVICE,
        REDIS_DESTINATION,
        CACHE_SECRET,
        SESSIONS_SECRET,
    ]));
    let name = format!("outbound|7000||{SESSIONS}");
    let c = cluster(&s, &name);
    let Some(ClusterDiscoveryType::ClusterType(custom)) = &c.cluster_discovery_type else {
        panic!("not a custom cluster: {:?}", c.cluster_discovery_type)
    };
    assert_eq!(custom.name, REDIS_CLUSTER_TYPE);
    let config =
        RedisClusterConfig::decode(&custom.typed_config.as_ref().unwrap().value[..]).unwrap();
    assert_eq!(config.cluster_refresh_rate.unwrap().seconds, 5);
    assert_eq!(config.redirect_refresh_threshold.unwrap().value, 5);
    assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
    assert!(c.eds_cluster_config.is_none());
    assert_eq!(
        c.connect_timeout.unwrap().seconds,
        2,
        "the RedisDestination's tcp settings"
    );

    // Seeds: the service's endpoints at their target port, inside the cluster; no EDS.
    let mut seeds = Vec::new();
    for e in c
        .load_assignment
        .as_ref()
        .unwrap()
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
    {
        let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
            panic!("no endpoint")
        };
        seeds.push(format!("{:?}", ep.address));
    }
    assert_eq!(seeds.len(), 3);
    assert!(
        seeds
            .iter()
            .all(|a| a.contains("10.2.0.") && a.contains("7001")),
        "{seeds:?}"
    );
    assert!(body(&s, type_url::ENDPOINT, &name).is_none());

    // Upstream auth from the Secret's `password` (trimmed), no user.
    let options = auth(&c).expect("protocol options");
    assert_eq!(text(options.auth_password.as_ref()), Some("upstream-pw"));
    assert!(options.auth_username.is_none());

    // Its own listener follows redirections too; its HTTP port is an ordinary cluster.
    assert!(
        redis_proxy(&s, &format!("{SESSIONS}:7000"))
            .settings
            .unwrap()
            .enable_redirection
    );
    let admin = cluster(&s, &format!("outbound|8080||{SESSIONS}"));
    assert_eq!(admin.lb_policy, LbPolicy::RoundRobin as i32);
    assert!(admin.typed_extension_protocol_options.is_empty());
}

/// Addresses and unknown names are kept; a known Service's name stands for its
/// endpoints (its name would lead back to the gateway).
#[test]
fn discovery_endpoints_replace_the_seeds() {
    let rd = REDIS_DESTINATION.replace(
        "mode: CLUSTER,",
        "mode: CLUSTER, discoveryEndpoints: [\"10.9.0.1:7100\", redis-0.sessions, \"cache:6379\"],",
    );
    let s = snapshot(&yaml(&[SERVICES, &rd, SESSIONS_SECRET]));
    let c = cluster(&s, &format!("outbound|7000||{SESSIONS}"));
    let seeds: Vec<String> = c.load_assignment.unwrap().endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| format!("{:?}", e.host_identifier))
        .collect();
    assert_eq!(seeds.len(), 4, "{seeds:?}");
    assert!(
        seeds[0].contains("\"10.9.0.1\"") && seeds[0].contains("7100"),
        "{seeds:?}"
    );
    assert!(
        seeds[1].contains("\"redis-0.sessions\"") && seeds[1].contains("7000"),
        "{seeds:?}"
    );
    assert!(
        seeds[2].contains("\"10.1.0.1\"") && seeds[3].contains("\"10.1.0.2\""),
        "{seeds:?}"
    );
    assert!(seeds[2..].iter().all(|s| s.contains("6379")), "{seeds:?}");
}

#[test]
fn without_a_redis_service_a_redis_port_gets_one_catch_all_route() {
    let s = snapshot(SERVICES);
    let proxy = redis_proxy(&s, &format!("{CACHE}:6379"));
    let settings = proxy.settings.unwrap();
    assert_eq!(settings.op_timeout.unwrap().seconds, 5);
    assert!(settings.enable_hashtagging);
    assert!(!settings.enable_redirection);
    assert_eq!(settings.read_policy, ReadPolicy::Master as i32);
    let routes = proxy.prefix_routes.unwrap();
    assert!(routes.routes.is_empty());
    assert_eq!(
        routes.catch_all_route.unwrap().cluster,
        format!("outbound|6379||{CACHE}")
    );
    assert!(proxy.downstream_auth_passwords.is_empty() && proxy.faults.is_empty());

    // PROXY mode: the EDS cluster, hashed.
    let name = format!("outbound|6379||{CACHE}");
    let c = cluster(&s, &name);
    assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
    assert!(c.eds_cluster_config.is_some() && auth(&c).is_none());
    assert!(body(&s, type_url::ENDPOINT, &name).is_some());
}

#[test]
fn plain_upstream_auth_in_proxy_mode() {
    let rd = r#"
apiVersion: redis.aeraki.io/v1alpha1
kind: RedisDestination
metadata: { name: cache, namespace: shop }
spec:
  host: cache
  trafficPolicy: { connectionPool: { redis: { auth: { plain: { username: gw, password: pw } } } } }
"#;
    let s = snapshot(&yaml(&[SERVICES, rd]));
    let c = cluster(&s, &format!("outbound|6379||{CACHE}"));
    assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
    let options = auth(&c).unwrap();
    assert_eq!(
        (
            text(options.auth_username.as_ref()),
            text(options.auth_password.as_ref())
        ),
        (Some("gw"), Some("pw"))
    );
}

fn service_verdict(rs: &str, extra: &[&str]) -> Result<(), String> {
    let mut parts = vec![SERVICES, rs];
    parts.extend_from_slice(extra);
    let store = store_from_yaml(&yaml(&parts));
    let opts = TranslateOptions::default();
    let key = ObjectKey::new("shop", "cache");
    Validator::new(&store, &opts)
        .redis_service(&key, &store.redis_services[&key])
        .map(drop)
}

fn destination_verdict(rd: &str, extra: &[&str]) -> Result<(), String> {
    let mut parts = vec![SERVICES, rd];
    parts.extend_from_slice(extra);
    let store = store_from_yaml(&yaml(&parts));
    let opts = TranslateOptions::default();
    let key = ObjectKey::new("shop", "sessions");
    Validator::new(&store, &opts)
        .redis_destination(&key, &store.redis_destinations[&key])
        .map(drop)
}

#[test]
fn good_objects_are_accepted() {
    service_verdict(REDIS_SERVICE, &[CACHE_SECRET]).unwrap();
    destination_verdict(REDIS_DESTINATION, &[SESSIONS_SECRET]).unwrap();
}

#[test]
fn each_redis_service_mistake_is_named() {
    let catch_all = "  - route: { host: cache }\n";
    for (bad, reason) in [
        (
            REDIS_SERVICE.replace("route: { host: sessions }", "route: { host: nowhere }"),
            "spec.redis[0].route.host \"nowhere\" is not a known service",
        ),
        (
            REDIS_SERVICE.replace("host: [cache]", "host: []"),
            "spec.host is empty",
        ),
        (
            REDIS_SERVICE.replace("prefix: \"user:\"", "prefix: \"SESSION:\""),
            "spec.redis[1].match.key.prefix \"SESSION:\" is already the prefix of spec.redis[0]",
        ),
        (
            REDIS_SERVICE.replace("prefix: \"user:\"", "prefix: \"\""),
            "spec.redis[1].match.key.prefix is empty",
        ),
        (
            REDIS_SERVICE.replace("  faults:\n", &format!("{catch_all}{catch_all}  faults:\n")),
            "spec.redis[3] has no key match, as spec.redis[2]",
        ),
        (
            REDIS_SERVICE.replace("value: 25", "value: 125"),
            "spec.redis[0].mirror[0].percentage.value 125 is not in 0-100",
        ),
        (
            REDIS_SERVICE.replace("value: 10", "value: -1"),
            "spec.faults[0].percentage.value -1 is not in 0-100",
        ),
        (
            REDIS_SERVICE.replace("type: ERROR", "type: ABORT"),
            "spec.faults[0].type \"ABORT\" is not one of DELAY, ERROR",
        ),
        (
            REDIS_SERVICE.replace(", delay: 50ms", ""),
            "spec.faults[1] is a DELAY fault without delay",
        ),
        (
            REDIS_SERVICE.replace("readPolicy: PREFER_REPLICA", "readPolicy: NEAREST"),
            "spec.settings.readPolicy \"NEAREST\" is not one of",
        ),
        (
            REDIS_SERVICE.replace("opTimeout: 2s", "opTimeout: soon"),
            "spec.settings.opTimeout:",
        ),
        (
            REDIS_SERVICE.replace("port: 6379", "port: 6380"),
            "spec.redis[1].route.port 6380 is not a port of cache.shop.svc.cluster.local",
        ),
        (
            REDIS_SERVICE.replace(
                "route: { host: sessions }",
                "route: { host: sessions, port: 8080 }",
            ),
            "spec.redis[0].route.port 8080 of sessions.shop.svc.cluster.local is not a Redis port",
        ),
        (
            REDIS_SERVICE.replace("name: cache-auth", "name: other-auth"),
            "spec.settings.auth: secret: Secret shop/other-auth does not exist",
        ),
        (
            REDIS_SERVICE.replace("client-user }", "user }"),
            "spec.settings.auth: secret: Secret shop/cache-auth has no field \"user\"",
        ),
    ] {
        let got = service_verdict(&bad, &[CACHE_SECRET]).unwrap_err();
        assert!(
            got.starts_with(reason),
            "{got:?} should start with {reason:?}"
        );
    }
    // A host without a Redis port.
    let http = SERVICES.replace("{ name: redis, port: 6379 }", "{ name: http, port: 6379 }");
    let store = store_from_yaml(&yaml(&[&http, REDIS_SERVICE, CACHE_SECRET]));
    let key = ObjectKey::new("shop", "cache");
    let got = Validator::new(&store, &TranslateOptions::default())
        .redis_service(&key, &store.redis_services[&key])
        .unwrap_err();
    assert!(
        got.starts_with("spec.host[0] \"cache\": cache.shop.svc.cluster.local has no Redis port"),
        "{got}"
    );
}

#[test]
fn each_redis_destination_mistake_is_named() {
    for (bad, reason) in [
        (
            REDIS_DESTINATION.replace("mode: CLUSTER", "mode: SHARDED"),
            "spec.trafficPolicy.connectionPool.redis.mode \"SHARDED\" is not one of PROXY, CLUSTER",
        ),
        (
            REDIS_DESTINATION.replace("host: sessions.shop", "host: nowhere.shop"),
            "spec.host \"nowhere.shop.svc.cluster.local\" is not a known service",
        ),
        (
            REDIS_DESTINATION.replace("name: sessions-auth", "name: gone"),
            "spec.trafficPolicy.connectionPool.redis.auth: secret: Secret shop/gone does not exist",
        ),
        (
            REDIS_DESTINATION.replace(
                "name: sessions-auth }",
                "name: sessions-auth, passwordField: pw }",
            ),
            "spec.trafficPolicy.connectionPool.redis.auth: secret: Secret shop/sessions-auth has no field \"pw\"",
        ),
        (
            REDIS_DESTINATION.replace(
                "auth: { secret: { name: sessions-auth } }",
                "auth: { plain: { password: x }, secret: { name: sessions-auth } }",
            ),
            "spec.trafficPolicy.connectionPool.redis.auth: sets both plain and secret",
        ),
        (
            REDIS_DESTINATION.replace(
                "mode: CLUSTER,",
                "mode: PROXY, discoveryEndpoints: [\"10.0.0.1:7000\"],",
            ),
            "spec.trafficPolicy.connectionPool.redis.discoveryEndpoints are only used in CLUSTER mode",
        ),
        (
            REDIS_DESTINATION.replace(
                "mode: CLUSTER,",
                "mode: CLUSTER, discoveryEndpoints: [\"10.0.0.1:http\"],",
            ),
            "spec.trafficPolicy.connectionPool.redis.discoveryEndpoints[0] \"10.0.0.1:http\": port",
        ),
        (
            REDIS_DESTINATION.replace(
                "mode: CLUSTER,",
                "mode: CLUSTER, discoveryEndpoints: [\"cache:7000\"],",
            ),
            "spec.trafficPolicy.connectionPool.redis.discoveryEndpoints[0]: 7000 is not a port of cache.shop.svc.cluster.local",
        ),
        (
            REDIS_DESTINATION.replace("connectTimeout: 2s", "connectTimeout: later"),
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout:",
        ),
    ] {
        let got = destination_verdict(&bad, &[SESSIONS_SECRET]).unwrap_err();
        assert!(
            got.starts_with(reason),
            "{got:?} should start with {reason:?}"
        );
    }
    // Neither `password` nor `token` in the Secret.
    let other_key = SESSIONS_SECRET.replace("password:", "pw:");
    let got = destination_verdict(REDIS_DESTINATION, &[&other_key]).unwrap_err();
    assert!(
        got.contains("has neither field \"password\" nor \"token\""),
        "{got}"
    );
    let token = SESSIONS_SECRET.replace("password:", "token:");
    destination_verdict(REDIS_DESTINATION, &[&token]).unwrap();
}

/// Rejected for a missing Secret, accepted when it arrives, and kept with the password it
/// was accepted with when the Secret goes away again.
#[test]
fn a_secret_arriving_later_gets_the_destination_accepted() {
    let mut admission = Admission::default();
    let opts = TranslateOptions::default();
    let name = format!("outbound|7000||{SESSIONS}");

    let without = admitted(&yaml(&[SERVICES, REDIS_DESTINATION]), &mut admission);
    let rejections = admission.rejections();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(
        rejections[0].0.to_string(),
        "RedisDestination shop/sessions"
    );
    assert!(
        rejections[0]
            .1
            .contains("Secret shop/sessions-auth does not exist"),
        "{rejections:?}"
    );
    let c = cluster(&translate(&without, &opts), &name);
    assert!(
        auth(&c).is_none(),
        "never accepted: no RedisDestination in effect"
    );
    assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);

    let with = admitted(
        &yaml(&[SERVICES, REDIS_DESTINATION, SESSIONS_SECRET]),
        &mut admission,
    );
    assert!(admission.rejections().is_empty());
    let c = cluster(&translate(&with, &opts), &name);
    assert_eq!(
        text(auth(&c).unwrap().auth_password.as_ref()),
        Some("upstream-pw")
    );

    let gone = admitted(&yaml(&[SERVICES, REDIS_DESTINATION]), &mut admission);
    assert_eq!(admission.rejections().len(), 1);
    let c = cluster(&translate(&gone, &opts), &name);
    assert_eq!(
        text(auth(&c).unwrap().auth_password.as_ref()),
        Some("upstream-pw"),
        "last good version"
    );
    assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
}

#[test]
fn host_port_forms() {
    use super::parse_host_port;
    assert_eq!(
        parse_host_port("10.0.0.1:7000", 6379),
        Ok(("10.0.0.1".into(), 7000))
    );
    assert_eq!(
        parse_host_port("redis-0", 6379),
        Ok(("redis-0".into(), 6379))
    );
    assert_eq!(
        parse_host_port("[fd00::1]:7000", 6379),
        Ok(("fd00::1".into(), 7000))
    );
    assert_eq!(
        parse_host_port("fd00::1", 6379),
        Ok(("fd00::1".into(), 6379))
    );
    assert!(parse_host_port(":7000", 6379).is_err());
    assert!(parse_host_port("a:0", 6379).is_err());
    assert!(parse_host_port("[fd00::1", 6379).is_err());
}
