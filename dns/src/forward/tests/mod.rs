//! Tests of the forwarder against fake upstreams, and of the cache with a simulated clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod failover;
mod fake;
mod forwarding;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{Name, RData, Record};

use super::{ForwardConfig, Forwarder};
use crate::metrics::Metrics;
use fake::Reply;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

/// An SOA for `zone` with record TTL `ttl` and MINIMUM `minimum`.
fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    let data = SOA::new(
        name("ns.example.net."),
        name("hostmaster.example.net."),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name(zone), ttl, RData::SOA(data))
}

/// The response to `query` with `rcode` and sections, echoing its question and EDNS.
fn response(
    query: &Message,
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
) -> Message {
    let mut message = Message::response(query.id, query.op_code);
    message.metadata.recursion_desired = query.recursion_desired;
    message.metadata.recursion_available = true;
    message.metadata.response_code = rcode;
    message.add_queries(query.queries.iter().cloned());
    message.insert_answers(answers);
    message.insert_authorities(authorities);
    if let Some(edns) = &query.edns {
        message.set_edns(edns.clone());
    }
    message
}

fn reply(
    query: &Message,
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
) -> Vec<Reply> {
    vec![Reply::Message(response(query, rcode, answers, authorities))]
}

/// An address nothing listens on: bound, read back, released. Datagrams to it draw ICMP
/// port unreachable.
async fn dead_addr() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap()
}

fn forwarder(upstreams: Vec<SocketAddr>, timeout: Duration) -> (Arc<Forwarder>, Arc<Metrics>) {
    let metrics = Metrics::new();
    let config = ForwardConfig {
        upstreams,
        timeout,
        ..ForwardConfig::default()
    };
    (
        Arc::new(Forwarder::new(config, Arc::clone(&metrics))),
        metrics,
    )
}

/// The value of the sample of `metric` whose labels contain every one of `labels`
/// (`key="value"`), or 0 when there is none.
fn metric(metrics: &Metrics, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|sample| sample == metric)
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `condition` holds, failing the test after a generous patience.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting until {what}");
}

/// Outer bound on calls that must return within their budget: generous, so a loaded
/// machine does not fail the test, yet a hang still does.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the forwarder hung past its budget")
}
