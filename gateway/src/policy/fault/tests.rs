use corridor_proto::envoy::extensions::filters::common::fault::v3::FaultDelay as PbDelay;
use corridor_proto::envoy::extensions::filters::http::fault::v3::FaultAbort as PbAbort;
use corridor_proto::google::protobuf::Duration as PbDuration;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn percent(numerator: u32, denominator: DenominatorType) -> Option<FractionalPercent> {
    Some(FractionalPercent {
        numerator,
        denominator: denominator as i32,
    })
}

/// Istio's translation of `delay {fixedDelay: 100ms, percentage: 50}` and
/// `abort {grpcStatus: UNAVAILABLE, percentage: 20}`.
fn istio_fault() -> HttpFault {
    HttpFault {
        delay: Some(PbDelay {
            percentage: percent(500_000, DenominatorType::Million),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(PbDuration {
                seconds: 0,
                nanos: 100_000_000,
            })),
        }),
        abort: Some(PbAbort {
            percentage: percent(200_000, DenominatorType::Million),
            error_type: Some(ErrorType::GrpcStatus(14)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn an_istio_fault_reads_as_a_delay_and_an_abort_with_their_shares() {
    let rule = from_envoy(&istio_fault()).unwrap().unwrap();
    let delay = rule.delay.unwrap();
    assert_eq!(delay.duration, std::time::Duration::from_millis(100));
    assert_eq!(delay.fraction, 0.5);
    assert_eq!(
        rule.abort,
        Some(FaultAbort {
            http: 503,
            grpc: Some(14),
            fraction: 0.2
        })
    );
}

#[test]
fn an_empty_fault_is_no_rule_and_unsupported_parts_are_refused() {
    assert_eq!(from_envoy(&HttpFault::default()).unwrap(), None);
    let mut f = istio_fault();
    f.abort.as_mut().unwrap().error_type = Some(ErrorType::HttpStatus(700));
    assert!(matches!(from_envoy(&f), Err(ModelError::Invalid { .. })));
    let mut f = istio_fault();
    f.headers.push(Default::default());
    assert!(matches!(from_envoy(&f), Err(ModelError::Unsupported(_))));
    let mut f = istio_fault();
    f.delay.as_mut().unwrap().fault_delay_secifier = None;
    assert!(matches!(from_envoy(&f), Err(ModelError::Missing(_))));
}

#[test]
fn shares_follow_their_denominator_and_absent_means_all() {
    assert_eq!(
        share(percent(20, DenominatorType::Hundred).as_ref(), 1.0),
        0.2
    );
    assert_eq!(
        share(percent(2_000, DenominatorType::TenThousand).as_ref(), 1.0),
        0.2
    );
    assert_eq!(
        share(percent(200_000, DenominatorType::Million).as_ref(), 1.0),
        0.2
    );
    assert_eq!(
        share(percent(300, DenominatorType::Hundred).as_ref(), 1.0),
        1.0
    );
    assert_eq!(share(None, 1.0), 1.0);
}

/// 20 % aborts over 20,000 draws: 4,000 expected, sigma about 57; six sigmas either side.
#[test]
fn aborts_hit_their_share_of_requests() {
    let rule = Fault {
        delay: None,
        abort: Some(FaultAbort {
            http: 503,
            grpc: None,
            fraction: 0.2,
        }),
    };
    let mut rng = StdRng::seed_from_u64(8);
    let mut flags = 0;
    let mut aborted = 0;
    for _ in 0..20_000 {
        match decide(&rule, &mut rng, &mut flags) {
            Step::Refuse(r) => {
                assert_eq!(
                    r.kind,
                    RejectKind::FaultAbort {
                        http: 503,
                        grpc: None
                    }
                );
                aborted += 1;
            }
            Step::Go => {}
            Step::Wait(_) => panic!("a rule without delay waited"),
        }
    }
    assert!(
        (3_650..=4_350).contains(&aborted),
        "{aborted} of 20000 aborted"
    );
    assert_eq!(flags, 0, "no delay, no DI");
}

#[tokio::test]
async fn a_delayed_request_is_flagged_and_a_delayed_abort_refuses_after_its_wait() {
    let always = Fault {
        delay: Some(FaultDelay {
            duration: std::time::Duration::from_millis(1),
            fraction: 1.0,
        }),
        abort: Some(FaultAbort {
            http: 429,
            grpc: None,
            fraction: 1.0,
        }),
    };
    let mut flags = 0;
    let Step::Wait(pending) = decide(&always, &mut StdRng::seed_from_u64(1), &mut flags) else {
        panic!("a delay must wait");
    };
    assert_eq!(flags, ResponseFlags::DI);
    let refused = pending.await.unwrap_err();
    assert_eq!(refused.kind.outline().http, 429);
    assert_eq!(refused.kind.outline().flag, ResponseFlags::FI);

    let never = Fault {
        delay: Some(FaultDelay {
            duration: std::time::Duration::from_secs(60),
            fraction: 0.0,
        }),
        abort: None,
    };
    let mut flags = 0;
    assert!(matches!(
        decide(&never, &mut StdRng::seed_from_u64(1), &mut flags),
        Step::Go
    ));
    assert_eq!(flags, 0);
}

/// A route's own rule replaces the listener's; without either, requests go.
#[test]
fn the_route_rule_replaces_the_listener_rule() {
    let listener = FaultFilter::new(&HttpFault {
        abort: Some(PbAbort {
            error_type: Some(ErrorType::HttpStatus(418)),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let mut flags = 0;
    let Step::Refuse(r) = listener.check(None, &mut flags) else {
        panic!("the listener rule aborts every request")
    };
    assert_eq!(r.kind.outline().http, 418);
    let route = RoutePolicy {
        fault: Some(Fault {
            delay: None,
            abort: Some(FaultAbort {
                http: 503,
                grpc: None,
                fraction: 0.0,
            }),
        }),
        ..RoutePolicy::default()
    };
    assert!(matches!(listener.check(Some(&route), &mut flags), Step::Go));
    let empty = FaultFilter::new(&HttpFault::default()).unwrap();
    assert!(matches!(empty.check(None, &mut flags), Step::Go));
}

#[test]
fn grpc_statuses_map_to_their_http_equivalents() {
    assert_eq!(http_of_grpc(14), 503);
    assert_eq!(http_of_grpc(4), 504);
    assert_eq!(http_of_grpc(8), 429);
    assert_eq!(http_of_grpc(2), 500);
}

/// A route's rule comes as the HTTPFault itself (Istio) or wrapped in a FilterConfig; a
/// wrapper that disables the filter gives an empty rule; other filters' entries are not
/// the fault filter's business.
#[test]
fn a_route_rule_is_read_from_its_per_filter_config() {
    use corridor_proto::pack_any;
    let mut configs = HashMap::new();
    configs.insert(
        "envoy.filters.http.rbac".to_string(),
        pack_any(HttpFault::default()),
    );
    assert_eq!(from_per_filter_config(&configs).unwrap(), None);

    configs.insert(FAULT_FILTER.to_string(), pack_any(istio_fault()));
    let direct = from_per_filter_config(&configs).unwrap().unwrap();
    assert_eq!(direct.abort.as_ref().map(|a| a.grpc), Some(Some(14)));

    let wrapped = FilterConfig {
        config: Some(pack_any(istio_fault())),
        ..Default::default()
    };
    configs.insert(FAULT_FILTER.to_string(), pack_any(wrapped));
    assert_eq!(from_per_filter_config(&configs).unwrap(), Some(direct));

    let disabled = FilterConfig {
        disabled: true,
        ..Default::default()
    };
    configs.insert(FAULT_FILTER.to_string(), pack_any(disabled));
    let none = from_per_filter_config(&configs).unwrap().unwrap();
    assert_eq!((none.delay, none.abort), (None, None));

    // Anything else under the fault filter's name is refused, naming what came.
    let not_a_fault = corridor_proto::google::protobuf::Duration::default();
    configs.insert(FAULT_FILTER.to_string(), pack_any(not_a_fault));
    assert!(matches!(
        from_per_filter_config(&configs),
        Err(ModelError::Decode { .. })
    ));
}
