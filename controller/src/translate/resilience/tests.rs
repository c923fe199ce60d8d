//! DestinationRule outlier detection, consistent hashing and locality, as clusters,
//! routes and endpoints carry them.

use corridor_proto::{
    aeraki::meta_protocol_proxy::config::route::v1alpha::RouteConfiguration as MetaRoutes,
    envoy::config::{
        cluster::v3::{
            Cluster,
            cluster::{LbConfig, LbPolicy, common_lb_config::LocalityConfigSpecifier},
        },
        endpoint::v3::ClusterLoadAssignment,
        route::v3::{RouteConfiguration, route, route_action::hash_policy::PolicySpecifier},
    },
    google::protobuf::value::Kind,
    type_url,
};
use prost::Message;

use crate::store::store_from_yaml;
use crate::translate::tests::decode;
use crate::translate::{TranslateOptions, translate};

const WEB: &str = "web.default.svc.cluster.local";

fn mesh(rule: &str, distribution: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{ name: web, namespace: default }}
spec:
  {distribution}
  ports:
  - {{ name: http, port: 80 }}
  - {{ name: http-admin, port: 81 }}
  - {{ name: dubbo, port: 20880 }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: web-1, namespace: default, labels: {{ kubernetes.io/service-name: web }} }}
addressType: IPv4
ports: [ {{ name: http, port: 80 }}, {{ name: http-admin, port: 81 }}, {{ name: dubbo, port: 20880 }} ]
endpoints:
- addresses: [10.0.0.1]
  zone: zone-a
  targetRef: {{ kind: Pod, name: web-7d9f-x1 }}
- addresses: [10.0.0.2]
  zone: zone-b
---
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-x1
  namespace: default
  labels: {{ app: web, version: v2, pod-template-hash: 7d9f }}
  ownerReferences: [ {{ apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: u, controller: true }} ]
spec: {{ serviceAccountName: web-sa, containers: [] }}
status: {{ podIP: 10.0.0.1 }}
---
apiVersion: v1
kind: Pod
metadata: {{ name: web-other, namespace: default, labels: {{ app: web }} }}
spec: {{ containers: [] }}
status: {{ podIP: 10.0.0.2 }}
{rule}"#
    )
}

const RULE: &str = r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: default }
spec:
  host: web
  trafficPolicy:
    loadBalancer:
      consistentHash: { httpHeaderName: x-user, ringHash: { minimumRingSize: 2048 } }
      localityLbSetting: { enabled: true }
    outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: 2s, interval: 1s, maxEjectionPercent: 50 }
    portLevelSettings:
    - port: { number: 81 }
      loadBalancer: { consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } } }
      outlierDetection: { consecutiveGatewayErrors: 2, consecutive5xxErrors: 0 }
"#;

fn cluster(s: &crate::xds::snapshot::Snapshot, port: u16) -> Cluster {
    decode(s, type_url::CLUSTER, &format!("outbound|{port}||{WEB}"))
}

#[test]
fn outlier_detection_is_enforced_as_istio_does() {
    let s = translate(&store_from_yaml(&mesh(RULE, "")), &TranslateOptions::default());
    let o = cluster(&s, 80).outlier_detection.unwrap();
    assert_eq!(o.consecutive_5xx.unwrap().value, 3);
    assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(o.base_ejection_time.unwrap().seconds, 2);
    assert_eq!(o.interval.unwrap().seconds, 1);
    assert_eq!(o.max_ejection_percent.unwrap().value, 50);
    assert!(o.consecutive_gateway_failure.is_none());
    // Port 81's own entry replaces the rule's outlier detection.
    let o = cluster(&s, 81).outlier_detection.unwrap();
    assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 0);
    assert_eq!(o.consecutive_gateway_failure.unwrap().value, 2);
    assert_eq!(o.enforcing_consecutive_gateway_failure.unwrap().value, 100);
    assert!(o.base_ejection_time.is_none());
}

#[test]
fn consistent_hash_sets_the_table_and_every_routes_hash_policy() {
    let s = translate(&store_from_yaml(&mesh(RULE, "")), &TranslateOptions::default());
    let ring = cluster(&s, 80);
    assert_eq!(ring.lb_policy, LbPolicy::RingHash as i32);
    let Some(LbConfig::RingHashLbConfig(r)) = ring.lb_config else {
        panic!("no ring config")
    };
    assert_eq!(r.minimum_ring_size.unwrap().value, 2048);
    let maglev = cluster(&s, 81);
    assert_eq!(maglev.lb_policy, LbPolicy::Maglev as i32);

    let rc: RouteConfiguration = decode(&s, type_url::ROUTE, &format!("{WEB}:80"));
    let route::Action::Route(a) = rc.virtual_hosts[0].routes[0].action.clone().unwrap() else {
        panic!("not a route")
    };
    let Some(PolicySpecifier::Header(h)) = a.hash_policy[0].policy_specifier.clone() else {
        panic!("{:?}", a.hash_policy)
    };
    assert_eq!(h.header_name, "x-user");
    let rc: RouteConfiguration = decode(&s, type_url::ROUTE, &format!("{WEB}:81"));
    let route::Action::Route(a) = rc.virtual_hosts[0].routes[0].action.clone().unwrap() else {
        panic!("not a route")
    };
    assert!(matches!(
        a.hash_policy[0].policy_specifier,
        Some(PolicySpecifier::ConnectionProperties(_))
    ));

    let name = format!("{WEB}:20880");
    let body = &s.get(type_url::META_ROUTE).unwrap().resources[&name].body.value;
    let meta = MetaRoutes::decode(&body[..]).unwrap();
    assert_eq!(meta.routes[0].route.as_ref().unwrap().hash_policy, ["x-user"]);
}

#[test]
fn no_rule_no_hashing_no_outlier_detection() {
    let s = translate(&store_from_yaml(&mesh("", "")), &TranslateOptions::default());
    let c = cluster(&s, 80);
    assert!(c.outlier_detection.is_none());
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin as i32);
    let zone_aware = c
        .common_lb_config
        .and_then(|l| l.locality_config_specifier)
        .is_some();
    assert!(!zone_aware);
}

fn zone_aware(s: &crate::xds::snapshot::Snapshot) -> bool {
    matches!(
        cluster(s, 80)
            .common_lb_config
            .and_then(|l| l.locality_config_specifier),
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(z))
            if z.routing_enabled.map(|p| p.value) == Some(100.0)
    )
}

#[test]
fn locality_from_the_rule_or_prefer_close() {
    let opts = TranslateOptions::default();
    assert!(zone_aware(&translate(&store_from_yaml(&mesh(RULE, "")), &opts)));
    let prefer = "trafficDistribution: PreferClose";
    assert!(zone_aware(&translate(&store_from_yaml(&mesh("", prefer)), &opts)));
    // The rule's explicit "off" wins over the Service.
    let off = RULE.replace("enabled: true", "enabled: false");
    assert!(!zone_aware(&translate(&store_from_yaml(&mesh(&off, prefer)), &opts)));
}

#[test]
fn endpoints_carry_their_workload_labels() {
    let s = translate(&store_from_yaml(&mesh("", "")), &TranslateOptions::default());
    let cla: ClusterLoadAssignment = decode(&s, type_url::ENDPOINT, &format!("outbound|80||{WEB}"));
    let field = |zone: &str, key: &str| {
        let loc = cla
            .endpoints
            .iter()
            .find(|l| l.locality.as_ref().unwrap().zone == zone)
            .unwrap();
        let md = loc.lb_endpoints[0].metadata.as_ref().unwrap();
        match &md.filter_metadata["corridor"].fields[key].kind {
            Some(Kind::StringValue(v)) => v.clone(),
            other => panic!("{other:?}"),
        }
    };
    // By targetRef, the workload named as Istio does (the Deployment).
    assert_eq!(field("zone-a", "workload"), "web");
    assert_eq!(field("zone-a", "version"), "v2");
    assert_eq!(field("zone-a", "sa"), "web-sa");
    assert_eq!(field("zone-a", "namespace"), "default");
    // By IP when the slice names no Pod.
    assert_eq!(field("zone-b", "workload"), "web-other");
    assert_eq!(field("zone-b", "app"), "web");
}
