//! Parse and check tests, with the examples of Istio's documentation.

use super::*;

const VS: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: { end-user: { exact: jason } }
      uri: { prefix: /api }
      method: { exact: GET }
      authority: { regex: "rev.*" }
      queryParams: { debug: { exact: "1" } }
    route:
    - destination: { host: reviews, subset: v2, port: { number: 9080 } }
    timeout: 1.5s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure" }
    rewrite: { uri: /v2, authority: reviews-v2 }
  - route:
    - destination: { host: reviews, subset: v1 }
      weight: 90
    - destination: { host: reviews, subset: v3 }
      weight: 10
"#;

#[test]
fn virtual_service_parses_in_every_version() {
    for v in VERSIONS {
        let vs: VirtualService = serde_yaml_ng::from_str(&VS.replace("VERSION", v)).unwrap();
        assert_eq!(vs.spec.hosts, vec!["reviews"]);
        let r0 = &vs.spec.http[0];
        assert_eq!(r0.name.as_deref(), Some("jason"));
        let m = &r0.matches[0];
        assert_eq!(m.headers["end-user"].exact.as_deref(), Some("jason"));
        assert_eq!(m.uri.as_ref().unwrap().prefix.as_deref(), Some("/api"));
        assert_eq!(m.method.as_ref().unwrap().exact.as_deref(), Some("GET"));
        assert_eq!(
            m.authority.as_ref().unwrap().regex.as_deref(),
            Some("rev.*")
        );
        assert_eq!(m.query_params["debug"].exact.as_deref(), Some("1"));
        assert_eq!(r0.route[0].destination.subset.as_deref(), Some("v2"));
        assert_eq!(
            r0.route[0].destination.port.as_ref().unwrap().number,
            Some(9080)
        );
        assert_eq!(r0.timeout.as_deref(), Some("1.5s"));
        let retries = r0.retries.as_ref().unwrap();
        assert_eq!(retries.attempts, 3);
        assert_eq!(retries.per_try_timeout.as_deref(), Some("500ms"));
        assert_eq!(retries.retry_on.as_deref(), Some("5xx,connect-failure"));
        assert_eq!(r0.rewrite.as_ref().unwrap().uri.as_deref(), Some("/v2"));
        assert_eq!(vs.spec.http[1].route[1].weight, Some(10));
    }
}

// === fault and mirror (VirtualService) ===

/// Istio's documented fault, mirror and mirrors examples, in one route each.
const POLICIES: &str = r#"
apiVersion: networking.istio.io/VERSION
kind: VirtualService
metadata: { name: ratings, namespace: default }
spec:
  hosts: [ratings]
  http:
  - fault:
      delay:
        percentage: { value: 0.1 }
        fixedDelay: 5s
    route:
    - destination: { host: ratings, subset: v1 }
  - fault:
      abort:
        percentage: { value: 0.1 }
        httpStatus: 400
    route:
    - destination: { host: ratings, subset: v1 }
  - fault:
      abort: { grpcStatus: UNAVAILABLE, percentage: { value: 20 } }
    route:
    - destination: { host: ratings }
  - route:
    - destination: { host: httpbin, subset: v1 }
      weight: 100
    mirror: { host: httpbin, subset: v2 }
    mirrorPercentage: { value: 100.0 }
  - route:
    - destination: { host: httpbin, subset: v1 }
    mirrors:
    - destination: { host: httpbin, subset: v2 }
      percentage: { value: 50 }
    - destination: { host: httpbin, subset: v3 }
"#;

fn policies(version: &str) -> VirtualService {
    serde_yaml_ng::from_str(&POLICIES.replace("VERSION", version)).unwrap()
}

#[test]
fn faults_and_mirrors_parse_in_every_version() {
    for v in VERSIONS {
        let vs = policies(v);
        let http = &vs.spec.http;
        let delay = http[0].fault.as_ref().unwrap().delay.as_ref().unwrap();
        assert_eq!(delay.fixed_delay.as_deref(), Some("5s"));
        assert_eq!(delay.percent_of_requests(), 0.1);
        let abort = http[1].fault.as_ref().unwrap().abort.as_ref().unwrap();
        assert_eq!(
            (abort.http_status, abort.percent_of_requests()),
            (Some(400), 0.1)
        );
        let grpc = http[2].fault.as_ref().unwrap().abort.as_ref().unwrap();
        assert_eq!((grpc.grpc_code(), grpc.http_status), (Some(14), None));
        let mirror: Vec<(&str, Option<&str>, f64)> = http[3]
            .mirror_targets()
            .into_iter()
            .map(|(d, p)| (d.host.as_str(), d.subset.as_deref(), p))
            .collect();
        assert_eq!(mirror, [("httpbin", Some("v2"), 100.0)]);
        let mirrors: Vec<(Option<&str>, f64)> = http[4]
            .mirror_targets()
            .into_iter()
            .map(|(d, p)| (d.subset.as_deref(), p))
            .collect();
        assert_eq!(mirrors, [(Some("v2"), 50.0), (Some("v3"), 100.0)]);
        for (i, r) in http.iter().enumerate() {
            r.check_policies(&format!("spec.http[{i}]")).unwrap();
        }
    }
}

/// Istio's rule: a fault without a percentage touches no request (the deprecated integer
/// `percent` counts when `percentage` is absent).
#[test]
fn a_fault_without_a_percentage_applies_to_no_request() {
    let f: HttpFaultInjection =
        serde_yaml_ng::from_str("{ delay: { fixedDelay: 1s }, abort: { httpStatus: 503 } }")
            .unwrap();
    assert_eq!(f.delay.as_ref().unwrap().percent_of_requests(), 0.0);
    assert_eq!(f.abort.as_ref().unwrap().percent_of_requests(), 0.0);
    let old: FaultDelay = serde_yaml_ng::from_str("{ fixedDelay: 1s, percent: 30 }").unwrap();
    assert_eq!(old.percent_of_requests(), 30.0);
}

#[test]
fn each_fault_or_mirror_mistake_is_named_by_its_field() {
    let vs = policies("v1");
    let route = |i: usize, edit: &dyn Fn(&mut HttpRoute)| {
        let mut r = vs.spec.http[i].clone();
        edit(&mut r);
        r.check_policies("spec.http[0]").unwrap_err()
    };
    for (reason, field) in [
        (
            route(0, &|r| r.fault = Some(HttpFaultInjection::default())),
            "spec.http[0].fault sets neither delay nor abort",
        ),
        (
            route(0, &|r| {
                r.fault
                    .as_mut()
                    .unwrap()
                    .delay
                    .as_mut()
                    .unwrap()
                    .fixed_delay = Some("soon".into())
            }),
            "spec.http[0].fault.delay.fixedDelay",
        ),
        (
            route(0, &|r| {
                r.fault
                    .as_mut()
                    .unwrap()
                    .delay
                    .as_mut()
                    .unwrap()
                    .fixed_delay = None
            }),
            "spec.http[0].fault.delay.fixedDelay is missing",
        ),
        (
            route(0, &|r| {
                r.fault.as_mut().unwrap().delay.as_mut().unwrap().percentage =
                    Some(Percent { value: 101.0 })
            }),
            "spec.http[0].fault.delay.percentage.value 101",
        ),
        (
            route(1, &|r| {
                r.fault
                    .as_mut()
                    .unwrap()
                    .abort
                    .as_mut()
                    .unwrap()
                    .http_status = Some(700)
            }),
            "spec.http[0].fault.abort.httpStatus 700",
        ),
        (
            route(1, &|r| {
                r.fault
                    .as_mut()
                    .unwrap()
                    .abort
                    .as_mut()
                    .unwrap()
                    .grpc_status = Some("UNAVAILABLE".into())
            }),
            "spec.http[0].fault.abort sets both httpStatus and grpcStatus",
        ),
        (
            route(2, &|r| {
                r.fault
                    .as_mut()
                    .unwrap()
                    .abort
                    .as_mut()
                    .unwrap()
                    .grpc_status = Some("14".into())
            }),
            "spec.http[0].fault.abort.grpcStatus \"14\"",
        ),
        (
            route(3, &|r| r.mirrors = vs.spec.http[4].mirrors.clone()),
            "spec.http[0] sets both mirror and mirrors",
        ),
        (
            route(3, &|r| r.mirror_percentage = Some(Percent { value: -1.0 })),
            "spec.http[0].mirrorPercentage.value -1",
        ),
        (
            route(4, &|r| {
                r.mirrors[1].percentage = Some(Percent { value: f64::NAN })
            }),
            "spec.http[0].mirrors[1].percentage.value",
        ),
    ] {
        assert!(
            reason.starts_with(field),
            "{reason:?} should start with {field:?}"
        );
    }
}

/// Through admission: the fault's reason names the route, and a mirror must point at a
/// known service like any destination.
#[test]
fn the_virtual_service_validator_checks_faults_and_mirror_destinations() {
    use crate::{
        store::{ObjectKey, store_from_yaml},
        translate::{TranslateOptions, Validator, tests::MESH},
    };
    let verdict = |http: &str| {
        let vs = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{ name: reviews, namespace: default }}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
        );
        let store = store_from_yaml(&format!("{MESH}---\n{vs}"));
        let opts = TranslateOptions::default();
        let key = ObjectKey::new("default", "reviews");
        Validator::new(&store, &opts).virtual_service(&key, &store.virtual_services[&key])
    };
    let good = "  - route: [ { destination: { host: reviews } } ]\n    mirror: { host: reviews }\n    fault: { abort: { httpStatus: 503, percentage: { value: 20 } } }\n";
    verdict(good).unwrap();
    let bad_fault = good.replace("httpStatus: 503", "httpStatus: 99");
    assert!(
        verdict(&bad_fault)
            .unwrap_err()
            .starts_with("spec.http[0].fault.abort.httpStatus 99")
    );
    let bad_mirror = good.replace("mirror: { host: reviews }", "mirror: { host: nowhere }");
    assert!(
        verdict(&bad_mirror)
            .unwrap_err()
            .starts_with("spec.http[0].mirror.host \"nowhere\"")
    );
    let bad_mirrors = good.replace(
        "mirror: { host: reviews }",
        "mirrors: [ { destination: { host: reviews, subset: v9 } } ]",
    );
    assert!(
        verdict(&bad_mirrors)
            .unwrap_err()
            .starts_with("spec.http[0].mirrors[0].destination.subset")
    );
}
