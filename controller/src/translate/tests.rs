//! Translator tests: from YAML objects to decoded Envoy resources.

use corridor_proto::{
    envoy::{
        config::{
            cluster::v3::Cluster,
            core::v3::{HealthStatus, address},
            endpoint::v3::{ClusterLoadAssignment, lb_endpoint::HostIdentifier},
            listener::v3::{Listener, filter::ConfigType},
            route::v3::{
                RouteConfiguration, route, route_action::ClusterSpecifier,
                route_match::PathSpecifier,
            },
        },
        extensions::filters::network::{
            http_connection_manager::v3::HttpConnectionManager, tcp_proxy::v3::TcpProxy,
        },
    },
    type_url,
};
use prost::Message;

use super::*;
use crate::{admission::Admission, resources::ObjectRef, store::store_from_yaml};

pub(crate) const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  ports:
  - { name: http, port: 9080, targetPort: 8080 }
  - { name: grpc-api, port: 9090 }
  - { name: db, port: 5432 }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-abc, namespace: default, labels: { kubernetes.io/service-name: reviews } }
addressType: IPv4
ports: [ { name: http, port: 8080 }, { name: grpc-api, port: 9090 }, { name: db, port: 5432 } ]
endpoints:
- addresses: [10.0.0.1]
  zone: zone-a
  targetRef: { kind: Pod, name: reviews-v1 }
- addresses: [10.0.0.3]
  conditions: { ready: false, terminating: true }
  zone: zone-b
  targetRef: { kind: Pod, name: reviews-v3 }
- addresses: [10.0.0.4]
  conditions: { ready: false }
  zone: zone-b
---
apiVersion: v1
kind: Pod
metadata: { name: reviews-v1, namespace: default, labels: { app: reviews, version: v1 } }
---
apiVersion: v1
kind: Pod
metadata: { name: reviews-v3, namespace: default, labels: { app: reviews, version: v3 } }
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST } }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v3, labels: { version: v3 } }
"#;

const SPLIT: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - { destination: { host: reviews, subset: v1 }, weight: 90 }
    - { destination: { host: reviews, subset: v3 }, weight: 10 }
"#;

pub(crate) const HOST: &str = "reviews.default.svc.cluster.local";

pub(crate) fn decode<M: Message + Default>(snapshot: &Snapshot, url: &str, name: &str) -> M {
    let r = snapshot
        .get(url)
        .and_then(|t| t.resources.get(name))
        .unwrap_or_else(|| panic!("{name} missing in {url}"));
    M::decode(r.body.value.as_slice()).unwrap()
}

pub(crate) fn names(snapshot: &Snapshot, url: &str) -> Vec<String> {
    snapshot
        .get(url)
        .unwrap()
        .resources
        .keys()
        .cloned()
        .collect()
}

fn admitted(yaml: &str, admission: &mut Admission) -> Store {
    let mut store = store_from_yaml(yaml);
    admission.admit(
        &mut store,
        &TranslateOptions::default(),
        &|_: &ObjectRef| "test.yaml".to_string(),
    );
    store
}

fn route_action(
    rc: &RouteConfiguration,
    i: usize,
) -> &corridor_proto::envoy::config::route::v3::RouteAction {
    match rc.virtual_hosts[0].routes[i].action.as_ref().unwrap() {
        route::Action::Route(a) => a,
        _ => panic!("not a route action"),
    }
}

#[test]
fn listeners_follow_the_contract() {
    let s = translate(&store_from_yaml(MESH), &TranslateOptions::default());
    assert_eq!(
        names(&s, type_url::LISTENER),
        vec![
            format!("{HOST}:5432"),
            format!("{HOST}:9080"),
            format!("{HOST}:9090")
        ]
    );
    let l: Listener = decode(&s, type_url::LISTENER, &format!("{HOST}:9080"));
    let corridor_proto::envoy::config::core::v3::address::Address::SocketAddress(sa) =
        l.address.unwrap().address.unwrap()
    else {
        panic!("not a socket address")
    };
    assert!(sa.address.starts_with("127.100."), "{}", sa.address);
    let meta = &l.metadata.unwrap().filter_metadata["corridor"];
    assert!(format!("{:?}", meta.fields["protocol"]).contains("http"));
    let filter = &l.filter_chains[0].filters[0];
    assert_eq!(filter.name, "envoy.filters.network.http_connection_manager");
    let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!()
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert_eq!(hcm.stat_prefix, format!("{HOST}:9080"));
    assert_eq!(hcm.http_filters[0].name, "envoy.filters.http.router");

    // The TCP port gets a tcp_proxy to its cluster.
    let l: Listener = decode(&s, type_url::LISTENER, &format!("{HOST}:5432"));
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!()
    };
    let tcp = TcpProxy::decode(any.value.as_slice()).unwrap();
    assert_eq!(format!("{:?}", tcp.cluster_specifier), format!("{:?}", Some(corridor_proto::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier::Cluster(format!("outbound|5432||{HOST}")))));
    // Routes only for HTTP-family ports.
    assert_eq!(
        names(&s, type_url::ROUTE),
        vec![format!("{HOST}:9080"), format!("{HOST}:9090")]
    );
}

#[test]
fn clusters_per_port_and_subset_with_endpoints() {
    let s = translate(&store_from_yaml(MESH), &TranslateOptions::default());
    let clusters = names(&s, type_url::CLUSTER);
    assert_eq!(clusters.len(), 9, "{clusters:?}");
    assert_eq!(names(&s, type_url::ENDPOINT), clusters);
    let c: Cluster = decode(&s, type_url::CLUSTER, &format!("outbound|9080|v1|{HOST}"));
    assert_eq!(
        c.eds_cluster_config.unwrap().service_name,
        format!("outbound|9080|v1|{HOST}")
    );
    assert_eq!(
        c.lb_policy,
        corridor_proto::envoy::config::cluster::v3::cluster::LbPolicy::LeastRequest as i32
    );
    assert!(c.typed_extension_protocol_options.is_empty());
    let panic_threshold = c.common_lb_config.and_then(|l| l.healthy_panic_threshold);
    assert_eq!(panic_threshold.map(|p| p.value), Some(0.0), "no panic mode");
    let grpc: Cluster = decode(&s, type_url::CLUSTER, &format!("outbound|9090||{HOST}"));
    assert!(
        grpc.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );

    let all: ClusterLoadAssignment =
        decode(&s, type_url::ENDPOINT, &format!("outbound|9080||{HOST}"));
    let mut seen = Vec::new();
    for loc in &all.endpoints {
        for e in &loc.lb_endpoints {
            let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!()
            };
            let addr = format!("{:?}", ep.address);
            seen.push((
                loc.locality.as_ref().map(|l| l.zone.clone()),
                addr.contains("8080"),
                e.health_status,
            ));
        }
    }
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|(_, target_port, _)| *target_port),
        "endpoints use the targetPort"
    );
    assert!(seen.contains(&(Some("zone-a".into()), true, HealthStatus::Healthy as i32)));
    assert!(seen.contains(&(Some("zone-b".into()), true, HealthStatus::Draining as i32)));
    assert!(seen.contains(&(Some("zone-b".into()), true, HealthStatus::Unhealthy as i32)));

    let v1: ClusterLoadAssignment =
        decode(&s, type_url::ENDPOINT, &format!("outbound|9080|v1|{HOST}"));
    let count: usize = v1.endpoints.iter().map(|l| l.lb_endpoints.len()).sum();
    assert_eq!(count, 1, "only the pod labelled version=v1");
}

#[test]
fn endpoint_addresses_that_are_not_ips_are_skipped() {
    // Found by fuzz/ (target `manifests`): the gateway rejected the whole assignment.
    let yaml = MESH.replace("addresses: [10.0.0.1]", "addresses: [10.0.d.1, 10.0.0.2]");
    let s = translate(&store_from_yaml(&yaml), &TranslateOptions::default());
    let cla: ClusterLoadAssignment =
        decode(&s, type_url::ENDPOINT, &format!("outbound|9080||{HOST}"));
    let mut addresses = Vec::new();
    for e in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
        let Some(HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
            panic!("not an endpoint")
        };
        let Some(address::Address::SocketAddress(sa)) =
            ep.address.as_ref().and_then(|a| a.address.as_ref())
        else {
            panic!("not a socket address")
        };
        addresses.push(sa.address.clone());
    }
    addresses.sort();
    assert_eq!(addresses, ["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
}

#[test]
fn weighted_split_replaces_the_default_route() {
    let s = translate(
        &store_from_yaml(&format!("{MESH}---{SPLIT}")),
        &TranslateOptions::default(),
    );
    let rc: RouteConfiguration = decode(&s, type_url::ROUTE, &format!("{HOST}:9080"));
    let routes = &rc.virtual_hosts[0].routes;
    assert_eq!(
        routes.len(),
        1,
        "the VirtualService route catches everything"
    );
    assert_eq!(routes[0].name, "default/reviews/0");
    let Some(ClusterSpecifier::WeightedClusters(w)) = &route_action(&rc, 0).cluster_specifier
    else {
        panic!()
    };
    let got: Vec<(String, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        got,
        vec![
            (format!("outbound|9080|v1|{HOST}"), 90),
            (format!("outbound|9080|v3|{HOST}"), 10)
        ]
    );
    let retry = route_action(&rc, 0).retry_policy.as_ref().unwrap();
    assert_eq!(
        retry.num_retries.unwrap().value,
        2,
        "Istio's default retries"
    );
    assert_eq!(retry.retry_on, super::route::DEFAULT_RETRY_ON);
}

#[test]
fn matches_timeouts_retries_and_default_route() {
    let vs = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: { end-user: { exact: jason } }
      method: { exact: POST }
      uri: { regex: "/api/.*" }
    - authority: { prefix: reviews }
      queryParams: { debug: {} }
    route:
    - destination: { host: reviews, subset: v3, port: { number: 9080 } }
    timeout: 2s
    retries: { attempts: 4, perTryTimeout: 500ms, retryOn: "5xx,503" }
    rewrite: { uri: /v3, authority: reviews-v3 }
"#;
    let s = translate(
        &store_from_yaml(&format!("{MESH}---{vs}")),
        &TranslateOptions::default(),
    );
    let rc: RouteConfiguration = decode(&s, type_url::ROUTE, &format!("{HOST}:9080"));
    let routes = &rc.virtual_hosts[0].routes;
    assert_eq!(
        routes.len(),
        3,
        "two matches of one route, then the default route"
    );
    assert_eq!(routes[0].name, "default/reviews/jason");
    let m0 = routes[0].r#match.as_ref().unwrap();
    assert!(
        matches!(&m0.path_specifier, Some(PathSpecifier::SafeRegex(r)) if r.regex == "/api/.*")
    );
    let header_names: Vec<&str> = m0.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(header_names, vec![":method", "end-user"]);
    let m1 = routes[1].r#match.as_ref().unwrap();
    assert_eq!(m1.headers[0].name, ":authority");
    assert_eq!(m1.query_parameters[0].name, "debug");
    let a = route_action(&rc, 0);
    assert!(
        matches!(&a.cluster_specifier, Some(ClusterSpecifier::Cluster(c)) if *c == format!("outbound|9080|v3|{HOST}"))
    );
    assert_eq!(a.timeout.unwrap().seconds, 2);
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 4);
    assert_eq!(retry.retry_on, "5xx,retriable-status-codes");
    assert_eq!(retry.retriable_status_codes, vec![503]);
    assert_eq!(retry.per_try_timeout.unwrap().nanos, 500_000_000);
    assert_eq!(a.prefix_rewrite, "/v3");
    assert_eq!(routes[2].name, "default");
    assert!(
        matches!(&routes[2].r#match.as_ref().unwrap().path_specifier, Some(PathSpecifier::Prefix(p)) if p == "/")
    );
    let d = route_action(&rc, 2);
    assert!(
        matches!(&d.cluster_specifier, Some(ClusterSpecifier::Cluster(c)) if *c == format!("outbound|9080||{HOST}"))
    );
}

#[test]
fn invalid_virtual_service_keeps_the_last_good_translation() {
    let mut admission = Admission::default();
    let opts = TranslateOptions::default();
    let good = translate(
        &admitted(&format!("{MESH}---{SPLIT}"), &mut admission),
        &opts,
    );

    let bad_regex = SPLIT.replace(
        "  - route:",
        "  - match: [ { uri: { regex: \"(unclosed\" } } ]\n    route:",
    );
    let negative = SPLIT.replace("weight: 10", "weight: -10");
    let unknown = SPLIT.replace("host: reviews, subset: v3", "host: nowhere");
    let no_subset = SPLIT.replace("subset: v3", "subset: v9");
    for bad in [bad_regex, negative, unknown, no_subset] {
        let mut store = store_from_yaml(&format!("{MESH}---{bad}"));
        let validator = Validator::new(&store, &opts);
        let key = ObjectKey::new("default", "reviews");
        let reason = validator
            .virtual_service(&key, &store.virtual_services[&key])
            .unwrap_err();
        assert!(!reason.is_empty());
        admission.admit(&mut store, &opts, &|_: &ObjectRef| "test.yaml".to_string());
        let after = translate(&store, &opts);
        assert!(
            after.same_content(&good),
            "rejected ({reason}) but the translation changed"
        );
    }

    // Without an earlier good version, the service falls back to its default route.
    let mut fresh = Admission::default();
    let unknown = SPLIT.replace("host: reviews, subset: v3", "host: nowhere");
    let s = translate(&admitted(&format!("{MESH}---{unknown}"), &mut fresh), &opts);
    let rc: RouteConfiguration = decode(&s, type_url::ROUTE, &format!("{HOST}:9080"));
    assert_eq!(rc.virtual_hosts[0].routes.len(), 1);
    assert_eq!(rc.virtual_hosts[0].routes[0].name, "default");
    assert_eq!(fresh.rejections().len(), 1);
}

#[test]
fn opt_outs_and_system_namespaces_are_not_meshed() {
    let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: { name: legacy, labels: { corridor.io/mesh: disabled } }
---
apiVersion: v1
kind: Service
metadata: { name: a, namespace: legacy }
spec: { ports: [ { name: http, port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: b, namespace: default, labels: { corridor.io/mesh: disabled } }
spec: { ports: [ { name: http, port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: dns, namespace: kube-system }
spec: { ports: [ { name: dns-tcp, port: 53 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: gw, namespace: corridor-system }
spec: { ports: [ { name: http, port: 80 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: c, namespace: default }
spec: { ports: [ { name: http, port: 80 } ] }
"#;
    let s = translate(&store_from_yaml(yaml), &TranslateOptions::default());
    assert_eq!(
        names(&s, type_url::LISTENER),
        vec!["c.default.svc.cluster.local:80".to_string()]
    );
}

#[test]
fn translation_is_deterministic() {
    let store = store_from_yaml(&format!("{MESH}---{SPLIT}"));
    let a = translate(&store, &TranslateOptions::default());
    let b = translate(&store, &TranslateOptions::default());
    assert!(a.same_content(&b));
    for (t, ts) in &a.types {
        for (name, r) in &ts.resources {
            assert_eq!(r.version, b.types[t].resources[name].version, "{name}");
        }
    }
    // A change to one service's endpoints changes only EDS.
    let moved = store_from_yaml(&format!("{MESH}---{SPLIT}").replace("10.0.0.1", "10.0.0.9"));
    let c = translate(&moved, &TranslateOptions::default());
    for t in [type_url::LISTENER, type_url::ROUTE, type_url::CLUSTER] {
        assert_eq!(a.types[t].version, c.types[t].version, "{t}");
    }
    assert_ne!(
        a.types[type_url::ENDPOINT].version,
        c.types[type_url::ENDPOINT].version
    );
}
