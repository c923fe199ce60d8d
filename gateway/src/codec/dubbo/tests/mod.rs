use bytes::{Bytes, BytesMut};

use super::header::{HEADER_LEN, Header};
use super::hessian::Reader;
use super::write::write_string;
use super::*;
use crate::policy::reject::{Reject, RejectKind};

mod vectors;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The third-party capture (npm hessian.js, dubbo2.js framing).
fn say_hello() -> Vec<u8> {
    hex(include_str!("../testdata/sayhello-request.hex"))
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = DubboCodec::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frame
}

/// A message with `flags`, `status`, `id` and `body`.
/// Writes `frame` with attachment `key` set to `value`; returns the bytes and their
/// decoding.
fn set_attachment(frame: &Frame, key: &str, value: &str) -> (BytesMut, Frame) {
    let edit = Edit {
        request_id: None,
        set: vec![(key.into(), value.into())],
    };
    let mut out = BytesMut::new();
    DubboCodec::default()
        .encode(frame, &edit, &mut out)
        .unwrap();
    let again = decode_one(&out);
    (out, again)
}

fn message(flags: u8, status: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Header {
        flags,
        status,
        request_id: id,
        body_len: body.len(),
    }
    .write(&mut out);
    out.extend_from_slice(body);
    out.to_vec()
}

#[test]
fn decodes_the_third_party_vector() {
    let frame = decode_one(&say_hello());
    let m = &frame.metadata;
    assert_eq!(m.message_type, MessageType::Request);
    assert_eq!(m.request_id, 1);
    assert_eq!(m.dialect, 2);
    assert_eq!(
        m.get("interface"),
        Some("org.apache.dubbo.demo.DemoService")
    );
    assert_eq!(m.get("method"), Some("sayHello"));
    assert_eq!(m.get("version"), Some("1.0.0"));
    assert_eq!(m.get("path"), Some("org.apache.dubbo.demo.DemoService"));
    assert_eq!(m.get("group"), None);
    let names: Vec<&str> = m.attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "interface",
            "method",
            "version",
            "interface",
            "path",
            "version"
        ]
    );
}

#[test]
fn waits_for_every_split_point() {
    let bytes = say_hello();
    let codec = DubboCodec::default();
    for split in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..split]);
        assert!(codec.decode(&mut buf).unwrap().is_none(), "split {split}");
        assert_eq!(buf.len(), split, "consumed at split {split}");
        buf.extend_from_slice(&bytes[split..]);
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.bytes, bytes, "split {split}");
    }
}

#[test]
fn takes_one_message_at_a_time() {
    let first = say_hello();
    let second = message(0xe2, 0, 9, b"N");
    let mut buf = BytesMut::from(&[first.clone(), second.clone()].concat()[..]);
    let codec = DubboCodec::default();
    assert_eq!(codec.decode(&mut buf).unwrap().unwrap().bytes, first);
    let next = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(next.bytes, second);
    assert_eq!(next.metadata.request_id, 9);
    assert!(buf.is_empty());
}

#[test]
fn refuses_bad_magic_as_soon_as_visible() {
    let codec = DubboCodec::default();
    let mut one = BytesMut::from(&b"G"[..]);
    assert!(matches!(
        codec.decode(&mut one),
        Err(CodecError::NotProtocol { .. })
    ));
    let mut bytes = say_hello();
    bytes[1] = 0xbc;
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::NotProtocol { .. })
    ));
}

#[test]
fn refuses_oversize_bodies_before_buffering_them() {
    let codec = DubboCodec::new(1024);
    let header = message(0xc2, 0, 1, &[]);
    let mut header = header[..HEADER_LEN - 4].to_vec();
    header.extend_from_slice(&1009u32.to_be_bytes());
    let mut buf = BytesMut::from(&header[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::TooLarge {
                len: 1025,
                max: 1024,
                ..
            }
        ),
        "{err}"
    );
    // Exactly the maximum is fine (and waits for the body).
    header[HEADER_LEN - 1] -= 1;
    assert!(
        codec
            .decode(&mut BytesMut::from(&header[..]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn answers_heartbeats() {
    let codec = DubboCodec::default();
    let ping = decode_one(&message(0xe2, 0, 77, b"N"));
    assert_eq!(ping.metadata.message_type, MessageType::Heartbeat);
    let pong = codec.heartbeat_reply(&ping.metadata).unwrap();
    assert_eq!(&pong[..], &message(0x22, 20, 77, b"N")[..]);
    let pong = decode_one(&pong);
    assert_eq!(pong.metadata.message_type, MessageType::HeartbeatResponse);
    assert_eq!(pong.metadata.request_id, 77);
    assert_eq!(pong.metadata.response_status, ResponseStatus::Ok);
}

#[test]
fn reads_one_way_requests_and_response_statuses() {
    let mut oneway = say_hello();
    oneway[2] = 0x82;
    assert_eq!(
        decode_one(&oneway).metadata.message_type,
        MessageType::Oneway
    );
    // Status 20 with a value (type 1), with an exception (type 0), and status 70.
    let ok = decode_one(&message(
        0x02,
        20,
        5,
        &[0x91, 0x05, b'h', b'e', b'l', b'l', b'o'],
    ));
    assert_eq!(ok.metadata.message_type, MessageType::Response);
    assert_eq!(ok.metadata.response_status, ResponseStatus::Ok);
    let thrown = decode_one(&message(0x02, 20, 5, &[0x90, b'N']));
    assert_eq!(thrown.metadata.response_status, ResponseStatus::Error);
    let failed = decode_one(&message(0x02, 70, 5, &[0x03, b'b', b'a', b'd']));
    assert_eq!(failed.metadata.response_status, ResponseStatus::Error);
}

#[test]
fn passes_frames_through_and_rewrites_request_ids() {
    let codec = DubboCodec::default();
    let frame = decode_one(&say_hello());
    let mut out = BytesMut::new();
    codec.encode(&frame, &Edit::default(), &mut out).unwrap();
    assert_eq!(out, frame.bytes);
    let edit = Edit {
        request_id: Some(0x0102_0304_0506_0708),
        set: vec![],
    };
    let mut out = BytesMut::new();
    codec.encode(&frame, &edit, &mut out).unwrap();
    assert_eq!(&out[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&out[..4], &frame.bytes[..4]);
    assert_eq!(&out[12..], &frame.bytes[12..]);
}

/// The arguments' bytes: from the end of the descriptor to the attachments map.
fn args_of(bytes: &[u8]) -> Vec<u8> {
    let body = &bytes[HEADER_LEN..];
    let parsed = request::parse(body).unwrap();
    let mut r = Reader::new(body);
    for _ in 0..5 {
        r.read_string().unwrap();
    }
    body[r.pos()..parsed.span.start].to_vec()
}

#[test]
fn mutates_attachments() {
    let codec = DubboCodec::default();
    let frame = decode_one(&say_hello());
    assert!(codec.can_mutate(&frame.metadata));
    let edit = Edit {
        request_id: Some(42),
        set: vec![
            ("version".into(), "2.0.0".into()),
            ("x-canary".into(), "héllo 😀".into()),
            ("x-canary".into(), "blue".into()),
        ],
    };
    let mut out = BytesMut::new();
    codec.encode(&frame, &edit, &mut out).unwrap();
    let again = decode_one(&out);
    let m = &again.metadata;
    assert_eq!(m.request_id, 42);
    assert_eq!(m.get("x-canary"), Some("blue"));
    assert_eq!(m.get("path"), Some("org.apache.dubbo.demo.DemoService"));
    let versions: Vec<&str> = m
        .attributes
        .iter()
        .filter(|(k, _)| k == "version")
        .map(|(_, v)| v.as_str())
        .collect();
    // The body's service version comes first, then the replaced attachment.
    assert_eq!(versions, ["1.0.0", "2.0.0"]);
    assert_eq!(args_of(&out), args_of(&frame.bytes));
    assert_eq!(args_of(&out), [0x05, b'w', b'o', b'r', b'l', b'd']);
}

#[test]
fn adds_attachments_to_a_body_without_them() {
    let mut body = BytesMut::new();
    for s in ["2.0.2", "com.example.Echo", "", "echo", "I"] {
        write_string(&mut body, s);
    }
    body.extend_from_slice(&[0x91]);
    let frame = decode_one(&message(0xc2, 0, 3, &body));
    assert_eq!(frame.metadata.get("version"), None);
    let (_, again) = set_attachment(&frame, "group", "blue");
    assert_eq!(again.metadata.get("group"), Some("blue"));
    assert_eq!(again.metadata.get("interface"), Some("com.example.Echo"));
}

#[test]
fn local_replies_decode_as_responses() {
    let codec = DubboCodec::default();
    let request = decode_one(&say_hello()).metadata;
    for (kind, want) in [
        (RejectKind::NoRoute, 60),
        (RejectKind::Timeout, 31),
        (RejectKind::NoCluster, 80),
        (RejectKind::NoHealthyUpstream, 80),
        (RejectKind::UpstreamReset, 80),
        (RejectKind::Overflow, 100),
        (RejectKind::RateLimited, 100),
        (RejectKind::BadRequest, 40),
        (RejectKind::Unauthorized, 40),
        (RejectKind::Internal, 80),
    ] {
        let error = Reject {
            kind,
            message: format!("no luck: {kind:?}").into(),
        };
        let bytes: Bytes = codec.local_reply(&request, &error);
        assert_eq!(bytes[3], want, "{kind:?}");
        let reply = decode_one(&bytes);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(reply.metadata.request_id, 1);
        assert_eq!(reply.metadata.response_status, ResponseStatus::Error);
        let text = Reader::new(&bytes[HEADER_LEN..]).read_string().unwrap();
        assert_eq!(text.as_deref(), Some(&*error.message));
    }
}

#[test]
fn error_reply_needs_a_readable_request_header() {
    let codec = DubboCodec::default();
    let err = CodecError::Corrupt {
        protocol: "dubbo",
        reason: "bad body".into(),
    };
    let reply = codec.error_reply(&say_hello(), &err).unwrap();
    assert_eq!(reply[3], 40);
    assert_eq!(&reply[4..12], &1u64.to_be_bytes());
    let text = Reader::new(&reply[HEADER_LEN..])
        .read_string()
        .unwrap()
        .unwrap();
    assert!(text.contains("bad body"), "{text}");
    assert!(codec.error_reply(&say_hello()[..10], &err).is_none());
    assert!(codec.error_reply(b"GET / HTTP/1.1\r\n\r\n", &err).is_none());
    assert!(
        codec
            .error_reply(&message(0x02, 20, 1, &[]), &err)
            .is_none()
    );
}

#[test]
fn corrupt_bodies_are_errors_not_panics() {
    let codec = DubboCodec::default();
    let bytes = say_hello();
    // Every truncation of the body, with the length fixed to match.
    for cut in HEADER_LEN..bytes.len() {
        let short = message(bytes[2], 0, 1, &bytes[HEADER_LEN..cut]);
        let _ = codec.decode(&mut BytesMut::from(&short[..]));
    }
    // Every byte replaced by a few values, and every mutable outcome re-encoded.
    let edit = Edit {
        request_id: Some(3),
        set: vec![("k".into(), "v".into())],
    };
    for i in 0..bytes.len() {
        for v in [
            0x00, 0x1f, 0x30, 0x41, 0x43, 0x4f, 0x51, 0x52, 0x55, 0x56, 0x5a, 0x60, 0x70, 0xff,
        ] {
            let mut bad = bytes.clone();
            bad[i] = v;
            if let Ok(Some(frame)) = codec.decode(&mut BytesMut::from(&bad[..])) {
                let _ = codec.encode(&frame, &edit, &mut BytesMut::new());
            }
            let _ = codec.error_reply(
                &bad,
                &CodecError::Corrupt {
                    protocol: "d",
                    reason: String::new(),
                },
            );
        }
    }
}

#[test]
fn response_codes_are_the_status_byte() {
    let codec = DubboCodec::default();
    let ok = decode_one(&message(0x02, 20, 5, &[0x91]));
    assert_eq!(codec.response_code(&ok), 20);
    // The service threw: status 20 still (its HTTP equivalent is 500).
    let thrown = decode_one(&message(0x02, 20, 5, &[0x90, b'N']));
    assert_eq!(
        (codec.response_code(&thrown), codec.http_status(&thrown)),
        (20, 500)
    );
    let failed = decode_one(&message(0x02, 70, 5, &[0x03, b'b', b'a', b'd']));
    assert_eq!(codec.response_code(&failed), 70);
    let request = decode_one(&say_hello()).metadata;
    let reply = decode_one(&codec.local_reply(&request, &Reject::of(RejectKind::Overflow)));
    assert_eq!(codec.response_code(&reply), 100);
    assert_eq!(codec.reject_code(RejectKind::Overflow), 100);
    assert_eq!(codec.delivered_code(), 20);
}
