//! DestinationRule parse and check tests, with the examples of Istio's documentation.

use super::super::{ConsistentHashLb, LoadBalancerSettings, MagLev, VERSIONS};
use super::*;

const DR: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 2s }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRetries: 3 }
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
    trafficPolicy: { loadBalancer: { simple: RANDOM } }
"#;

#[test]
fn destination_rule_parses_in_every_version() {
    for v in VERSIONS {
        let dr: DestinationRule = serde_yaml_ng::from_str(&DR.replace("VERSION", v)).unwrap();
        assert_eq!(dr.spec.host, "reviews.default.svc.cluster.local");
        let tp = dr.spec.traffic_policy.as_ref().unwrap();
        assert_eq!(
            tp.load_balancer.as_ref().unwrap().simple.as_deref(),
            Some("LEAST_REQUEST")
        );
        let pool = tp.connection_pool.as_ref().unwrap();
        let tcp = pool.tcp.as_ref().unwrap();
        assert_eq!(tcp.max_connections, Some(100));
        assert_eq!(tcp.connect_timeout.as_deref(), Some("2s"));
        let http = pool.http.as_ref().unwrap();
        assert_eq!(http.http1_max_pending_requests, Some(10));
        assert_eq!(http.http2_max_requests, Some(1000));
        assert_eq!(http.max_retries, Some(3));
        assert_eq!(dr.spec.subsets[1].labels["version"], "v2");
        assert!(dr.spec.subsets[1].traffic_policy.is_some());
    }
}

// === outlier detection, hashing, locality, port-level (DestinationRule) ===

/// Istio's documented DestinationRule examples for these fields, merged into one rule.
const RESILIENCE: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: DestinationRule
metadata: { name: reviews-cb-policy }
spec:
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 100 }
      http: { http2MaxRequests: 1000, maxRequestsPerConnection: 10 }
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 3
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 50
      minHealthPercent: 30
    loadBalancer:
      consistentHash:
        httpCookie: { name: user, ttl: 0s, path: / }
        ringHash: { minimumRingSize: 1024 }
    portLevelSettings:
    - port: { number: 80 }
      loadBalancer: { simple: LEAST_REQUEST }
      outlierDetection: { consecutiveGatewayErrors: 5, interval: 1s, baseEjectionTime: 1m }
    - port: { number: 9080 }
      loadBalancer:
        consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } }
  subsets:
  - name: testversion
    labels: { version: v3 }
    trafficPolicy:
      loadBalancer:
        localityLbSetting:
          enabled: true
          distribute:
          - from: us-west/zone1/*
            to: { "us-west/zone1/*": 80, "us-west/zone2/*": 20 }
  - name: failover
    labels: { version: v4 }
    trafficPolicy:
      loadBalancer:
        consistentHash: { httpHeaderName: x-user }
        localityLbSetting:
          enabled: true
          failover: [ { from: us-east, to: eu-west }, { from: us-west, to: us-east } ]
"#;

fn resilience(version: &str) -> DestinationRule {
    serde_yaml_ng::from_str(&RESILIENCE.replace("VERSION", version)).unwrap()
}

#[test]
fn resilience_settings_parse_in_every_version() {
    for v in VERSIONS {
        let dr = resilience(v);
        let tp = dr.spec.traffic_policy.as_ref().unwrap();
        let o = tp.outlier_detection.as_ref().unwrap();
        assert_eq!(
            (
                o.consecutive_5xx_errors,
                o.consecutive_gateway_errors,
                o.interval.as_deref(),
                o.base_ejection_time.as_deref()
            ),
            (Some(7), Some(3), Some("5m"), Some("15m"))
        );
        assert_eq!(
            (o.max_ejection_percent, o.min_health_percent),
            (Some(50), Some(30))
        );
        let http = tp.connection_pool.as_ref().unwrap().http.as_ref().unwrap();
        assert_eq!(http.max_requests_per_connection, Some(10));
        let hash = tp
            .load_balancer
            .as_ref()
            .unwrap()
            .consistent_hash
            .as_ref()
            .unwrap();
        let cookie = hash.http_cookie.as_ref().unwrap();
        assert_eq!(
            (
                cookie.name.as_str(),
                cookie.ttl.as_deref(),
                cookie.path.as_deref()
            ),
            ("user", Some("0s"), Some("/"))
        );
        assert_eq!(
            hash.ring_hash.as_ref().unwrap().minimum_ring_size,
            Some(1024)
        );
        let ports = &tp.port_level_settings;
        assert_eq!(ports[0].port.as_ref().unwrap().number, Some(80));
        assert_eq!(
            ports[0]
                .outlier_detection
                .as_ref()
                .unwrap()
                .consecutive_gateway_errors,
            Some(5)
        );
        let maglev = ports[1]
            .load_balancer
            .as_ref()
            .unwrap()
            .consistent_hash
            .as_ref()
            .unwrap();
        assert_eq!(
            (
                maglev.use_source_ip,
                maglev.maglev.as_ref().unwrap().table_size
            ),
            (Some(true), Some(65537))
        );
        let locality = |i: usize| {
            dr.spec.subsets[i]
                .traffic_policy
                .as_ref()
                .unwrap()
                .load_balancer
                .as_ref()
                .unwrap()
                .locality_lb_setting
                .clone()
                .unwrap()
        };
        let distribute = locality(0);
        assert_eq!(distribute.enabled, Some(true));
        assert_eq!(distribute.distribute[0].to["us-west/zone2/*"], 20);
        let failover = locality(1);
        assert_eq!(
            (
                failover.failover[1].from.as_str(),
                failover.failover[1].to.as_str()
            ),
            ("us-west", "us-east")
        );
        crate::translate::validate_destination_rule(&dr).unwrap();
    }
}

#[test]
fn each_resilience_mistake_is_named_by_its_field() {
    for (from, to, field) in [
        (
            "consecutive5xxErrors: 7",
            "consecutive5xxErrors: -1",
            "spec.trafficPolicy.outlierDetection.consecutive5xxErrors is negative",
        ),
        (
            "interval: 5m",
            "interval: often",
            "spec.trafficPolicy.outlierDetection.interval",
        ),
        (
            "baseEjectionTime: 15m",
            "baseEjectionTime: 0s",
            "spec.trafficPolicy.outlierDetection.baseEjectionTime \"0s\" is shorter than 1ms",
        ),
        (
            "maxEjectionPercent: 50",
            "maxEjectionPercent: 150",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent 150",
        ),
        (
            "minHealthPercent: 30",
            "minHealthPercent: -5",
            "spec.trafficPolicy.outlierDetection.minHealthPercent -5",
        ),
        (
            "maxRequestsPerConnection: 10",
            "maxRequestsPerConnection: -1",
            "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
        ),
        (
            "{ name: user, ttl: 0s, path: / }",
            "{ ttl: 0s }",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name is empty",
        ),
        (
            "ttl: 0s,",
            "ttl: forever,",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl",
        ),
        (
            "ringHash: { minimumRingSize: 1024 }",
            "ringHash: {}\n        maglev: {}",
            "spec.trafficPolicy.loadBalancer.consistentHash sets both ringHash and maglev",
        ),
        (
            "minimumRingSize: 1024",
            "minimumRingSize: 0",
            "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
        ),
        (
            "httpCookie:",
            "useSourceIp: true\n        httpCookie:",
            "spec.trafficPolicy.loadBalancer.consistentHash sets more than one of",
        ),
        (
            "      consistentHash:\n        httpCookie",
            "      simple: RANDOM\n      consistentHash:\n        httpCookie",
            "spec.trafficPolicy.loadBalancer sets both simple and consistentHash",
        ),
        (
            "tableSize: 65537",
            "tableSize: 65536",
            "spec.trafficPolicy.portLevelSettings[1].loadBalancer.consistentHash.maglev.tableSize 65536 is not a prime",
        ),
        (
            "port: { number: 9080 }",
            "port: { number: 80 }",
            "spec.trafficPolicy.portLevelSettings[1].port.number 80 has settings twice",
        ),
        (
            "port: { number: 9080 }",
            "port: {}",
            "spec.trafficPolicy.portLevelSettings[1].port.number is missing",
        ),
        (
            "{ simple: LEAST_REQUEST }",
            "{ simple: FASTEST }",
            "spec.trafficPolicy.portLevelSettings[0].loadBalancer.simple \"FASTEST\"",
        ),
        (
            "interval: 1s, baseEjectionTime: 1m",
            "interval: 1s, baseEjectionTime: 1x",
            "spec.trafficPolicy.portLevelSettings[0].outlierDetection.baseEjectionTime",
        ),
        (
            "\"us-west/zone2/*\": 20",
            "\"us-west/zone2/*\": 30",
            "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to weights add up to 110",
        ),
        (
            "to: eu-west",
            "to: us-east",
            "spec.subsets[1].trafficPolicy.loadBalancer.localityLbSetting.failover[0] fails \"us-east\" over to itself",
        ),
        (
            "failover: [",
            "distribute: [ { from: a, to: { b: 100 } } ]\n          failover: [",
            "spec.subsets[1].trafficPolicy.loadBalancer.localityLbSetting sets distribute together with failover",
        ),
    ] {
        assert!(RESILIENCE.contains(from), "{from:?} is not in the example");
        let dr: DestinationRule =
            serde_yaml_ng::from_str(&RESILIENCE.replacen(from, to, 1).replace("VERSION", "v1"))
                .unwrap();
        let reason = crate::translate::validate_destination_rule(&dr).unwrap_err();
        assert!(
            reason.starts_with(field),
            "{reason:?} should start with {field:?}"
        );
    }
}

#[test]
fn maglev_table_sizes_must_be_prime() {
    for (size, ok) in [
        (65537, true),
        (5_000_011, true),
        (2, true),
        (1, false),
        (65535, false),
        (5_000_012, false),
    ] {
        let lb = LoadBalancerSettings {
            consistent_hash: Some(ConsistentHashLb {
                maglev: Some(MagLev {
                    table_size: Some(size),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(lb.check("lb").is_ok(), ok, "{size}");
    }
}
