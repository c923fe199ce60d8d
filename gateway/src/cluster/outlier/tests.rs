use super::*;

fn config() -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: Some(3),
        consecutive_gateway: None,
        split_local_origin: false,
        consecutive_local_origin: Some(5),
        interval: Duration::from_secs(10),
        base_ejection: Duration::from_secs(2),
        max_ejection: Duration::from_secs(5),
        max_ejection_percent: 100,
    }
}

fn detector(config: &OutlierConfig, hosts: usize) -> Detector {
    let d = Detector::default();
    d.configure(Some(config), hosts);
    d
}

#[test]
fn three_5xx_in_a_row_eject_for_the_base_time() {
    let d = detector(&config(), 2);
    let ep = OutlierState::default();
    assert_eq!(ep.report(&d, Event::Answer(500), 1000), None);
    assert_eq!(ep.report(&d, Event::Answer(503), 1001), None);
    assert_eq!(
        ep.report(&d, Event::Answer(500), 1002),
        Some(Duration::from_secs(2))
    );
    assert!(ep.is_ejected(&d, 1002));
    assert!(ep.is_ejected(&d, 3001));
    assert_eq!(d.ejected(), 1);
    assert!(!ep.is_ejected(&d, 3002));
    assert_eq!(d.ejected(), 0);
}

#[test]
fn a_success_resets_the_count() {
    let d = detector(&config(), 2);
    let ep = OutlierState::default();
    ep.report(&d, Event::Answer(500), 1);
    ep.report(&d, Event::Answer(500), 2);
    ep.report(&d, Event::Answer(200), 3);
    assert_eq!(ep.report(&d, Event::Answer(500), 4), None);
    assert_eq!(ep.report(&d, Event::Answer(500), 5), None);
    assert!(ep.report(&d, Event::Answer(500), 6).is_some());
}

#[test]
fn each_ejection_lasts_longer_up_to_the_cap() {
    let d = detector(&config(), 2);
    let ep = OutlierState::default();
    let mut now = 1;
    let mut lengths = Vec::new();
    for _ in 0..4 {
        let length = (0..3)
            .find_map(|_| ep.report(&d, Event::Answer(500), now))
            .unwrap();
        lengths.push(length.as_secs());
        now += ms(length);
        assert!(!ep.is_ejected(&d, now));
    }
    // 2 s, 4 s, then capped by max_ejection (5 s).
    assert_eq!(lengths, vec![2, 4, 5, 5]);
    assert_eq!(ep.times_ejected(), 4);
}

#[test]
fn the_multiplier_decays_while_the_endpoint_is_healthy() {
    let d = detector(&config(), 2);
    let ep = OutlierState::default();
    let eject = |now| (0..3).find_map(|_| ep.report(&d, Event::Answer(500), now));
    assert_eq!(eject(1), Some(Duration::from_secs(2)));
    assert!(!ep.is_ejected(&d, 2001));
    // Back for 10 s (one interval): the second ejection is the first again.
    assert_eq!(eject(12_001), Some(Duration::from_secs(2)));
}

#[test]
fn max_ejection_percent_caps_ejections() {
    let mut c = config();
    c.max_ejection_percent = 50;
    let d = detector(&c, 3);
    let eps: Vec<OutlierState> = (0..3).map(|_| OutlierState::default()).collect();
    let ejected: Vec<bool> = eps
        .iter()
        .map(|ep| {
            (0..3)
                .find_map(|_| ep.report(&d, Event::Answer(500), 10))
                .is_some()
        })
        .collect();
    // 0 of 3 and 1 of 3 (33 %) are below 50 %; 2 of 3 are not.
    assert_eq!(ejected, vec![true, true, false]);
    assert_eq!(d.ejected(), 2);
}

#[test]
fn gateway_errors_count_only_502_to_504_and_local_failures() {
    let mut c = config();
    c.consecutive_5xx = None;
    c.consecutive_gateway = Some(2);
    let d = detector(&c, 2);
    let ep = OutlierState::default();
    assert_eq!(ep.report(&d, Event::Answer(500), 1), None);
    assert_eq!(ep.report(&d, Event::Answer(500), 2), None);
    assert_eq!(ep.report(&d, Event::LocalFailure(504), 3), None);
    assert!(ep.report(&d, Event::Answer(502), 4).is_some());
}

#[test]
fn split_local_origin_failures_have_their_own_count() {
    let mut c = config();
    c.split_local_origin = true;
    c.consecutive_local_origin = Some(2);
    let d = detector(&c, 2);
    let ep = OutlierState::default();
    // Local failures do not feed the 5xx count...
    ep.report(&d, Event::Answer(500), 1);
    ep.report(&d, Event::Answer(500), 2);
    assert_eq!(ep.report(&d, Event::LocalFailure(503), 3), None);
    // ...and an answer resets the local count.
    ep.report(&d, Event::Answer(200), 4);
    assert_eq!(ep.report(&d, Event::LocalFailure(503), 5), None);
    assert!(ep.report(&d, Event::LocalFailure(503), 6).is_some());
}

#[test]
fn without_settings_nothing_is_ejected() {
    let d = Detector::default();
    let ep = OutlierState::default();
    for now in 0..10 {
        assert_eq!(ep.report(&d, Event::Answer(500), now), None);
    }
    assert!(!ep.is_ejected(&d, 10));
}

#[test]
fn envoy_defaults_and_disabled_checks() {
    use corridor_proto::google::protobuf::UInt32Value;
    let c = OutlierConfig::from_proto(&OutlierDetection::default()).unwrap();
    assert_eq!(c.consecutive_5xx, Some(5));
    assert_eq!(c.consecutive_gateway, None);
    assert_eq!(c.base_ejection, Duration::from_secs(30));
    assert_eq!(c.max_ejection_percent, 10);
    let o = OutlierDetection {
        consecutive_5xx: Some(UInt32Value { value: 0 }),
        consecutive_gateway_failure: Some(UInt32Value { value: 3 }),
        enforcing_consecutive_gateway_failure: Some(UInt32Value { value: 100 }),
        max_ejection_percent: Some(UInt32Value { value: 101 }),
        ..Default::default()
    };
    assert!(OutlierConfig::from_proto(&o).is_err());
    let o = OutlierDetection {
        max_ejection_percent: None,
        ..o
    };
    let c = OutlierConfig::from_proto(&o).unwrap();
    assert_eq!(c.consecutive_5xx, None);
    assert_eq!(c.consecutive_gateway, Some(3));
}
