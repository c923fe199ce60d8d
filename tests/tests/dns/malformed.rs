//! Malformed packets over UDP and TCP: the server answers FORMERR (or another refusal) or
//! drops them, never crashes, and answers the next good query.

use std::net::SocketAddr;
use std::time::Duration;

use corridor_tests::dns::raw::{self, TcpOutcome};
use corridor_tests::dns::{Dns, svc_name};

use super::{PLAIN_IP, cluster};

/// How long to wait for a reply to a bad packet before counting it as dropped.
const DROP_WAIT: Duration = Duration::from_millis(300);
/// How long a good query may take.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// RCODE FORMERR.
const FORMERR: u8 = 1;
/// RCODE NOTIMP and REFUSED: acceptable refusals of an opcode the server does not serve.
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

const ID: u16 = 0x4242;

/// A header with `id`, flags 0x0100 (RD) and the four counts.
fn header(qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = ID.to_be_bytes().to_vec();
    h.extend_from_slice(&[0x01, 0x00]);
    for count in [qd, an, ns, ar] {
        h.extend_from_slice(&count.to_be_bytes());
    }
    h
}

/// `name` bytes followed by QTYPE A, QCLASS IN.
fn question(name: &[u8]) -> Vec<u8> {
    let mut q = name.to_vec();
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// An OPT pseudo-record with payload 1232 and `rdata`.
fn opt(rdlen: u16, rdata: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    o.extend_from_slice(&rdlen.to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

/// Each bad packet, with the RCODEs acceptable if the server answers at all.
fn bad_packets(good_name: &str) -> Vec<(&'static str, Vec<u8>, &'static [u8])> {
    let good = raw::query(ID, good_name, 1);
    let name = raw::encode_name(good_name);
    let concat = |parts: &[&[u8]]| parts.concat();
    let mut long_name = Vec::new();
    for _ in 0..5 {
        long_name.push(63);
        long_name.extend_from_slice(&[b'a'; 63]);
    }
    long_name.push(0);
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..300 {
        // xorshift: deterministic bytes, the same on every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(x.to_le_bytes()[0]);
    }
    let mut not_query = good.clone();
    not_query[2] = 0x01 | (2 << 3); // opcode STATUS
    let formerr: &'static [u8] = &[FORMERR];
    vec![
        ("empty datagram", vec![], formerr),
        ("truncated header", good[..5].to_vec(), formerr),
        ("header only, QDCOUNT 1", header(1, 0, 0, 0), formerr),
        (
            "label longer than the packet",
            concat(&[&header(1, 0, 0, 0), &[48, b'a', b'b', 0]]),
            formerr,
        ),
        (
            "reserved label type 0b10",
            concat(&[&header(1, 0, 0, 0), &question(&[0x80, b'a', 0])]),
            formerr,
        ),
        (
            "compression pointer to itself",
            concat(&[&header(1, 0, 0, 0), &question(&[0xc0, 12])]),
            formerr,
        ),
        (
            "compression pointer forward",
            concat(&[&header(1, 0, 0, 0), &question(&[0xc0, 40])]),
            formerr,
        ),
        (
            "compression loop through two pointers",
            concat(&[&header(1, 0, 0, 0), &[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]]),
            formerr,
        ),
        (
            "name over 255 bytes",
            concat(&[&header(1, 0, 0, 0), &question(&long_name)]),
            formerr,
        ),
        (
            "QDCOUNT 65535 with one question",
            concat(&[&header(u16::MAX, 0, 0, 0), &question(&name)]),
            formerr,
        ),
        (
            "ANCOUNT 65535 in a query",
            concat(&[&header(1, u16::MAX, 0, 0), &question(&name)]),
            formerr,
        ),
        (
            "ARCOUNT 65535 in a query",
            concat(&[&header(1, 0, 0, u16::MAX), &question(&name)]),
            formerr,
        ),
        ("QDCOUNT 0", header(0, 0, 0, 0), formerr),
        (
            "question cut after the name",
            concat(&[&header(1, 0, 0, 0), &name, &[0]]),
            formerr,
        ),
        (
            "two OPT records",
            concat(&[
                &header(1, 0, 0, 2),
                &question(&name),
                &opt(0, &[]),
                &opt(0, &[]),
            ]),
            formerr,
        ),
        (
            "OPT longer than the packet",
            concat(&[&header(1, 0, 0, 1), &question(&name), &opt(200, &[0, 10])]),
            formerr,
        ),
        ("random bytes", garbage, formerr),
        ("opcode STATUS", not_query, &[NOTIMP, REFUSED, FORMERR]),
    ]
}

/// Checks a reply to a bad packet: a response, the query's ID (when the packet had one),
/// one of the `allowed` RCODEs.
fn check_reply(what: &str, transport: &str, sent: &[u8], reply: &[u8], allowed: &[u8]) {
    assert!(
        reply.len() >= 12,
        "{transport} {what}: a reply shorter than a header: {reply:?}"
    );
    assert!(
        raw::is_response(reply),
        "{transport} {what}: the reply has QR unset"
    );
    if sent.len() >= 2 {
        assert_eq!(
            raw::id(reply),
            raw::id(sent),
            "{transport} {what}: the reply's ID"
        );
    }
    let rcode = raw::rcode(reply).unwrap_or(0);
    assert!(
        allowed.contains(&rcode),
        "{transport} {what}: RCODE {rcode}, expected one of {allowed:?} or no reply"
    );
}

/// A good query over UDP answers the service's address.
async fn assert_udp_serves(server: SocketAddr, name: &str, after: &str) {
    let reply = raw::udp_exchange(server, &raw::query(7, name, 1), ANSWER_WAIT)
        .await
        .unwrap_or_else(|| panic!("UDP: no answer to a good query after {after}"));
    assert_eq!(
        (raw::id(&reply), raw::rcode(&reply)),
        (Some(7), Some(0)),
        "UDP after {after}"
    );
}

/// A good query over a new TCP connection answers.
async fn assert_tcp_serves(server: SocketAddr, name: &str, after: &str) {
    match raw::tcp_exchange(
        server,
        &raw::framed(&raw::query(8, name, 1)),
        false,
        ANSWER_WAIT,
    )
    .await
    {
        TcpOutcome::Reply(reply) => {
            assert_eq!(
                (raw::id(&reply), raw::rcode(&reply)),
                (Some(8), Some(0)),
                "TCP after {after}"
            )
        }
        other => panic!("TCP: {other:?} for a good query after {after}"),
    }
}

async fn assert_dig_serves(dns: &Dns, name: &str) {
    let reply = dns.dig(name, "A").await;
    assert_eq!(
        reply.addresses(),
        [PLAIN_IP],
        "dig after the bad packets:\n{}",
        reply.text
    );
}

#[tokio::test]
async fn malformed_udp_packets_are_refused_or_dropped() {
    let (mesh, mut dns) = cluster("dnsbadudp", &[]).await;
    let name = svc_name("plain", &mesh.ns);
    for (what, packet, allowed) in bad_packets(&name) {
        if let Some(reply) = raw::udp_exchange(dns.addr, &packet, DROP_WAIT).await {
            check_reply(what, "UDP", &packet, &reply, allowed);
        }
        dns.assert_alive();
        assert_udp_serves(dns.addr, &name, what).await;
    }
    // A response sent to the server is not answered (two servers must never bounce
    // replies at each other).
    let mut response = raw::query(ID, &name, 1);
    response[2] |= 0x80;
    let reply = raw::udp_exchange(dns.addr, &response, DROP_WAIT).await;
    assert_eq!(reply, None, "a packet with QR set got a reply");
    dns.assert_alive();
    assert_dig_serves(&dns, &name).await;
}

#[tokio::test]
async fn malformed_tcp_messages_are_refused_or_dropped() {
    let (mesh, mut dns) = cluster("dnsbadtcp", &[]).await;
    let name = svc_name("plain", &mesh.ns);
    for (what, packet, allowed) in bad_packets(&name) {
        match raw::tcp_exchange(dns.addr, &raw::framed(&packet), false, DROP_WAIT).await {
            TcpOutcome::Reply(reply) => check_reply(what, "TCP", &packet, &reply, allowed),
            TcpOutcome::Closed | TcpOutcome::Silent => {}
        }
        dns.assert_alive();
        assert_tcp_serves(dns.addr, &name, what).await;
    }
    // Framing errors: a length prefix promising more than comes, a zero length, half a
    // length prefix; each followed by the client closing its side.
    let good = raw::query(ID, &name, 1);
    let short = [&[0x02, 0x00][..], &good].concat();
    let framing: [(&str, Vec<u8>); 3] = [
        ("length 512 with fewer bytes", short),
        ("length 0", vec![0, 0]),
        ("one byte of length", vec![0]),
    ];
    for (what, bytes) in framing {
        match raw::tcp_exchange(dns.addr, &bytes, true, DROP_WAIT).await {
            TcpOutcome::Reply(reply) => check_reply(what, "TCP", &[], &reply, &[FORMERR]),
            TcpOutcome::Closed | TcpOutcome::Silent => {}
        }
        dns.assert_alive();
        assert_tcp_serves(dns.addr, &name, what).await;
    }
    assert_dig_serves(&dns, &name).await;
}
