//! The handler end to end on raw bytes: flags, EDNS, truncation, refusals, errors.

use std::net::SocketAddr;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Handler;
use super::sample::{BIG_ENDPOINTS, handler};

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

const SRC: &str = "127.0.0.1:5300";

async fn ask(h: &Handler, m: &Message, protocol: Protocol) -> Message {
    let src: SocketAddr = SRC.parse().unwrap();
    let bytes = h.answer_raw(&m.to_vec().unwrap(), src, protocol).await.expect("a response");
    let mut decoder = BinDecoder::new(&bytes);
    let reply = Message::read(&mut decoder).unwrap();
    // Strict clients (dnspython) reject trailing bytes, which a truncated answer used to have.
    assert!(decoder.is_empty(), "{} bytes after the message", decoder.len());
    reply
}

#[tokio::test]
async fn zone_answer_is_authoritative_and_echoes_id_question_and_edns() {
    let h = handler(true);
    let r = ask(&h, &query("Reviews.Default.svc.cluster.local.", RecordType::A, Some(4096)), Protocol::Udp).await;
    assert_eq!(r.metadata.id, 4242);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert!(r.metadata.authoritative && r.metadata.recursion_desired && r.metadata.recursion_available);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries[0].name().to_ascii(), "Reviews.Default.svc.cluster.local.");
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].data.to_string(), "127.100.0.7");
    // EDNS answered, with our payload ceiling rather than the client's 4096.
    assert_eq!(r.edns.as_ref().map(|e| e.max_payload()), Some(super::MAX_UDP_PAYLOAD));
}

#[tokio::test]
async fn oversize_udp_answer_is_truncated_and_whole_over_tcp() {
    let h = handler(true);
    let q = query("big.default.svc.cluster.local.", RecordType::A, None);
    let udp = ask(&h, &q, Protocol::Udp).await;
    assert!(udp.metadata.truncation, "200 A records cannot fit 512 bytes");
    let tcp = ask(&h, &q, Protocol::Tcp).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), BIG_ENDPOINTS);
    // With EDNS the limit is the advertised size, capped at ours: still truncated.
    let edns = ask(&h, &query("big.default.svc.cluster.local.", RecordType::A, Some(65000)), Protocol::Udp).await;
    assert!(edns.metadata.truncation);
}

#[tokio::test]
async fn unsupported_requests_get_their_rcodes() {
    let h = handler(true);
    let axfr = ask(&h, &query("cluster.local.", RecordType::AXFR, None), Protocol::Tcp).await;
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);

    let mut notify = query("cluster.local.", RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(ask(&h, &notify, Protocol::Udp).await.metadata.response_code, ResponseCode::NotImp);

    let mut two = query("reviews.default.svc.cluster.local.", RecordType::A, None);
    two.add_query(Query::query(Name::from_ascii("big.default.svc.cluster.local.").unwrap(), RecordType::A));
    assert_eq!(ask(&h, &two, Protocol::Udp).await.metadata.response_code, ResponseCode::FormErr);

    let mut v1 = query("reviews.default.svc.cluster.local.", RecordType::A, Some(1232));
    if let Some(e) = v1.edns.as_mut() {
        e.set_version(1);
    }
    let r = ask(&h, &v1, Protocol::Udp).await;
    // 16 on the wire (hickory decodes the shared code as BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16, "{r:?}");
    assert!(r.answers.is_empty());
}

#[tokio::test]
async fn before_the_first_table_cluster_names_servfail_and_others_forward() {
    let h = handler(false);
    let r = ask(&h, &query("reviews.default.svc.cluster.local.", RecordType::A, None), Protocol::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(!r.metadata.authoritative);
    // No upstream configured: SERVFAIL from the forwarder, not a hang.
    let r = ask(&h, &query("example.com.", RecordType::A, None), Protocol::Udp).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn garbage_is_not_answered_by_the_handler() {
    let h = handler(true);
    let src: SocketAddr = SRC.parse().unwrap();
    for raw in [&[][..], &[0x12, 0x34, 0x01][..], &[0u8; 11][..]] {
        assert!(h.answer_raw(raw, src, Protocol::Udp).await.is_none());
    }
}
