//! Fault injection and mirroring of a route, as every protocol's listener carries them:
//! Istio's `fault` becomes Envoy's `HTTPFault` (percentages in millionths, as Istio
//! writes them), set per route for HTTP and gRPC (`typed_per_filter_config` of the fault
//! filter, which the listener then names with an empty configuration) and on the
//! MetaProtocol route's Corridor extension field for Dubbo and Thrift. `mirror`,
//! `mirrorPercentage` and `mirrors[]` become request mirror policies on either kind of
//! route.

use std::collections::HashMap;

use corridor_proto::{
    aeraki::meta_protocol_proxy::v1alpha::MetaProtocolFilter,
    envoy::{
        config::core::v3::RuntimeFractionalPercent,
        extensions::filters::{
            common::fault::v3::{FaultDelay, fault_delay::FaultDelaySecifier},
            http::fault::v3::{FaultAbort, HttpFault, fault_abort::ErrorType},
            network::http_connection_manager::v3::{HttpFilter, http_filter},
        },
        r#type::v3::{FractionalPercent, fractional_percent::DenominatorType},
    },
    google::protobuf::Any,
    pack_any,
};

use super::{Context, PortInfo, route::destination_cluster};
use crate::resources::{
    MetaRouter, VirtualService,
    duration::parse_duration,
    istio::{HttpFaultInjection, HttpRoute, Percent},
};

/// Envoy's HTTP fault filter; Dubbo/Thrift listeners name it too, with the same message.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// Whether a listener's routes inject faults: the VirtualService routing an HTTP
/// service, or the MetaRouter (else the VirtualService) routing a Dubbo/Thrift one.
/// Only then does the listener name the fault filter.
pub(super) fn injects_faults(
    meta: bool,
    meta_router: Option<&MetaRouter>,
    virtual_service: Option<&VirtualService>,
) -> bool {
    let vs = || virtual_service.is_some_and(|vs| vs.spec.http.iter().any(|h| h.fault.is_some()));
    match (meta, meta_router) {
        (true, Some(mr)) => mr.spec.routes.iter().any(|r| r.fault.is_some()),
        _ => vs(),
    }
}

/// The HCM's fault filter, empty (routes carry the rules), when a route injects faults.
pub(super) fn http_filter(faults: bool) -> Option<HttpFilter> {
    faults.then(|| HttpFilter {
        name: FAULT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            HttpFault::default(),
        ))),
        ..Default::default()
    })
}

/// The MetaProtocol fault filter, empty (routes carry the rules), when a route injects
/// faults.
pub(super) fn meta_filter(faults: bool) -> Option<MetaProtocolFilter> {
    faults.then(|| MetaProtocolFilter {
        name: FAULT_FILTER.to_string(),
        config: Some(pack_any(HttpFault::default())),
    })
}

/// A route's `typed_per_filter_config`: the fault filter's rule when the route has one.
pub(super) fn per_filter_config(http: &HttpRoute) -> HashMap<String, Any> {
    http.fault
        .as_ref()
        .map(|f| (FAULT_FILTER.to_string(), pack_any(http_fault(f))))
        .into_iter()
        .collect()
}

/// Envoy's `HTTPFault` for an Istio fault (validated at admission).
pub(super) fn http_fault(f: &HttpFaultInjection) -> HttpFault {
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = parse_duration(d.fixed_delay.as_deref()?).ok()?;
        Some(FaultDelay {
            percentage: Some(millionths(d.percent_of_requests())),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(super::pb_duration(fixed))),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error_type = match (a.http_status, a.grpc_code()) {
            (Some(status), _) => ErrorType::HttpStatus(u32::try_from(status).ok()?),
            (None, Some(code)) => ErrorType::GrpcStatus(code),
            (None, None) => return None,
        };
        Some(FaultAbort {
            percentage: Some(millionths(a.percent_of_requests())),
            error_type: Some(error_type),
            ..Default::default()
        })
    });
    HttpFault {
        delay,
        abort,
        ..Default::default()
    }
}

/// A percentage (0–100) in millionths, Istio's precision.
fn millionths(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// A share given as Istio's `Percent` (absent: all) as Envoy's runtime fraction.
pub(super) fn runtime_fraction(p: Option<&Percent>) -> Option<RuntimeFractionalPercent> {
    p.map(|p| RuntimeFractionalPercent {
        default_value: Some(millionths(p.value)),
        ..Default::default()
    })
}

/// The mirrors of a VirtualService route: `mirror` with `mirrorPercentage`, or each of
/// `mirrors[]` with its `percentage`, as (cluster, share) pairs; destinations that no
/// longer resolve are left out.
pub(super) fn mirrors(
    ctx: &Context<'_>,
    namespace: &str,
    http: &HttpRoute,
    port: &PortInfo,
) -> Vec<(String, Option<RuntimeFractionalPercent>)> {
    let single = http
        .mirror
        .iter()
        .map(|d| (d, runtime_fraction(http.mirror_percentage.as_ref())));
    let listed = http
        .mirrors
        .iter()
        .map(|m| (&m.destination, runtime_fraction(m.percentage.as_ref())));
    single
        .chain(listed)
        .filter_map(|(d, share)| Some((destination_cluster(ctx, namespace, d, port)?, share)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::istio::{FaultAbort as IstioAbort, FaultDelay as IstioDelay};

    #[test]
    fn an_istio_fault_becomes_envoys_http_fault_in_millionths() {
        let f = HttpFaultInjection {
            delay: Some(IstioDelay {
                fixed_delay: Some("100ms".into()),
                percentage: Some(Percent { value: 50.0 }),
                percent: None,
            }),
            abort: Some(IstioAbort {
                grpc_status: Some("UNAVAILABLE".into()),
                percentage: Some(Percent { value: 20.5 }),
                ..Default::default()
            }),
        };
        let pb = http_fault(&f);
        let delay = pb.delay.unwrap();
        assert_eq!(delay.percentage.unwrap().numerator, 500_000);
        assert_eq!(
            delay.fault_delay_secifier,
            Some(FaultDelaySecifier::FixedDelay(super::super::pb_duration(
                std::time::Duration::from_millis(100)
            )))
        );
        let abort = pb.abort.unwrap();
        assert_eq!(abort.error_type, Some(ErrorType::GrpcStatus(14)));
        assert_eq!(abort.percentage.unwrap().numerator, 205_000);
    }

    #[test]
    fn only_a_route_with_a_fault_gets_a_per_filter_config() {
        let mut http = HttpRoute::default();
        assert!(per_filter_config(&http).is_empty());
        http.fault = Some(HttpFaultInjection {
            abort: Some(IstioAbort {
                http_status: Some(503),
                ..Default::default()
            }),
            ..Default::default()
        });
        let config = per_filter_config(&http);
        assert_eq!(config.keys().collect::<Vec<_>>(), [FAULT_FILTER]);
        // An abort without percentage aborts nothing, as in Istio.
        let abort = http_fault(http.fault.as_ref().unwrap()).abort.unwrap();
        assert_eq!(abort.percentage.unwrap().numerator, 0);
        assert!(http_filter(false).is_none() && meta_filter(false).is_none());
        assert_eq!(http_filter(true).unwrap().name, FAULT_FILTER);
    }

    /// Through the whole translation: an HTTP route carries its rule per filter and its
    /// mirrors (the HCM names the fault filter); the same VirtualService on a Dubbo port
    /// puts both on the MetaProtocol route.
    #[test]
    fn a_virtual_service_fault_and_mirror_reach_http_and_dubbo_routes() {
        use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteConfiguration as MetaRc;
        use corridor_proto::envoy::config::listener::v3::{Listener, filter::ConfigType};
        use corridor_proto::envoy::config::route::v3::{RouteConfiguration, route::Action};
        use corridor_proto::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
        use corridor_proto::type_url;
        use prost::Message;

        use crate::store::store_from_yaml;
        use crate::translate::{TranslateOptions, tests::MESH};

        let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - route: [ { destination: { host: reviews } } ]
    fault: { abort: { httpStatus: 503, percentage: { value: 20 } } }
    mirror: { host: reviews }
    mirrorPercentage: { value: 50 }
"#;
        let snap = crate::translate::translate(
            &store_from_yaml(&format!("{MESH}---{vs}")),
            &TranslateOptions::default(),
        );
        let body =
            |url: &str, name: &str| snap.get(url).unwrap().resources[name].body.value.clone();
        let http = "reviews.default.svc.cluster.local:9080";
        let rc = RouteConfiguration::decode(&body(type_url::ROUTE, http)[..]).unwrap();
        let route = &rc.virtual_hosts[0].routes[0];
        let rule =
            HttpFault::decode(&route.typed_per_filter_config[FAULT_FILTER].value[..]).unwrap();
        assert_eq!(rule.abort.unwrap().percentage.unwrap().numerator, 200_000);
        let Some(Action::Route(action)) = &route.action else {
            panic!("{route:?}")
        };
        let mirror = &action.request_mirror_policies[0];
        assert_eq!(
            mirror.cluster,
            "outbound|9080||reviews.default.svc.cluster.local"
        );
        assert_eq!(
            mirror
                .runtime_fraction
                .as_ref()
                .unwrap()
                .default_value
                .unwrap()
                .numerator,
            500_000
        );
        let l = Listener::decode(&body(type_url::LISTENER, http)[..]).unwrap();
        let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
            panic!("no HCM")
        };
        let names: Vec<String> = HttpConnectionManager::decode(&any.value[..])
            .unwrap()
            .http_filters
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert!(names.contains(&FAULT_FILTER.to_string()), "{names:?}");

        let dubbo = MESH
            .replace(
                "- { name: db, port: 5432 }",
                "- { name: tcp-dubbo-api, port: 20880 }",
            )
            .replace(
                "{ name: db, port: 5432 } ]",
                "{ name: tcp-dubbo-api, port: 20880 } ]",
            );
        let snap = crate::translate::translate(
            &store_from_yaml(&format!("{dubbo}---{vs}")),
            &TranslateOptions::default(),
        );
        let name = "reviews.default.svc.cluster.local:20880";
        let rc = MetaRc::decode(
            &snap.get(type_url::META_ROUTE).unwrap().resources[name]
                .body
                .value[..],
        )
        .unwrap();
        let action = rc.routes[0].route.as_ref().unwrap();
        assert_eq!(
            action
                .fault
                .as_ref()
                .unwrap()
                .abort
                .as_ref()
                .unwrap()
                .error_type,
            Some(ErrorType::HttpStatus(503))
        );
        assert_eq!(
            action.request_mirror_policies[0].cluster,
            "outbound|20880||reviews.default.svc.cluster.local"
        );
    }

    /// A MetaRouter route's Corridor extensions: `fault`, `timeout` and `retries` reach
    /// the MetaProtocol route in the same terms as a VirtualService's; the listener then
    /// names the fault filter.
    #[test]
    fn a_meta_router_route_takes_fault_timeout_and_retries() {
        use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteConfiguration as MetaRc;
        use corridor_proto::aeraki::meta_protocol_proxy::v1alpha::MetaProtocolProxy;
        use corridor_proto::envoy::config::listener::v3::{Listener, filter::ConfigType};
        use corridor_proto::type_url;
        use prost::Message;

        use crate::store::store_from_yaml;
        use crate::translate::{TranslateOptions, tests::MESH};

        let dubbo = MESH
            .replace(
                "- { name: db, port: 5432 }",
                "- { name: tcp-dubbo-api, port: 20880 }",
            )
            .replace(
                "{ name: db, port: 5432 } ]",
                "{ name: tcp-dubbo-api, port: 20880 } ]",
            );
        let router = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  routes:
  - route: [ { destination: { host: reviews } } ]
    timeout: 2s
    retries: { attempts: 4, retryOn: 5xx }
    fault: { delay: { fixedDelay: 100ms, percentage: { value: 100 } } }
"#;
        let snap = crate::translate::translate(
            &store_from_yaml(&format!("{dubbo}---{router}")),
            &TranslateOptions::default(),
        );
        let name = "reviews.default.svc.cluster.local:20880";
        let body = |url: &str| snap.get(url).unwrap().resources[name].body.value.clone();
        let rc = MetaRc::decode(&body(type_url::META_ROUTE)[..]).unwrap();
        let action = rc.routes[0].route.as_ref().unwrap();
        assert_eq!(action.timeout.as_ref().unwrap().seconds, 2);
        let retry = action.retry_policy.as_ref().unwrap();
        assert_eq!(
            (retry.retry_on.as_str(), retry.num_retries.unwrap().value),
            ("5xx", 4)
        );
        let delay = action.fault.as_ref().unwrap().delay.as_ref().unwrap();
        assert_eq!(delay.percentage.unwrap().numerator, 1_000_000);
        let l = Listener::decode(&body(type_url::LISTENER)[..]).unwrap();
        let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
            panic!("no MetaProtocolProxy")
        };
        let proxy = MetaProtocolProxy::decode(&any.value[..]).unwrap();
        assert!(
            proxy
                .meta_protocol_filters
                .iter()
                .any(|f| f.name == FAULT_FILTER),
            "{proxy:?}"
        );
    }
}
