//! Dead, silent and hostile upstreams: failover, health order, budgets and limits.

use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

use super::fake::{Fake, Reply, Transport};
use super::{a, dead_addr, eventually, forwarder, metric, name, reply, response, within};
use crate::forward::{ForwardConfig, ForwardError, Forwarder};
use crate::metrics::{FORWARD_BROKEN, FORWARD_MAX_CONCURRENT_REJECTS, Metrics};

async fn live() -> Fake {
    Fake::start(|q, _| {
        reply(
            q,
            ResponseCode::NoError,
            vec![a("x.example.com.", 60, [192, 0, 2, 1])],
            vec![],
        )
    })
    .await
}

async fn silent() -> Fake {
    Fake::start(|_, _| Vec::new()).await
}

#[tokio::test]
async fn a_dead_upstream_fails_over_to_a_live_one() {
    let live = live().await;
    let (fwd, _) = forwarder(vec![dead_addr().await, live.addr], Duration::from_secs(5));

    for asked in ["one.example.com.", "two.example.com."] {
        let got = within(fwd.resolve(&name(asked), RecordType::A))
            .await
            .unwrap();
        assert_eq!(got.answers.len(), 1);
    }
    assert_eq!(live.udp_queries(), 2);
}

#[tokio::test]
async fn an_upstream_that_failed_goes_to_the_back() {
    let silent = silent().await;
    let live = live().await;
    let (fwd, _) = forwarder(vec![silent.addr, live.addr], Duration::from_secs(2));

    within(fwd.resolve(&name("one.example.com."), RecordType::A))
        .await
        .unwrap();
    assert_eq!((silent.udp_queries(), live.udp_queries()), (1, 1));

    within(fwd.resolve(&name("two.example.com."), RecordType::A))
        .await
        .unwrap();
    assert_eq!(
        silent.udp_queries(),
        1,
        "the silent upstream is not asked first again"
    );
    assert_eq!(live.udp_queries(), 2);
}

#[tokio::test]
async fn every_upstream_dead_is_an_error_and_a_broken_health_check() {
    let (fwd, metrics) = forwarder(
        vec![dead_addr().await, dead_addr().await],
        Duration::from_secs(5),
    );

    let got = within(fwd.resolve(&name("x.example.com."), RecordType::A)).await;

    assert!(
        matches!(got, Err(ForwardError::Unavailable { .. })),
        "{got:?}"
    );
    assert_eq!(metric(&metrics, FORWARD_BROKEN, &[]), 1.0);
}

#[tokio::test]
async fn silent_upstreams_are_an_error_once_the_budget_is_spent() {
    let first = silent().await;
    let second = silent().await;
    let (fwd, _) = forwarder(vec![first.addr, second.addr], Duration::from_millis(600));

    let got = within(fwd.resolve(&name("x.example.com."), RecordType::A)).await;

    assert!(matches!(got, Err(ForwardError::Timeout(_))), "{got:?}");
    assert!(
        first.udp_queries() >= 1 && second.udp_queries() >= 1,
        "both were tried"
    );
}

#[tokio::test]
async fn no_upstreams_is_an_error() {
    let (fwd, _) = forwarder(Vec::new(), Duration::from_secs(1));
    let got = within(fwd.resolve(&name("x.example.com."), RecordType::A)).await;
    assert!(matches!(got, Err(ForwardError::NoUpstreams)), "{got:?}");
}

#[tokio::test]
async fn a_malformed_answer_fails_over() {
    let hostile = Fake::start(|q, _| {
        // Our ID and a header claiming records that are not there.
        let mut bytes = q.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 3, b'w']);
        vec![Reply::Raw(bytes)]
    })
    .await;
    let live = live().await;
    let (fwd, _) = forwarder(vec![hostile.addr, live.addr], Duration::from_secs(5));

    let got = within(fwd.resolve(&name("x.example.com."), RecordType::A))
        .await
        .unwrap();

    assert_eq!(got.answers.len(), 1);
    assert_eq!(live.udp_queries(), 1);
}

#[tokio::test]
async fn hostile_tcp_frames_fail_the_attempt() {
    let frames: [Vec<u8>; 2] = [
        // Announces 64 KiB, sends three bytes, closes.
        vec![0xff, 0xff, 1, 2, 3],
        // A frame too short to hold a header.
        vec![0, 2, 0, 0],
    ];
    for frame in frames {
        let hostile = Fake::start(move |q, transport| match transport {
            Transport::Udp => {
                let mut message = response(q, ResponseCode::NoError, vec![], vec![]);
                message.metadata.truncation = true;
                vec![Reply::Message(message)]
            }
            Transport::Tcp => vec![Reply::Raw(frame.clone())],
        })
        .await;
        let live = live().await;
        let (fwd, _) = forwarder(vec![hostile.addr, live.addr], Duration::from_secs(5));

        let got = within(fwd.resolve(&name("x.example.com."), RecordType::A))
            .await
            .unwrap();

        assert_eq!(hostile.tcp_queries(), 1);
        assert_eq!(got.answers.len(), 1, "answered by the live upstream");
    }
}

#[tokio::test]
async fn over_max_concurrent_is_refused_at_once() {
    let silent = silent().await;
    let metrics = Metrics::new();
    let config = ForwardConfig {
        upstreams: vec![silent.addr],
        timeout: Duration::from_secs(5),
        max_concurrent: 1,
        ..ForwardConfig::default()
    };
    let fwd = Arc::new(Forwarder::new(config, Arc::clone(&metrics)));

    let busy = {
        let fwd = Arc::clone(&fwd);
        tokio::spawn(async move { fwd.resolve(&name("one.example.com."), RecordType::A).await })
    };
    eventually("the first query is upstream", || silent.udp_queries() == 1).await;
    let got = within(fwd.resolve(&name("two.example.com."), RecordType::A)).await;

    assert!(matches!(got, Err(ForwardError::Overloaded(1))), "{got:?}");
    assert_eq!(metric(&metrics, FORWARD_MAX_CONCURRENT_REJECTS, &[]), 1.0);
    busy.abort();
}
