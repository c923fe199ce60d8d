//! Hessian2 reading and writing against the hessian.js vectors and edge cases.

use super::*;

#[test]
fn writes_strings_java_reads() {
    let mut out = BytesMut::new();
    write_string(&mut out, "😀");
    // Two UTF-16 units, each as a 3-byte sequence.
    assert_eq!(&out[..], &[0x02, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]);
    assert_eq!(
        Reader::new(&out).read_string().unwrap().as_deref(),
        Some("😀")
    );
    // A 4-byte UTF-8 sequence (as other encoders write) counts as two units too.
    let four = [0x02, 0xf0, 0x9f, 0x98, 0x80];
    assert_eq!(
        Reader::new(&four).read_string().unwrap().as_deref(),
        Some("😀")
    );
    for len in [0, 31, 32, 1023, 1024, 0x8000, 0x8001, 70_000] {
        let s: String = "é😀".chars().cycle().take(len).collect();
        let mut out = BytesMut::new();
        write_string(&mut out, &s);
        let mut r = Reader::new(&out);
        assert_eq!(
            r.read_string().unwrap().as_deref(),
            Some(s.as_str()),
            "{len}"
        );
        assert!(r.at_end(), "{len}");
    }
}

#[test]
fn reads_every_hessian_type_hessian_js_writes() {
    let bytes = include_bytes!("../testdata/complex-request.bin");
    let frame = decode_one(bytes);
    let m = &frame.metadata;
    assert_eq!(m.request_id, 11);
    assert_eq!(m.get("interface"), Some("com.example.UserService"));
    assert_eq!(m.get("method"), Some("save"));
    assert_eq!(m.get("version"), Some("2.1.0"));
    assert_eq!(m.get("group"), Some("blue"));
    assert_eq!(m.get("timeout"), Some("3000"));
    assert_eq!(m.get("x-long"), Some("1234567890123"));
    assert_eq!(m.get("x-flag"), Some("true"));
    assert_eq!(m.get("x-text"), Some("héllo 世界"));

    let (out, again) = set_attachment(&frame, "group", "green");
    assert_eq!(again.metadata.get("group"), Some("green"));
    assert_eq!(again.metadata.get("timeout"), Some("3000"));
    assert_eq!(args_of(&out), args_of(bytes));
}

#[test]
fn reads_the_long_chunked_string_argument() {
    let bytes = include_bytes!("../testdata/complex-request.bin");
    let body = &bytes[HEADER_LEN..];
    let mut r = Reader::new(body);
    for _ in 0..5 {
        r.read_string().unwrap();
    }
    for _ in 0..11 {
        r.skip_value().unwrap();
    }
    let s = r.read_string().unwrap().unwrap();
    let want = format!("{}😀{}", "x".repeat(32767), "y".repeat(100));
    assert_eq!(s, want);
}

#[test]
fn reads_a_hessian_js_response() {
    let frame = decode_one(include_bytes!("../testdata/value-response.bin"));
    assert_eq!(frame.metadata.message_type, MessageType::Response);
    assert_eq!(frame.metadata.request_id, 11);
    assert_eq!(frame.metadata.response_status, ResponseStatus::Ok);
}

#[test]
fn deep_nesting_is_refused_not_followed() {
    let mut body = BytesMut::new();
    for s in ["2.0.2", "S", "", "m", "Ljava/util/List;"] {
        write_string(&mut body, s);
    }
    body.extend_from_slice(&vec![b'W'; 100_000]);
    let err = DubboCodec::default()
        .decode(&mut BytesMut::from(&message(0xc2, 0, 1, &body)[..]))
        .unwrap_err();
    assert!(err.to_string().contains("depth"), "{err}");
    // Class definitions chained before an object count as nesting too.
    let defs: Vec<u8> = std::iter::repeat_n([b'C', 0x01, b'X', 0x90], 100_000)
        .flatten()
        .collect();
    assert!(Reader::new(&defs).skip_value().is_err());
}

#[test]
fn renders_scalar_attachment_values_as_java_prints_them() {
    let cases: [(&[u8], Option<&str>); 16] = [
        (&[0x90], Some("0")),
        (&[0x80], Some("-16")),
        (&[0xbf], Some("47")),
        (&[0xc7, 0x00], Some("-256")),
        (&[0xcf, 0xff], Some("2047")),
        (&[0xd0, 0x00, 0x00], Some("-262144")),
        (b"I\x80\x00\x00\x00", Some("-2147483648")),
        (&[0xe0], Some("0")),
        (&[0xd8], Some("-8")),
        (&[0xf0, 0x00], Some("-2048")),
        (&[0x38, 0x00, 0x00], Some("-262144")),
        (b"Y\xff\xff\xff\xff", Some("-1")),
        (
            b"L\x7f\xff\xff\xff\xff\xff\xff\xff",
            Some("9223372036854775807"),
        ),
        (b"T", Some("true")),
        (b"N", None),
        (b"D\x40\x09\x21\xfb\x54\x44\x2d\x18", None),
    ];
    for (bytes, want) in cases {
        let mut r = Reader::new(bytes);
        assert_eq!(r.read_text().unwrap().as_deref(), want, "{bytes:02x?}");
        assert!(r.at_end(), "{bytes:02x?}");
    }
}

#[test]
fn keeps_a_typed_attachments_map_typed() {
    let mut body = BytesMut::new();
    for s in ["2.0.2", "com.example.Echo", "1.0", "echo", ""] {
        write_string(&mut body, s);
    }
    body.extend_from_slice(b"M");
    for s in ["java.util.TreeMap", "group", "red", "z", "last"] {
        write_string(&mut body, s);
    }
    body.extend_from_slice(b"Z");
    let frame = decode_one(&message(0xc2, 0, 8, &body));
    assert_eq!(frame.metadata.get("group"), Some("red"));
    let (out, again) = set_attachment(&frame, "group", "blue");
    assert_eq!(again.metadata.get("group"), Some("blue"));
    assert_eq!(again.metadata.get("z"), Some("last"));
    assert!(out.windows(17).any(|w| w == b"java.util.TreeMap"));
    assert_eq!(out.len(), frame.bytes.len() + 1);
}

/// Random byte edits of the hessian.js request: decoding and re-encoding must never panic,
/// and whatever decodes must encode to a frame that decodes again.
#[test]
fn random_corruptions_of_the_complex_vector_never_panic() {
    let original = include_bytes!("../testdata/complex-request.bin");
    let codec = DubboCodec::default();
    let edit = Edit {
        request_id: Some(1),
        set: vec![("group".into(), "x".into())],
    };
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Only the first kilobyte holds structure; the rest is the long binary and string.
    let span = 1024.min(original.len() - HEADER_LEN);
    for _ in 0..ITERATIONS {
        let mut bytes = original.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = HEADER_LEN + (next() as usize) % span;
            bytes[at] = next() as u8;
        }
        if let Ok(Some(frame)) = codec.decode(&mut BytesMut::from(&bytes[..])) {
            let mut out = BytesMut::new();
            if codec.encode(&frame, &edit, &mut out).is_ok() {
                let again = codec.decode(&mut out).unwrap().unwrap();
                assert_eq!(again.metadata.get("group"), Some("x"));
            }
        }
    }
}

/// Enough edits to reach most of the structure, few enough for a debug build (3,000 pass
/// too, in 20 s).
const ITERATIONS: usize = 300;
