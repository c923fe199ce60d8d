//! Echo answers read back with the gateway's own codecs, for third-party request bytes
//! (the gateway's test vectors, written by npm hessian.js and PyPI thrift) and for each
//! Thrift dialect.

use super::*;
use bytes::BytesMut;
use corridor_gateway::codec::{
    Codec, Frame, MessageType, ResponseStatus,
    dubbo::{DubboCodec, peer as dubbo_peer, status},
    thrift::{
        Protocol as ThriftProtocol, ThriftCodec, Transport,
        peer::{self as thrift_peer, ClientDialect},
    },
};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(codec: &dyn Codec, bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frame
}

/// npm hessian.js: `DemoService.sayHello("world")`, request id 1, Dubbo 2.0.2.
const SAY_HELLO: &str =
    include_str!("../../../../gateway/src/codec/dubbo/testdata/sayhello-request.hex");

fn dubbo_call(version: &str, args: &[&str], two_way: bool) -> Frame {
    let attachments = [
        ("group".to_owned(), "blue".to_owned()),
        ("env".to_owned(), "x".to_owned()),
    ];
    let call = dubbo_peer::Call {
        dubbo_version: version,
        path: "com.example.Echo",
        version: "",
        method: "echo",
        args,
        attachments: &attachments,
    };
    decode(
        &DubboCodec::default(),
        &dubbo_peer::request(9, two_way, &call).unwrap(),
    )
}

#[test]
fn echo_value_is_prefixed_by_name() {
    assert_eq!(echo_value(Some("b1"), "hi"), "b1: hi");
    assert_eq!(echo_value(None, "hi"), "hi");
    assert_eq!(echo_value(None, ""), "");
}

#[test]
fn pairs_are_sorted_by_key() {
    let pairs = [
        ("z".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
    ];
    assert_eq!(sorted_pairs(&pairs), "a=2,z=1");
    assert_eq!(sorted_pairs(&[]), "");
}

#[test]
fn dubbo_echoes_the_first_argument_of_third_party_bytes() {
    let frame = decode(&DubboCodec::default(), &unhex(SAY_HELLO));
    let incoming = dubbo::read(&frame, Some("b1"), false).unwrap();
    assert_eq!(
        incoming.log.as_deref(),
        Some(
            "call dubbo id=1 interface=org.apache.dubbo.demo.DemoService method=sayHello \
             attachments=interface=org.apache.dubbo.demo.DemoService,\
             path=org.apache.dubbo.demo.DemoService,version=1.0.0"
        )
    );
    assert!(incoming.delayed);
    let answer = decode(&DubboCodec::default(), &incoming.answer.unwrap());
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(answer.metadata.request_id, 1);
    assert_eq!(answer.metadata.response_status, ResponseStatus::Ok);
    // Dubbo 2.0.2 callers read the value-with-attachments body (type 4).
    assert_eq!(answer.bytes[16], 0x94);
    let read = dubbo_peer::read_answer(&answer).unwrap();
    assert!(read.is_ok());
    assert_eq!(read.value.as_deref(), Some("b1: world"));
}

#[test]
fn dubbo_body_form_follows_the_callers_version() {
    for (version, body_type) in [
        ("2.0.2", 0x94),
        ("2.0.10", 0x94),
        ("2.4.10", 0x91),
        ("", 0x91),
    ] {
        let frame = dubbo_call(version, &["hi"], true);
        let answer = dubbo::read(&frame, None, false).unwrap().answer.unwrap();
        assert_eq!(answer[16], body_type, "{version}");
        let read = dubbo_peer::read_answer(&decode(&DubboCodec::default(), &answer)).unwrap();
        assert_eq!(read.value.as_deref(), Some("hi"), "{version}");
    }
}

#[test]
fn dubbo_without_string_argument_echoes_empty() {
    let frame = dubbo_call("2.0.2", &[], true);
    let answer = dubbo::read(&frame, Some("b1"), false)
        .unwrap()
        .answer
        .unwrap();
    let read = dubbo_peer::read_answer(&decode(&DubboCodec::default(), &answer)).unwrap();
    assert_eq!(read.value.as_deref(), Some("b1: "));
}

#[test]
fn dubbo_injected_error_is_a_service_error() {
    let frame = dubbo_call("2.0.2", &["hi"], true);
    let answer = dubbo::read(&frame, None, true).unwrap().answer.unwrap();
    let decoded = decode(&DubboCodec::default(), &answer);
    assert_eq!(decoded.metadata.response_status, ResponseStatus::Error);
    let read = dubbo_peer::read_answer(&decoded).unwrap();
    assert_eq!(read.status, status::SERVICE_ERROR);
    assert_eq!(read.value.as_deref(), Some(INJECTED));
}

#[test]
fn dubbo_one_way_is_logged_not_answered() {
    let frame = dubbo_call("2.0.2", &["hi"], false);
    let incoming = dubbo::read(&frame, None, false).unwrap();
    assert!(incoming.answer.is_none());
    assert_eq!(
        incoming.log.as_deref(),
        Some("call dubbo id=9 interface=com.example.Echo method=echo attachments=env=x,group=blue")
    );
}

#[test]
fn dubbo_heartbeat_is_answered_at_once() {
    // Request, two-way, event, Hessian2; id 5; body: null.
    let mut bytes = vec![0xda, 0xbb, 0xe2, 0];
    bytes.extend_from_slice(&5u64.to_be_bytes());
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.push(b'N');
    let frame = decode(&DubboCodec::default(), &bytes);
    let incoming = dubbo::read(&frame, None, false).unwrap();
    assert!(!incoming.delayed);
    assert!(incoming.log.is_none());
    let answer = decode(&DubboCodec::default(), &incoming.answer.unwrap());
    assert_eq!(answer.metadata.message_type, MessageType::HeartbeatResponse);
    assert_eq!(answer.metadata.request_id, 5);
}

/// Every dialect a client can pick.
const DIALECTS: [(Transport, ThriftProtocol); 6] = [
    (Transport::Framed, ThriftProtocol::Binary),
    (Transport::Framed, ThriftProtocol::Compact),
    (Transport::Unframed, ThriftProtocol::Binary),
    (Transport::Unframed, ThriftProtocol::Compact),
    (Transport::Header, ThriftProtocol::Binary),
    (Transport::Header, ThriftProtocol::Compact),
];

fn thrift_call(
    transport: Transport,
    protocol: ThriftProtocol,
    headers: &[(String, String)],
) -> Frame {
    let dialect = ClientDialect {
        transport,
        protocol,
    };
    let bytes = thrift_peer::call(dialect, "echo", 77, false, "hi", headers).unwrap();
    decode(&ThriftCodec::default(), &bytes)
}

#[test]
fn thrift_replies_in_the_callers_dialect() {
    let headers = [
        ("x-b".to_owned(), "2".to_owned()),
        ("x-a".to_owned(), "1".to_owned()),
    ];
    for (transport, protocol) in DIALECTS {
        let call = thrift_call(transport, protocol, &headers);
        let incoming = thrift::read(&call, Some("t"), false).unwrap();
        let reply = decode(&ThriftCodec::default(), &incoming.answer.unwrap());
        let what = format!("{transport:?}/{protocol:?}");
        assert_eq!(reply.metadata.message_type, MessageType::Response, "{what}");
        assert_eq!(reply.metadata.response_status, ResponseStatus::Ok, "{what}");
        assert_eq!(reply.metadata.request_id, 77, "{what}");
        assert_eq!(reply.metadata.dialect, call.metadata.dialect, "{what}");
        assert_eq!(reply.metadata.get("method"), Some("echo"), "{what}");
        assert_eq!(
            thrift_peer::string_field(&reply, 0).unwrap().as_deref(),
            Some("t: hi"),
            "{what}"
        );
        if transport == Transport::Header {
            assert_eq!(
                thrift_peer::headers(&reply.metadata),
                &headers[..],
                "{what}"
            );
            assert_eq!(
                incoming.log.as_deref(),
                Some("call thrift seqid=77 method=echo type=call headers=x-a=1,x-b=2")
            );
        } else {
            assert!(thrift_peer::headers(&reply.metadata).is_empty(), "{what}");
        }
    }
}

#[test]
fn thrift_injected_error_is_an_internal_application_exception() {
    for (transport, protocol) in DIALECTS {
        let call = thrift_call(transport, protocol, &[]);
        let answer = thrift::read(&call, None, true).unwrap().answer.unwrap();
        let reply = decode(&ThriftCodec::default(), &answer);
        let what = format!("{transport:?}/{protocol:?}");
        assert_eq!(
            reply.metadata.response_status,
            ResponseStatus::Error,
            "{what}"
        );
        // TApplicationException: field 1 the message, field 2 the type (i32 6).
        assert_eq!(
            thrift_peer::string_field(&reply, 1).unwrap().as_deref(),
            Some(INJECTED),
            "{what}"
        );
        let tail: &[u8] = if protocol == ThriftProtocol::Compact {
            &[0x15, 12, 0]
        } else {
            &[8, 0, 2, 0, 0, 0, 6, 0]
        };
        assert!(answer.ends_with(tail), "{what}: {answer:02x?}");
    }
}

#[test]
fn thrift_echoes_third_party_calls() {
    let rich = include_str!(
        "../../../../gateway/src/codec/thrift/testdata/thrift-unframed-binary-rich-request.hex"
    );
    let call = decode(&ThriftCodec::default(), &unhex(rich));
    let reply = thrift::read(&call, None, false).unwrap().answer.unwrap();
    let reply = decode(&ThriftCodec::default(), &reply);
    assert_eq!(
        thrift_peer::string_field(&reply, 0).unwrap().as_deref(),
        Some("h\u{e9}llo")
    );
    assert_eq!(reply.metadata.request_id, 300);

    // THeader from PyPI thrift: field 1 is an i32 (echo empty), headers come back.
    let add = include_str!(
        "../../../../gateway/src/codec/thrift/testdata/thrift-header-binary-add-request.hex"
    );
    let call = decode(&ThriftCodec::default(), &unhex(add));
    let incoming = thrift::read(&call, None, false).unwrap();
    let reply = decode(&ThriftCodec::default(), &incoming.answer.unwrap());
    assert_eq!(
        thrift_peer::string_field(&reply, 0).unwrap().as_deref(),
        Some("")
    );
    assert_eq!(reply.metadata.get("user"), Some("alice"));
    let log = incoming.log.unwrap();
    assert!(
        log.starts_with("call thrift seqid=21 method=add type=call headers=traceparent=00-"),
        "{log}"
    );
    assert!(log.ends_with(",user=alice"), "{log}");
}

#[test]
fn thrift_one_way_is_logged_not_answered() {
    let oneway = include_str!(
        "../../../../gateway/src/codec/thrift/testdata/thrift-header-binary-rich-oneway.hex"
    );
    let call = decode(&ThriftCodec::default(), &unhex(oneway));
    let incoming = thrift::read(&call, None, false).unwrap();
    assert!(incoming.answer.is_none());
    assert_eq!(
        incoming.log.as_deref(),
        Some("call thrift seqid=24 method=rich type=oneway headers=k=v")
    );
}

mod backend;

mod web;
