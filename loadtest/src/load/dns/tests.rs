//! Names, the query bytes, rcodes, and id matching against fake servers that answer out
//! of order (real servers run in tests/tests/load_protocols.rs).

use std::io::Write as _;

use hickory_server::proto::rr::{RData, Record, rdata::A};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
};

use super::*;

#[test]
fn names_come_from_a_list_or_a_file() {
    assert_eq!(
        read_names("a.test, b.test,,").unwrap(),
        ["a.test", "b.test"]
    );
    let mut file = tempfile_in_target();
    writeln!(file.1, "# names\nx.test\n\n  y.test  # the second\n").unwrap();
    let spec = format!("@{}", file.0.display());
    assert_eq!(read_names(&spec).unwrap(), ["x.test", "y.test"]);
    assert!(read_names("").is_err());
    assert!(read_names("@/nonexistent/names").is_err());
    let _ = std::fs::remove_file(&file.0);
}

/// A fresh file in the system temp dir (no temp-file crate in this crate's deps).
fn tempfile_in_target() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!(
        "corridor-load-names-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

#[test]
fn the_record_type_flag_takes_any_case() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        dns: DnsArgs,
    }
    let parse = |qtype: &str| {
        Cli::try_parse_from(["x", "--target", "a:53", "--names", "n", "--qtype", qtype])
            .map(|c| c.dns.qtype)
    };
    assert_eq!(parse("srv").unwrap(), Qtype::Srv);
    assert_eq!(parse("AAAA").unwrap(), Qtype::Aaaa);
    assert!(parse("MX").is_err());
}

#[test]
fn queries_are_fully_qualified_recursive_with_edns() {
    let q = question("www.example.test", Qtype::Aaaa).unwrap();
    let m = Message::from_vec(&q.bytes).unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "www.example.test.");
    assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
    // An address asked for PTR is its reverse name; for other types, a name.
    let ptr = question("192.0.2.7", Qtype::Ptr).unwrap();
    assert_eq!(ptr.query.name().to_ascii(), "7.2.0.192.in-addr.arpa.");
    assert_eq!(ptr.query.query_type(), RecordType::PTR);
    assert!(question("bad..name", Qtype::A).is_err());
}

#[test]
fn rcodes_count_as_answers_or_status_errors() {
    for (rcode, name, failed) in [
        (ResponseCode::NoError, "NOERROR", false),
        (ResponseCode::NXDomain, "NXDOMAIN", false),
        (ResponseCode::ServFail, "SERVFAIL", true),
        (ResponseCode::Refused, "REFUSED", true),
        (ResponseCode::FormErr, "FORMERR", true),
        (ResponseCode::YXDomain, "OTHER", true),
    ] {
        let a = rcode_answer(rcode);
        assert_eq!(
            (a.status, a.failed),
            (Status::Name(name), failed),
            "{rcode:?}"
        );
    }
}

/// The answer to `query`: NXDOMAIN for names starting with `nx`, else one A record.
fn answer(query: &[u8]) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.add_query(q.queries[0].clone());
    let name = q.queries[0].name().clone();
    if name.to_ascii().starts_with("nx") {
        r.metadata.response_code = ResponseCode::NXDomain;
    } else {
        r.add_answer(Record::from_rdata(name, 30, RData::A(A::new(192, 0, 2, 1))));
    }
    r.to_vec().unwrap()
}

/// A UDP server that reads `batch` queries, then answers them last first.
async fn udp_server(batch: usize) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut got = Vec::new();
            while got.len() < batch {
                let (n, from) = socket.recv_from(&mut buf).await.unwrap();
                got.push((buf[..n].to_vec(), from));
            }
            for (query, from) in got.into_iter().rev() {
                socket.send_to(&answer(&query), from).await.unwrap();
            }
        }
    });
    addr
}

/// A TCP server with the same behaviour, on one connection.
async fn tcp_server(batch: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        loop {
            let mut got = Vec::new();
            while got.len() < batch {
                let len = s.read_u16().await.unwrap();
                let mut query = vec![0u8; usize::from(len)];
                s.read_exact(&mut query).await.unwrap();
                got.push(query);
            }
            for query in got.into_iter().rev() {
                let a = answer(&query);
                s.write_u16(a.len() as u16).await.unwrap();
                s.write_all(&a).await.unwrap();
            }
        }
    });
    addr
}

#[tokio::test]
async fn answers_out_of_order_reach_their_queries_over_udp_and_tcp() {
    const IN_FLIGHT: usize = 8;
    for tcp in [false, true] {
        let addr = if tcp {
            tcp_server(IN_FLIGHT).await
        } else {
            udp_server(IN_FLIGHT).await
        };
        let names: Vec<String> = (0..IN_FLIGHT)
            .map(|i| {
                if i % 2 == 0 {
                    format!("n{i}.test")
                } else {
                    format!("nx{i}.test")
                }
            })
            .collect();
        let target = Arc::new(DnsTarget::new(addr, &names, Qtype::A, tcp).unwrap());
        let conn = Arc::new(target.connect().await.unwrap());
        let calls: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (target, conn) = (target.clone(), conn.clone());
                tokio::spawn(async move { target.ask(&conn).await.unwrap() })
            })
            .collect();
        let mut asked = Vec::new();
        for call in calls {
            let m = call.await.unwrap();
            let name = m.queries[0].name().to_ascii();
            // Each query got the answer to its own name: ids matched, not order.
            let expect = if name.starts_with("nx") {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            assert_eq!(m.metadata.response_code, expect, "tcp={tcp} {name}");
            asked.push(name);
        }
        asked.sort();
        let mut expected: Vec<String> = names.iter().map(|n| format!("{n}.")).collect();
        expected.sort();
        assert_eq!(asked, expected, "tcp={tcp}: every name asked once, in turn");
    }
}

#[tokio::test]
async fn an_answer_to_another_question_is_a_protocol_error() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let other = question("other.test", Qtype::A).unwrap();
        let mut wrong = answer(&other.bytes);
        wrong[..2].copy_from_slice(&id.to_be_bytes());
        let _ = n;
        socket.send_to(&wrong, from).await.unwrap();
    });
    let target = DnsTarget::new(addr, &["asked.test".to_owned()], Qtype::A, false).unwrap();
    let conn = target.connect().await.unwrap();
    assert!(matches!(target.call(&conn).await, Err(CallError::Codec(_))));
}
