//! The cache with a simulated clock: aging, expiry, caps, what is not cached, eviction.

use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Record, RecordType};

use super::{a, name, soa};
use crate::forward::Forwarded;
use crate::forward::cache::{Cache, DENIAL_CAP, Key, SUCCESS_CAP};
use crate::metrics::{CACHE_ENTRIES, CACHE_EVICTIONS, CACHE_MISSES, Metrics};

fn cache(capacity: usize) -> (Cache, std::sync::Arc<Metrics>) {
    let metrics = Metrics::new();
    (Cache::new(capacity, "dns://:53", &metrics), metrics)
}

fn key(text: &str) -> Key {
    Key::new(&name(text), RecordType::A)
}

fn answer(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Forwarded {
    Forwarded {
        rcode,
        answers,
        authorities,
        additionals: Vec::new(),
    }
}

fn positive(ttl: u32) -> Forwarded {
    answer(
        ResponseCode::NoError,
        vec![a("x.example.", ttl, [192, 0, 2, 1])],
        vec![],
    )
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn served_ttls_age_and_the_entry_expires_at_zero() {
    let (cache, metrics) = cache(10);
    let t0 = Instant::now();
    let mut two = positive(100);
    two.answers.push(a("x.example.", 250, [192, 0, 2, 2]));
    cache.insert(key("x.example."), &two, t0);

    let at = |s| cache.get(&key("x.example."), t0 + secs(s));
    let ttls = |got: Forwarded| got.answers.iter().map(|r| r.ttl).collect::<Vec<_>>();
    assert_eq!(
        ttls(at(0.0).unwrap()),
        vec![100, 100],
        "never beyond the entry's life"
    );
    assert_eq!(ttls(at(30.5).unwrap()), vec![70, 70]);
    assert_eq!(ttls(at(99.9).unwrap()), vec![1, 1]);
    assert!(at(100.0).is_none());
    assert_eq!(cache.len(), 0, "an expired entry is dropped");
    assert_eq!(metric_entries(&metrics, "success"), 0.0);
    assert_eq!(super::metric(&metrics, CACHE_MISSES, &[]), 1.0);
}

#[test]
fn keys_ignore_case_and_the_root_dot() {
    assert_eq!(key("WWW.Example.COM."), key("www.example.com"));
    assert_ne!(
        key("www.example.com."),
        Key::new(&name("www.example.com."), RecordType::AAAA)
    );
}

#[test]
fn long_ttls_are_capped() {
    let (cache, _) = cache(10);
    let t0 = Instant::now();
    cache.insert(key("long.example."), &positive(86400), t0);
    let nx = answer(
        ResponseCode::NXDomain,
        vec![],
        vec![soa("example.", 86400, 86400)],
    );
    cache.insert(key("nx.example."), &nx, t0);

    let cap = |c: u32| t0 + Duration::from_secs(u64::from(c));
    assert_eq!(
        cache.get(&key("long.example."), t0).unwrap().answers[0].ttl,
        SUCCESS_CAP
    );
    assert!(cache.get(&key("long.example."), cap(SUCCESS_CAP)).is_none());
    assert_eq!(
        cache.get(&key("nx.example."), t0).unwrap().authorities[0].ttl,
        DENIAL_CAP
    );
    assert!(cache.get(&key("nx.example."), cap(DENIAL_CAP)).is_none());
}

#[test]
fn denials_live_for_the_lesser_of_soa_ttl_and_minimum() {
    let (cache, metrics) = cache(10);
    let t0 = Instant::now();
    let nodata = answer(
        ResponseCode::NoError,
        vec![],
        vec![soa("example.", 300, 60)],
    );
    cache.insert(key("nodata.example."), &nodata, t0);
    let nx = answer(
        ResponseCode::NXDomain,
        vec![],
        vec![soa("example.", 20, 60)],
    );
    cache.insert(key("nx.example."), &nx, t0);

    assert_eq!(metric_entries(&metrics, "denial"), 2.0);
    assert!(
        cache
            .get(&key("nodata.example."), t0 + secs(59.0))
            .is_some()
    );
    assert!(
        cache
            .get(&key("nodata.example."), t0 + secs(60.0))
            .is_none()
    );
    assert!(cache.get(&key("nx.example."), t0 + secs(19.0)).is_some());
    assert!(cache.get(&key("nx.example."), t0 + secs(20.0)).is_none());
}

#[test]
fn failures_bare_denials_and_zero_ttls_are_not_cached() {
    let (cache, _) = cache(10);
    let t0 = Instant::now();
    let uncacheable = [
        answer(ResponseCode::ServFail, vec![], vec![]),
        answer(
            ResponseCode::Refused,
            vec![],
            vec![soa("example.", 300, 60)],
        ),
        answer(ResponseCode::NXDomain, vec![], vec![]),
        answer(ResponseCode::NoError, vec![], vec![]),
        answer(ResponseCode::NXDomain, vec![], vec![soa("example.", 0, 60)]),
        positive(0),
    ];
    for (i, forwarded) in uncacheable.iter().enumerate() {
        cache.insert(key(&format!("n{i}.example.")), forwarded, t0);
    }
    assert_eq!(cache.len(), 0);
}

#[test]
fn a_full_cache_evicts_to_stay_within_capacity() {
    let (cache, metrics) = cache(2);
    let t0 = Instant::now();
    for (i, owner) in ["a.example.", "b.example.", "c.example."]
        .into_iter()
        .enumerate()
    {
        cache.insert(key(owner), &positive(100), t0 + secs(i as f64));
    }
    assert_eq!(cache.len(), 2);
    assert_eq!(
        super::metric(&metrics, CACHE_EVICTIONS, &["type=\"success\""]),
        1.0
    );
    assert_eq!(metric_entries(&metrics, "success"), 2.0);
    assert!(
        cache.get(&key("c.example."), t0 + secs(3.0)).is_some(),
        "the newest stays"
    );
}

#[test]
fn eviction_prefers_an_expired_entry_and_does_not_count_it() {
    let (cache, metrics) = cache(2);
    let t0 = Instant::now();
    cache.insert(key("old.example."), &positive(1), t0);
    cache.insert(key("live.example."), &positive(100), t0);
    cache.insert(key("new.example."), &positive(100), t0 + secs(5.0));

    assert!(cache.get(&key("live.example."), t0 + secs(6.0)).is_some());
    assert!(cache.get(&key("new.example."), t0 + secs(6.0)).is_some());
    assert_eq!(super::metric(&metrics, CACHE_EVICTIONS, &[]), 0.0);
}

#[test]
fn a_zero_capacity_cache_holds_nothing() {
    let (cache, _) = cache(0);
    let t0 = Instant::now();
    cache.insert(key("x.example."), &positive(100), t0);
    assert!(cache.get(&key("x.example."), t0).is_none());
}

fn metric_entries(metrics: &Metrics, kind: &str) -> f64 {
    let label = format!("type=\"{kind}\"");
    super::metric(
        metrics,
        CACHE_ENTRIES,
        &[&label, "zones=\".\"", "server=\"dns://:53\""],
    )
}
