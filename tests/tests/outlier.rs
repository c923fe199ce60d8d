//! Outlier detection through the real controller and gateway, in HTTP, gRPC, Dubbo and
//! Thrift alike. A DestinationRule with `consecutive5xxErrors: 3, baseEjectionTime: 2s`
//! over a healthy backend and one answering every call with its protocol's error
//! (`corridor-load serve --error-rate 1.0`): under steady load the failing backend's own
//! call log shows no call from its ejection until the ejection ends (the gateway's
//! `/clusters` says when), then calls again, and its second ejection lasts twice as long.
//! `maxEjectionPercent` keeps a second failing backend in service.

mod lb_support;

use std::time::{Duration, Instant};

use corridor_tests::route_policy::{Proto, load};
use lb_support::{Setup, Spec, plain, setup};
use serde_json::json;

/// How often the test samples `/clusters` and the backend's call log.
const TICK: Duration = Duration::from_millis(20);
/// Slack at each end of an ejection window: a call already on the wire when the
/// ejection starts may still be logged just after it.
const SLACK: Duration = Duration::from_millis(150);

/// What the test saw at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    /// Calls the failing backend logged so far.
    calls: usize,
    ejected: bool,
    /// How long the ejection has to run, per the gateway.
    remaining: Duration,
    times: u32,
}

/// Samples backend `i` every tick for `span`.
async fn watch(s: &Setup, i: usize, span: Duration) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < span {
        let stats = s.endpoint_stats(i).await;
        let calls = s.calls()[i];
        let stat = |k: &str| stats.get(k).cloned().unwrap_or_default();
        samples.push(Sample {
            at: start.elapsed(),
            calls,
            ejected: stat("outlier_ejected") == "true",
            remaining: Duration::from_millis(stat("outlier_ejected_for_ms").parse().unwrap_or(0)),
            times: stat("outlier_times_ejected").parse().unwrap_or(0),
        });
        tokio::time::sleep(TICK).await;
    }
    samples
}

/// The ejection whose multiplier is `times`: (when it was first seen, when it ends).
fn ejection(samples: &[Sample], times: u32) -> (Duration, Duration) {
    let first = samples
        .iter()
        .find(|s| s.ejected && s.times == times)
        .unwrap_or_else(|| panic!("no ejection #{times} seen: {samples:?}"));
    (first.at, first.at + first.remaining)
}

/// Calls logged at `at` (the last sample at or before it).
fn calls_at(samples: &[Sample], at: Duration) -> usize {
    samples
        .iter()
        .take_while(|s| s.at <= at)
        .last()
        .map_or(0, |s| s.calls)
}

fn rule(max_ejection_percent: u32) -> serde_json::Value {
    json!({"outlierDetection": {
        "consecutive5xxErrors": 3,
        "baseEjectionTime": "2s",
        "interval": "1s",
        "maxEjectionPercent": max_ejection_percent
    }})
}

const FAILING: &[&str] = &["--error-rate", "1.0"];

async fn a_failing_endpoint_is_ejected_for_base_then_twice_base(proto: Proto) {
    let specs = [
        plain("good"),
        Spec {
            name: "bad",
            zone: "zone-a",
            flags: FAILING,
        },
    ];
    let s = setup(proto, "outlier", &specs, rule(100), None, &[]).await;
    // Steady load across both ejections (2 s, then 4 s) and the gaps between them.
    let run = tokio::spawn(load(
        proto,
        s.addr,
        "--rate 100 --duration 10s --connections 2 --timeout 5s",
    ));
    let samples = watch(&s, 1, Duration::from_secs(9)).await;
    let summary = run.await.expect("load");

    let (seen1, end1) = ejection(&samples, 1);
    let first = end1 - seen1;
    assert!(
        first <= Duration::from_secs(2) && first >= Duration::from_millis(1700),
        "first ejection {first:?}"
    );
    let quiet = calls_at(&samples, seen1 + SLACK);
    assert_eq!(
        calls_at(&samples, end1 - SLACK),
        quiet,
        "{proto:?}: the ejected backend got calls between +{seen1:?} and +{end1:?}: {samples:?}"
    );
    // Traffic again once the ejection ends (three more failures eject it again).
    let (seen2, end2) = ejection(&samples, 2);
    assert!(seen2 > end1, "{samples:?}");
    assert!(
        calls_at(&samples, seen2 + SLACK) > quiet,
        "{proto:?}: no call after the first ejection: {samples:?}"
    );
    let second = end2 - seen2;
    assert!(
        second <= Duration::from_secs(4) && second >= Duration::from_millis(3600),
        "second ejection {second:?} is not twice the base"
    );
    let quiet = calls_at(&samples, seen2 + SLACK);
    let until = end2.min(samples.last().map_or(end2, |s| s.at));
    assert_eq!(
        calls_at(&samples, until - SLACK),
        quiet,
        "{proto:?}: calls in the second ejection: {samples:?}"
    );
    // The callers' errors came only before each ejection (the default retries hide most).
    let completed = corridor_tests::route_policy::count(&summary, &["requests", "completed"]);
    let ok = corridor_tests::route_policy::count(&summary, &["statuses", proto.ok_status()]);
    assert!(ok * 100 >= completed * 95, "{proto:?}: {summary}");
}

/// Two of three backends fail; `maxEjectionPercent: 30` allows one ejection (0 of 3
/// ejected is below 30 %, 1 of 3 is not), so the other failing one keeps its calls.
async fn max_ejection_percent_caps_ejections(proto: Proto) {
    let failing = |name| Spec {
        name,
        zone: "zone-a",
        flags: FAILING,
    };
    let specs = [plain("good"), failing("bad1"), failing("bad2")];
    let s = setup(proto, "outlier-cap", &specs, rule(30), None, &[]).await;
    let run = tokio::spawn(load(
        proto,
        s.addr,
        "--rate 100 --duration 3s --connections 2 --timeout 5s",
    ));
    let start = Instant::now();
    let mut most = 0;
    let mut ever = [false; 2];
    while start.elapsed() < Duration::from_millis(2500) {
        let mut ejected = 0;
        for (k, i) in [1, 2].into_iter().enumerate() {
            if s.endpoint_stats(i)
                .await
                .get("outlier_ejected")
                .map(String::as_str)
                == Some("true")
            {
                ejected += 1;
                ever[k] = true;
            }
        }
        most = most.max(ejected);
        tokio::time::sleep(TICK).await;
    }
    let calls_before = s.calls();
    run.await.expect("load");
    assert!(ever.iter().any(|e| *e), "{proto:?}: nothing was ejected");
    assert_eq!(
        most, 1,
        "{proto:?}: more than maxEjectionPercent ejected at once"
    );
    assert!(
        calls_before[1] > 3 && calls_before[2] > 3,
        "{calls_before:?}"
    );
    assert!(
        s.cluster_stat("outlier_detection.ejections_enforced_total")
            .await
            >= 1
    );
}

#[tokio::test]
async fn a_failing_http_endpoint_is_ejected_for_the_base_time_then_twice_it() {
    a_failing_endpoint_is_ejected_for_base_then_twice_base(Proto::Http).await;
}

#[tokio::test]
async fn a_failing_grpc_endpoint_is_ejected_for_the_base_time_then_twice_it() {
    a_failing_endpoint_is_ejected_for_base_then_twice_base(Proto::Grpc).await;
}

#[tokio::test]
async fn a_failing_dubbo_endpoint_is_ejected_for_the_base_time_then_twice_it() {
    a_failing_endpoint_is_ejected_for_base_then_twice_base(Proto::Dubbo).await;
}

#[tokio::test]
async fn a_failing_thrift_endpoint_is_ejected_for_the_base_time_then_twice_it() {
    a_failing_endpoint_is_ejected_for_base_then_twice_base(Proto::Thrift).await;
}

#[tokio::test]
async fn max_ejection_percent_keeps_a_failing_http_endpoint_in_service() {
    max_ejection_percent_caps_ejections(Proto::Http).await;
}

#[tokio::test]
async fn max_ejection_percent_keeps_a_failing_dubbo_endpoint_in_service() {
    max_ejection_percent_caps_ejections(Proto::Dubbo).await;
}
