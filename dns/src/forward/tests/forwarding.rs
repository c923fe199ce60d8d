//! Answers, caching and coalescing through a single live upstream.

use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};

use super::fake::{Fake, Reply, Transport};
use super::{a, eventually, forwarder, metric, name, reply, response, soa, within};
use crate::forward::cache::Key;
use crate::forward::{ForwardError, Forwarded, Forwarder};
use crate::forward::exchange::EDNS_PAYLOAD;
use crate::metrics::{CACHE_HITS, FORWARD_REQUESTS, FORWARD_RESPONSES};

const BUDGET: Duration = Duration::from_secs(5);

fn first_a(answers: &[hickory_server::proto::rr::Record]) -> [u8; 4] {
    match &answers[0].data {
        RData::A(a) => a.0.octets(),
        other => panic!("not an A record: {other:?}"),
    }
}

#[tokio::test]
async fn answer_passes_through_without_opt() {
    let fake = Fake::start(|q, _| {
        let mut message = response(
            q,
            ResponseCode::NoError,
            vec![a("www.example.com.", 300, [192, 0, 2, 1])],
            vec![],
        );
        message.add_additional(a("ns.example.com.", 600, [192, 0, 2, 53]));
        vec![Reply::Message(message)]
    })
    .await;
    let (fwd, metrics) = forwarder(vec![fake.addr], BUDGET);

    let got = within(fwd.resolve(&name("www.example.com."), RecordType::A))
        .await
        .unwrap();

    assert_eq!(got.rcode, ResponseCode::NoError);
    assert_eq!(got.answers.len(), 1);
    assert_eq!(got.answers[0].name, name("www.example.com."));
    assert_eq!(got.answers[0].ttl, 300);
    assert_eq!(first_a(&got.answers), [192, 0, 2, 1]);
    assert_eq!(
        got.additionals.len(),
        1,
        "the OPT record is not part of the answer"
    );
    assert_eq!(got.additionals[0].record_type(), RecordType::A);

    let query = fake.last_query();
    assert!(query.recursion_desired);
    assert_eq!(query.queries[0].query_type(), RecordType::A);
    assert_eq!(
        query.edns.as_ref().map(|e| e.max_payload()),
        Some(EDNS_PAYLOAD)
    );

    let to = format!("to=\"{}\"", fake.addr);
    assert_eq!(metric(&metrics, FORWARD_REQUESTS, &[&to]), 1.0);
    assert_eq!(
        metric(&metrics, FORWARD_RESPONSES, &[&to, "rcode=\"NOERROR\""]),
        1.0
    );
}

#[tokio::test]
async fn cache_hit_asks_upstream_once_whatever_the_case() {
    let fake = Fake::start(|q, _| {
        reply(
            q,
            ResponseCode::NoError,
            vec![a("www.example.com.", 300, [192, 0, 2, 1])],
            vec![],
        )
    })
    .await;
    let (fwd, metrics) = forwarder(vec![fake.addr], BUDGET);

    for asked in ["www.example.com.", "www.example.com.", "WWW.Example.COM."] {
        let got = within(fwd.resolve(&name(asked), RecordType::A))
            .await
            .unwrap();
        assert_eq!(first_a(&got.answers), [192, 0, 2, 1]);
        assert!(got.answers[0].ttl <= 300 && got.answers[0].ttl > 0);
    }
    assert_eq!(fake.udp_queries(), 1);
    assert_eq!(metric(&metrics, CACHE_HITS, &["type=\"success\""]), 2.0);

    // Another type of the same name is another question.
    within(fwd.resolve(&name("www.example.com."), RecordType::AAAA))
        .await
        .unwrap();
    assert_eq!(fake.udp_queries(), 2);
}

#[tokio::test]
async fn short_ttl_expires_and_zero_ttl_is_not_cached() {
    let fake = Fake::start(|q, _| {
        let ttl = if q.queries[0].name() == &name("zero.example.com.") {
            0
        } else {
            1
        };
        reply(
            q,
            ResponseCode::NoError,
            vec![a("x.example.com.", ttl, [192, 0, 2, 1])],
            vec![],
        )
    })
    .await;
    let (fwd, _) = forwarder(vec![fake.addr], BUDGET);
    let short = name("short.example.com.");

    within(fwd.resolve(&short, RecordType::A)).await.unwrap();
    within(fwd.resolve(&short, RecordType::A)).await.unwrap();
    assert_eq!(fake.udp_queries(), 1, "cached while the TTL lasts");
    // Waiting for expiry, not synchronising: a slow machine only waits longer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    within(fwd.resolve(&short, RecordType::A)).await.unwrap();
    assert_eq!(fake.udp_queries(), 2, "asked again after the TTL ran out");

    let zero = name("zero.example.com.");
    within(fwd.resolve(&zero, RecordType::A)).await.unwrap();
    within(fwd.resolve(&zero, RecordType::A)).await.unwrap();
    assert_eq!(fake.udp_queries(), 4, "a zero TTL is never cached");
}

#[tokio::test]
async fn denials_are_cached_for_the_soa_negative_ttl_only_with_an_soa() {
    let fake = Fake::start(|q, _| {
        let asked = q.queries[0].name().to_ascii();
        match asked.as_str() {
            "nx.example.com." => reply(
                q,
                ResponseCode::NXDomain,
                vec![],
                vec![soa("example.com.", 300, 60)],
            ),
            "nodata.example.com." => reply(
                q,
                ResponseCode::NoError,
                vec![],
                vec![soa("example.com.", 300, 60)],
            ),
            "bare-nx.example.com." => reply(q, ResponseCode::NXDomain, vec![], vec![]),
            "fail.example.com." => reply(q, ResponseCode::ServFail, vec![], vec![]),
            _ => reply(q, ResponseCode::Refused, vec![], vec![]),
        }
    })
    .await;
    let (fwd, metrics) = forwarder(vec![fake.addr], BUDGET);

    let cases = [
        ("nx.example.com.", ResponseCode::NXDomain, 1),
        ("nodata.example.com.", ResponseCode::NoError, 1),
        ("bare-nx.example.com.", ResponseCode::NXDomain, 2),
        ("fail.example.com.", ResponseCode::ServFail, 2),
        ("refused.example.com.", ResponseCode::Refused, 2),
    ];
    for (asked, rcode, upstream_queries) in cases {
        let before = fake.udp_queries();
        for _ in 0..2 {
            let got = within(fwd.resolve(&name(asked), RecordType::A))
                .await
                .unwrap();
            assert_eq!(got.rcode, rcode, "{asked}");
            assert!(got.answers.is_empty());
            if let Some(soa) = got.authorities.first() {
                assert!(
                    soa.ttl <= 60,
                    "served for the lesser of TTL and MINIMUM: {}",
                    soa.ttl
                );
            }
        }
        assert_eq!(fake.udp_queries() - before, upstream_queries, "{asked}");
    }
    assert_eq!(metric(&metrics, CACHE_HITS, &["type=\"denial\""]), 2.0);
    assert_eq!(
        metric(&metrics, FORWARD_RESPONSES, &["rcode=\"NXDOMAIN\""]),
        3.0
    );
    assert_eq!(
        metric(&metrics, FORWARD_RESPONSES, &["rcode=\"SERVFAIL\""]),
        2.0
    );
}

#[tokio::test]
async fn truncated_udp_answer_is_asked_again_over_tcp() {
    let fake = Fake::start(|q, transport| match transport {
        Transport::Udp => {
            let mut message = response(q, ResponseCode::NoError, vec![], vec![]);
            message.metadata.truncation = true;
            vec![Reply::Message(message)]
        }
        Transport::Tcp => {
            let answers = (1..=40)
                .map(|i| a("big.example.com.", 60, [10, 0, 0, i]))
                .collect();
            reply(q, ResponseCode::NoError, answers, vec![])
        }
    })
    .await;
    let (fwd, _) = forwarder(vec![fake.addr], BUDGET);

    let got = within(fwd.resolve(&name("big.example.com."), RecordType::A))
        .await
        .unwrap();

    assert_eq!(got.answers.len(), 40);
    assert_eq!((fake.udp_queries(), fake.tcp_queries()), (1, 1));
}

#[tokio::test]
async fn answers_with_another_id_or_question_are_ignored() {
    let fake = Fake::start(|q, _| {
        let right = response(
            q,
            ResponseCode::NoError,
            vec![a("www.example.com.", 60, [192, 0, 2, 1])],
            vec![],
        );
        let mut wrong_id = response(
            q,
            ResponseCode::NoError,
            vec![a("www.example.com.", 60, [6, 6, 6, 6])],
            vec![],
        );
        wrong_id.metadata.id = q.id.wrapping_add(1);
        let mut other_question = Message::query();
        other_question.add_query(hickory_server::proto::op::Query::query(
            name("evil.example."),
            RecordType::A,
        ));
        let mut wrong_question = response(
            &other_question,
            ResponseCode::NoError,
            vec![a("evil.example.", 60, [7, 7, 7, 7])],
            vec![],
        );
        wrong_question.metadata.id = q.id;
        vec![
            Reply::Raw(vec![0x01]),
            Reply::Message(wrong_id),
            Reply::Message(wrong_question),
            Reply::Message(right),
        ]
    })
    .await;
    let (fwd, _) = forwarder(vec![fake.addr], BUDGET);

    let got = within(fwd.resolve(&name("www.example.com."), RecordType::A))
        .await
        .unwrap();

    assert_eq!(first_a(&got.answers), [192, 0, 2, 1]);
}

/// An upstream that holds its answers (`hot.example.com. A 192.0.2.<octet>`) until
/// released, a forwarder over it, and a way to start a `hot.example.com.` lookup.
async fn gated_hot(
    octet: u8,
) -> (
    Fake,
    Arc<Forwarder>,
    Name,
    impl Fn() -> tokio::task::JoinHandle<Result<Forwarded, ForwardError>>,
) {
    let fake = Fake::gated(move |q, _| {
        reply(
            q,
            ResponseCode::NoError,
            vec![a("hot.example.com.", 60, [192, 0, 2, octet])],
            vec![],
        )
    })
    .await;
    let (fwd, _) = forwarder(vec![fake.addr], BUDGET);
    let asked = name("hot.example.com.");
    let spawn = {
        let (fwd, asked) = (fwd.clone(), asked.clone());
        move || {
            let (fwd, asked) = (fwd.clone(), asked.clone());
            tokio::spawn(async move { fwd.resolve(&asked, RecordType::A).await })
        }
    };
    (fake, fwd, asked, spawn)
}

#[tokio::test]
async fn identical_questions_in_flight_share_one_exchange() {
    let (fake, fwd, asked, spawn) = gated_hot(7).await;
    let leader = spawn();
    eventually("the leader asked upstream", || fake.udp_queries() == 1).await;
    let followers: Vec<_> = (0..4).map(|_| spawn()).collect();
    let key = Key::new(&asked, RecordType::A);
    eventually("the followers wait", || fwd.flights.waiting(&key) == 4).await;
    fake.release(1);

    for task in std::iter::once(leader).chain(followers) {
        let got = within(task).await.unwrap().unwrap();
        assert_eq!(first_a(&got.answers), [192, 0, 2, 7]);
    }
    assert_eq!(fake.udp_queries(), 1);
}

#[tokio::test]
async fn a_follower_leads_when_the_leader_goes_away() {
    let (fake, fwd, asked, spawn) = gated_hot(8).await;
    let leader = spawn();
    eventually("the leader asked upstream", || fake.udp_queries() == 1).await;
    let follower = spawn();
    let key = Key::new(&asked, RecordType::A);
    eventually("the follower waits", || fwd.flights.waiting(&key) == 1).await;
    leader.abort();
    eventually("the follower asked in its place", || {
        fake.udp_queries() == 2
    })
    .await;
    fake.release(2);

    let got = within(follower).await.unwrap().unwrap();
    assert_eq!(first_a(&got.answers), [192, 0, 2, 8]);
}
