//! Thrift codec tests against bytes written by the Apache Thrift Python library
//! (testdata/README.md says how each file was made).

use bytes::BytesMut;

use super::transport::Dialect;
use super::*;
use crate::policy::reject::{Reject, RejectKind};

mod vectors;

use MessageType::Response;
use ResponseStatus::Error;
use vectors::{EXPECTED, VECTORS, bytes_of, unhex};

fn decode_all(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = ThriftCodec::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "left {} bytes", buf.len());
    frame
}

#[test]
fn decodes_every_vector() {
    assert_eq!(VECTORS.len(), EXPECTED.len());
    for &(name, attr, transport, protocol, kind, seqid, method, status) in EXPECTED {
        let frame = decode_all(&bytes_of(name));
        let m = &frame.metadata;
        let dialect = Dialect::from_bits(m.dialect);
        assert_eq!(
            (dialect.transport, dialect.protocol),
            (transport, protocol),
            "{name}"
        );
        assert_eq!(m.message_type, kind, "{name}");
        assert_eq!(m.request_id, u64::from(seqid as u32), "{name}");
        assert_eq!(m.get("method"), Some(method), "{name}");
        if kind == Response {
            assert_eq!(m.response_status, status, "{name}");
        }
        if let Some((k, v)) = attr.split_once('=') {
            assert_eq!(m.get(k), Some(v), "{name}");
        }
    }
}

#[test]
fn theader_keeps_every_info_header() {
    let m = decode_all(&bytes_of("header-binary-add-request")).metadata;
    assert_eq!(
        m.get("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(
        m.attributes.first().map(|(k, _)| k.as_str()),
        Some("method")
    );
}

#[test]
fn waits_for_whole_message_at_every_split() {
    let codec = ThriftCodec::default();
    for (name, _) in VECTORS {
        let bytes = bytes_of(name);
        for split in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            assert!(
                codec.decode(&mut buf).unwrap().is_none(),
                "{name} at {split}"
            );
            assert_eq!(buf.len(), split, "{name}: consumed at {split}");
            buf.extend_from_slice(&bytes[split..]);
            let frame = codec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(&frame.bytes[..], &bytes[..], "{name}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn takes_one_message_at_a_time() {
    let codec = ThriftCodec::default();
    for (name, _) in VECTORS {
        let one = bytes_of(name);
        let other = bytes_of("header-compact-add-request");
        let mut buf = BytesMut::from(&one[..]);
        buf.extend_from_slice(&other);
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&first.bytes[..], &one[..], "{name}");
        let second = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&second.bytes[..], &other[..], "{name}");
        assert!(buf.is_empty());
    }
}

#[test]
fn rejects_frames_over_the_limit_before_they_arrive() {
    let bytes = bytes_of("framed-binary-add-request");
    let codec = ThriftCodec::new(bytes.len() - 5);
    // Only the first six bytes are needed to see the announced length.
    let mut buf = BytesMut::from(&bytes[..6]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::TooLarge { len: 34, .. })
    ));
    // Unframed: over the limit once that many bytes are buffered without an end.
    let bytes = bytes_of("unframed-compact-rich-request");
    let codec = ThriftCodec::new(20);
    let mut buf = BytesMut::from(&bytes[..21]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::TooLarge { .. })
    ));
    let mut buf = BytesMut::from(&bytes[..10]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn rejects_what_is_not_thrift() {
    let codec = ThriftCodec::default();
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x80, 0x02, 0, 1, 0, 0, 0, 0][..],
        &[0xff; 8][..],
    ] {
        assert!(codec.decode(&mut BytesMut::from(junk)).is_err(), "{junk:?}");
    }
}

#[test]
fn empty_edit_writes_bytes_unchanged() {
    let codec = ThriftCodec::default();
    for (name, _) in VECTORS {
        let frame = decode_all(&bytes_of(name));
        let mut out = BytesMut::new();
        codec.encode(&frame, &Edit::default(), &mut out).unwrap();
        assert_eq!(&out[..], &frame.bytes[..], "{name}");
    }
}

#[test]
fn rewrites_the_seqid_in_every_dialect() {
    let codec = ThriftCodec::default();
    for (name, _) in VECTORS {
        let frame = decode_all(&bytes_of(name));
        // 0x9000_0001 is negative as i32 and a five-byte varint in compact.
        for id in [5u64, 0x9000_0001, 1 << 20] {
            let edit = Edit {
                request_id: Some(id),
                set: vec![],
            };
            let mut out = BytesMut::new();
            codec.encode(&frame, &edit, &mut out).unwrap();
            let again = decode_all(&out);
            let mut expected = frame.metadata.clone();
            expected.request_id = id;
            assert_eq!(again.metadata, expected, "{name} id {id}");
            if name.starts_with("header") {
                // The THeader seq id follows the seqid.
                assert_eq!(out[8..12], (id as u32).to_be_bytes(), "{name}");
            }
        }
    }
}

#[test]
fn theader_mutation_round_trips() {
    let codec = ThriftCodec::default();
    for name in [
        "header-binary-add-request",
        "header-compact-add-request",
        "header-binary-rich-oneway",
    ] {
        let frame = decode_all(&bytes_of(name));
        assert!(codec.can_mutate(&frame.metadata));
        let set = vec![
            ("user".to_string(), "bob".to_string()),
            ("x-new".to_string(), "1".to_string()),
        ];
        let edit = Edit {
            request_id: Some(99),
            set,
        };
        let mut out = BytesMut::new();
        codec.encode(&frame, &edit, &mut out).unwrap();
        let m = decode_all(&out).metadata;
        assert_eq!(m.get("user"), Some("bob"), "{name}");
        assert_eq!(m.get("x-new"), Some("1"), "{name}");
        assert_eq!(m.request_id, 99);
        assert_eq!(m.get("method"), frame.metadata.get("method"));
        // Everything else kept, and `user` replaced rather than added twice.
        for (k, v) in &frame.metadata.attributes {
            if k != "user" {
                assert_eq!(m.get(k), Some(v.as_str()), "{name} {k}");
            }
        }
        assert_eq!(m.attributes.iter().filter(|(k, _)| k == "user").count(), 1);
        // The frame length was fixed to the new size.
        assert_eq!(
            u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize,
            out.len() - 4
        );
    }
}

#[test]
fn attribute_edits_need_theader() {
    let codec = ThriftCodec::default();
    let frame = decode_all(&bytes_of("framed-binary-add-request"));
    assert!(!codec.can_mutate(&frame.metadata));
    let edit = Edit {
        request_id: None,
        set: vec![("a".into(), "b".into())],
    };
    let mut out = BytesMut::new();
    codec.encode(&frame, &edit, &mut out).unwrap();
    assert_eq!(&out[..], &frame.bytes[..]);
}

#[test]
fn local_replies_decode_as_exceptions_in_the_callers_dialect() {
    let codec = ThriftCodec::default();
    for (name, _) in VECTORS {
        let request = decode_all(&bytes_of(name)).metadata;
        let error = Reject {
            kind: RejectKind::NoRoute,
            message: "no route for add".into(),
        };
        let reply = codec.local_reply(&request, &error);
        let m = decode_all(&reply).metadata;
        assert_eq!(m.message_type, Response, "{name}");
        assert_eq!(m.response_status, Error, "{name}");
        assert_eq!(m.request_id, request.request_id, "{name}");
        assert_eq!(m.get("method"), request.get("method"), "{name}");
        assert_eq!(m.dialect, request.dialect, "{name}");
        assert!(
            reply.windows(16).any(|w| w == b"no route for add"),
            "{name}"
        );
    }
}

#[test]
fn binary_local_reply_is_byte_exact() {
    let request = decode_all(&bytes_of("framed-binary-add-request")).metadata;
    let error = Reject {
        kind: RejectKind::NoRoute,
        message: "x".into(),
    };
    let reply = ThriftCodec::default().local_reply(&request, &error);
    let expected = unhex(concat!(
        "0000001f",       // frame length (31)
        "80010003",       // version 1, EXCEPTION
        "00000003616464", // "add"
        "00000007",       // seqid
        "0b0001",
        "0000000178", // field 1 string "x"
        "080002",
        "00000001", // field 2 i32 UNKNOWN_METHOD
        "00",
    ));
    assert_eq!(&reply[..], &expected[..]);
}

#[test]
fn error_reply_needs_a_readable_header() {
    let codec = ThriftCodec::new(16);
    let bytes = bytes_of("header-compact-add-request");
    let mut buf = BytesMut::from(&bytes[..]);
    let error = codec.decode(&mut buf).unwrap_err();
    let reply = codec.error_reply(&bytes, &error).unwrap();
    let m = decode_all(&reply).metadata;
    assert_eq!((m.request_id, m.get("method")), (22, Some("add")));
    assert_eq!(m.response_status, Error);
    assert!(codec.error_reply(b"GET / HTTP/1.1", &error).is_none());
    assert_eq!(codec.heartbeat_reply(&m), None);
}

/// Every truncation, and every byte of every vector set to a few values, decodes to a
/// frame, an error or "need more" without panicking; whatever decodes also encodes and
/// answers.
#[test]
fn never_panics_on_damaged_vectors() {
    let codec = ThriftCodec::new(4096);
    let edit = Edit {
        request_id: Some(1),
        set: vec![("k".into(), "v".into())],
    };
    let mut inputs = Vec::new();
    for (name, _) in VECTORS {
        let bytes = bytes_of(name);
        for cut in 0..bytes.len() {
            inputs.push(bytes[..cut].to_vec());
        }
        for i in 0..bytes.len() {
            for v in [0x00, 0x01, 0x0f, 0x7f, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] = v;
                inputs.push(damaged);
            }
        }
    }
    for input in inputs {
        let mut buf = BytesMut::from(&input[..]);
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let mut out = BytesMut::new();
                let _ = codec.encode(&frame, &edit, &mut out);
                let error = Reject {
                    kind: RejectKind::Timeout,
                    message: "t".into(),
                };
                let _ = codec.local_reply(&frame.metadata, &error);
            }
            Ok(None) => {}
            Err(e) => {
                let _ = codec.error_reply(&input, &e);
            }
        }
    }
}

/// An unframed binary CALL `f` seqid 1 with `body` as its struct.
fn unframed_binary_call(body: &[u8]) -> Vec<u8> {
    let mut out = unhex("80010001000000016600000001");
    out.extend_from_slice(body);
    out
}

#[test]
fn deep_nesting_is_corrupt_not_a_stack_overflow() {
    // Field 1 of type struct, 10,000 times over.
    let body: Vec<u8> = [12, 0, 1].repeat(10_000);
    let mut buf = BytesMut::from(&unframed_binary_call(&body)[..]);
    let error = ThriftCodec::default().decode(&mut buf).unwrap_err();
    assert!(error.to_string().contains("nesting too deep"), "{error}");
}

#[test]
fn announced_counts_do_not_outrun_the_bytes() {
    // A list<i32> announcing 2^31-1 elements, with two present: wait for more, and give
    // up with TooLarge once the buffer passes the limit.
    let mut body = unhex("0f0001087fffffff");
    body.extend_from_slice(&[0; 8]);
    let bytes = unframed_binary_call(&body);
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(ThriftCodec::default().decode(&mut buf).unwrap().is_none());
    let mut buf = BytesMut::from(&bytes[..]);
    let small = ThriftCodec::new(bytes.len() - 1);
    assert!(matches!(
        small.decode(&mut buf),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn padded_compact_seqid_is_rewritten_whole() {
    // Compact CALL `f`, seqid 1 written as a padded two-byte varint (0x81 0x00), empty body.
    let bytes = unhex("82218100016600");
    let frame = decode_all(&bytes);
    assert_eq!(frame.metadata.request_id, 1);
    let edit = Edit {
        request_id: Some(300),
        set: vec![],
    };
    let mut out = BytesMut::new();
    ThriftCodec::default()
        .encode(&frame, &edit, &mut out)
        .unwrap();
    assert_eq!(&out[..], &unhex("8221ac02016600")[..]);
}

#[test]
fn theader_headers_that_lie_are_corrupt() {
    let codec = ThriftCodec::default();
    let bytes = bytes_of("header-compact-add-request");
    let cases = [
        (12, 0xff, "runs past its frame"), // header size beyond the frame
        (15, 1, "transforms"),             // a transform (compression) announced
        (14, 1, "protocol id 1"),          // JSON
        (17, 9, "runs past its size"),     // nine key/values announced, one present
    ];
    for (at, value, expected) in cases {
        let mut damaged = bytes.clone();
        damaged[at] = value;
        let error = codec.decode(&mut BytesMut::from(&damaged[..])).unwrap_err();
        assert!(error.to_string().contains(expected), "{at}: {error}");
    }
}

#[test]
fn response_codes_are_zero_for_replies_and_the_exception_type_otherwise() {
    let codec = ThriftCodec::default();
    for (name, want) in [
        ("framed-compact-add-reply", 0),
        ("framed-lax-binary-add-reply", 0),
        // The service answered with one of its declared exceptions: still a reply.
        ("unframed-compact-declared-exception-reply", 0),
        // Library-written TApplicationException(UNKNOWN_METHOD).
        ("framed-binary-exception", 1),
        ("unframed-compact-exception", 1),
        ("header-compact-exception", 1),
    ] {
        let frame = decode_all(&bytes_of(name));
        assert_eq!(codec.response_code(&frame), want, "{name}");
    }
}

#[test]
fn a_local_reply_reads_back_as_its_reject_code() {
    let codec = ThriftCodec::default();
    let request = decode_all(&bytes_of("framed-compact-add-request")).metadata;
    for kind in [
        RejectKind::NoRoute,
        RejectKind::Timeout,
        RejectKind::BadRequest,
    ] {
        let reply = codec.local_reply(&request, &Reject::of(kind));
        let frame = decode_all(&reply);
        assert_eq!(
            codec.response_code(&frame),
            codec.reject_code(kind),
            "{kind:?}"
        );
    }
    assert_eq!(codec.reject_code(RejectKind::NoRoute), 1);
    assert_eq!(codec.reject_code(RejectKind::Timeout), 6);
}
