//! The server side: replies, RESP2 and RESP3.

use bytes::{Bytes, BytesMut};

use super::*;

// === Real bytes ===

/// What redis-server 7.0.15 sent for `DEBUG PROTOCOL <type>` on a RESP3 connection
/// (`HELLO 3`), and for a few commands on a RESP2 one.
const REDIS_REPLIES: &[&[u8]] = &[
    b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n",
    b"~3\r\n:0\r\n:1\r\n:2\r\n",
    b",3.141\r\n",
    b"(1234567999999999999999999999999999999\r\n",
    b"_\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b"=29\r\ntxt:This is a verbatim\nstring\r\n",
    b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n",
    b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n",
    b"*3\r\n:0\r\n:1\r\n:2\r\n",
    b":12345\r\n",
    b"$11\r\nHello World\r\n",
    b"*2\r\n_\r\n_\r\n",
    b"%0\r\n",
    b"*0\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"$0\r\n\r\n",
    b"+PONG\r\n",
    b"-ERR wrong number of arguments for 'get' command\r\n",
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n\
      $2\r\nid\r\n:25\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n\
      $7\r\nmodules\r\n*0\r\n",
];

#[test]
fn redis_replies_decode_and_encode_to_the_same_bytes() {
    for &wire in REDIS_REPLIES {
        let v = value(wire).unwrap().unwrap();
        assert_eq!(encoded(&v), wire, "{v:?}");
    }
}

#[test]
fn redis_replies_decode_to_the_right_types() {
    assert_eq!(
        value(REDIS_REPLIES[0]).unwrap().unwrap(),
        Value::Map(vec![
            (Value::Integer(0), Value::Boolean(false)),
            (Value::Integer(1), Value::Boolean(true)),
            (Value::Integer(2), Value::Boolean(false)),
        ])
    );
    assert_eq!(
        value(b",3.141\r\n").unwrap(),
        Some(Value::Double(b("3.141")))
    );
    assert_eq!(
        value(b"=29\r\ntxt:This is a verbatim\nstring\r\n").unwrap(),
        Some(Value::Verbatim(b("txt:This is a verbatim\nstring")))
    );
    assert_eq!(
        value(b"!21\r\nSYNTAX invalid syntax\r\n").unwrap(),
        Some(Value::BulkError(b("SYNTAX invalid syntax")))
    );
    assert_eq!(value(b"_\r\n").unwrap(), Some(Value::Null));
}

#[test]
fn resp3_downgrades_as_redis_sends_resp2() {
    // RESP3 bytes, and what redis-server 7.0.15 sent a RESP2 connection for the same
    // `DEBUG PROTOCOL` call.
    for (resp3, resp2) in [
        (
            &b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n"[..],
            &b"*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n"[..],
        ),
        (b"~3\r\n:0\r\n:1\r\n:2\r\n", b"*3\r\n:0\r\n:1\r\n:2\r\n"),
        (b",3.141\r\n", b"$5\r\n3.141\r\n"),
        (
            b"(1234567999999999999999999999999999999\r\n",
            b"$37\r\n1234567999999999999999999999999999999\r\n",
        ),
        (b"_\r\n", b"$-1\r\n"),
        (b"#t\r\n", b":1\r\n"),
        (b"#f\r\n", b":0\r\n"),
        (
            b"=29\r\ntxt:This is a verbatim\nstring\r\n",
            b"$25\r\nThis is a verbatim\nstring\r\n",
        ),
        (b"!5\r\nERR x\r\n", b"-ERR x\r\n"),
    ] {
        let v = value(resp3).unwrap().unwrap();
        assert_eq!(encoded(&v.into_resp2()), resp2);
    }
}

#[test]
fn helpers() {
    assert_eq!(encoded(&Value::ok()), b"+OK\r\n");
    assert_eq!(
        encoded(&Value::error("ERR unknown command 'foo'")),
        b"-ERR unknown command 'foo'\r\n"
    );
    assert_eq!(encoded(&Value::error("ERR a\nb")), b"-ERR a b\r\n");
    assert!(Value::error("ERR x").is_error());
    assert!(Value::BulkError(b("ERR x")).is_error());
    assert!(!Value::ok().is_error());
    assert!(Value::Null.is_null() && Value::NullBulk.is_null() && Value::NullArray.is_null());
    assert_eq!(
        encoded(&protocol("invalid bulk length").reply()),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert_eq!(
        encoded(&RespError::TooLarge { len: 10, max: 5 }.reply()),
        b"-ERR Protocol error: too big request (at least 10 bytes, the limit is 5)\r\n"
    );
}

// === Round trips ===

fn every_type() -> Vec<Value> {
    vec![
        Value::Simple(b("OK")),
        Value::Error(b("WRONGTYPE Operation against a key")),
        Value::Integer(-42),
        Value::Integer(i64::MAX),
        Value::Bulk(Bytes::from_static(b"bin\r\n\0ary")),
        Value::Bulk(Bytes::new()),
        Value::NullBulk,
        Value::Array(vec![
            Value::Integer(1),
            Value::Bulk(b("two")),
            Value::NullBulk,
        ]),
        Value::Array(vec![]),
        Value::NullArray,
        Value::Null,
        Value::Boolean(true),
        Value::Boolean(false),
        Value::Double(b("-inf")),
        Value::Double(b("1.5e10")),
        Value::BigNumber(b("-3492890328409238509324850943850943825024385")),
        Value::BulkError(b("SYNTAX invalid\r\nsyntax")),
        Value::Verbatim(b("mkd:# title")),
        Value::Map(vec![
            (Value::Simple(b("first")), Value::Integer(1)),
            (Value::Bulk(b("second")), Value::Array(vec![Value::Null])),
        ]),
        Value::Map(vec![]),
        Value::Set(vec![Value::Bulk(b("a")), Value::Integer(2)]),
        Value::Push(vec![Value::Bulk(b("message")), Value::Bulk(b("ch"))]),
        Value::Attribute(vec![(Value::Bulk(b("ttl")), Value::Integer(3600))]),
        Value::Array(vec![Value::Map(vec![(
            Value::Set(vec![Value::Double(b("0.5"))]),
            Value::Push(vec![]),
        )])]),
    ]
}

#[test]
fn every_type_round_trips() {
    for v in every_type() {
        let wire = encoded(&v);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(ValueDecoder::new(MAX).decode(&mut buf).unwrap(), Some(v));
        assert!(buf.is_empty());
    }
}

#[test]
fn values_decode_the_same_at_every_split() {
    let mut wire = Vec::new();
    for v in every_type() {
        wire.extend(encoded(&v));
    }
    for cut in 0..=wire.len() {
        let mut dec = ValueDecoder::new(MAX);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(v) = dec.decode(&mut buf).unwrap() {
            got.push(v);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(v) = dec.decode(&mut buf).unwrap() {
            got.push(v);
        }
        assert_eq!(got, every_type(), "cut at {cut}");
    }
}

/// Tiny xorshift: random values without a dependency, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn value(&mut self, depth: usize) -> Value {
        let pick = if depth > 3 {
            self.below(9)
        } else {
            self.below(16)
        };
        let text = |r: &mut Rng| Bytes::from(format!("t{}", r.next() % 1000));
        match pick {
            0 => Value::Simple(text(self)),
            1 => Value::Error(text(self)),
            2 => Value::Integer(self.next() as i64),
            3 => Value::Bulk(
                (0..self.below(40))
                    .map(|_| self.next() as u8)
                    .collect::<Vec<_>>()
                    .into(),
            ),
            4 => [Value::NullBulk, Value::NullArray, Value::Null][self.below(3)].clone(),
            5 => Value::Boolean(self.below(2) == 0),
            6 => Value::Double(text(self)),
            7 => Value::BulkError(text(self)),
            8 => Value::Verbatim(Bytes::from(format!("txt:{}", self.next()))),
            9 | 10 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
            11 => Value::Set((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            12 => Value::Push((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Map(
                (0..self.below(4))
                    .map(|_| (self.value(depth + 1), self.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[test]
fn random_values_round_trip_in_random_pieces() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..300 {
        let values: Vec<Value> = (0..4).map(|_| rng.value(0)).collect();
        let mut wire = Vec::new();
        for v in &values {
            wire.extend(encoded(v));
        }
        let mut dec = ValueDecoder::new(MAX);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let take = (1 + rng.below(8)).min(wire.len() - at);
            buf.extend_from_slice(&wire[at..at + take]);
            at += take;
            while let Some(v) = dec.decode(&mut buf).unwrap() {
                got.push(v);
            }
        }
        assert_eq!(got, values);
    }
}

#[test]
fn a_huge_reply_a_byte_at_a_time_is_read_in_linear_work() {
    let n = 100_000;
    // Arrays of two inside one array, so the stack of open aggregates is used too.
    let mut wire = format!("*{}\r\n", n / 2).into_bytes();
    for i in 0..n / 2 {
        wire.extend(format!("*2\r\n:{i}\r\n+s{i}\r\n").as_bytes());
    }
    let mut dec = ValueDecoder::new(usize::MAX);
    let mut buf = BytesMut::new();
    let mut got = None;
    for &byte in &wire {
        buf.extend_from_slice(&[byte]);
        if let Some(v) = dec.decode(&mut buf).unwrap() {
            got = Some(v);
        }
    }
    let Some(Value::Array(items)) = got else {
        panic!("not an array")
    };
    assert_eq!(items.len(), n / 2);
    assert_eq!(
        items[7],
        Value::Array(vec![Value::Integer(7), Value::Simple(b("s7"))])
    );
    // Every byte is in a line here: examined once, each CR at most twice.
    let lines = 1 + 3 * n / 2;
    let bound = (wire.len() + lines) as u64;
    assert!(dec.examined() <= bound, "{} > {bound}", dec.examined());
}

/// Reads `wire` in pieces of `piece` bytes the way the proxy's upstream does: flat
/// replies taken as their bytes first, everything else decoded. Returns every reply's
/// bytes as the client would get them.
fn forwarded(wire: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let mut dec = ValueDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            if let Some(flat) = dec.take_flat(&mut buf) {
                got.push(flat.to_vec());
                continue;
            }
            match dec.decode(&mut buf).unwrap() {
                Some(Value::Attribute(_)) => {}
                Some(v) => got.push(encoded(&v)),
                None => break,
            }
        }
    }
    got
}

#[test]
fn flat_replies_are_taken_as_their_bytes_and_the_rest_is_decoded() {
    let wire: Vec<u8> = REDIS_REPLIES.concat();
    let whole = forwarded(&wire, wire.len());
    for piece in [1, 2, 3, 7, 64] {
        assert_eq!(forwarded(&wire, piece), whole, "pieces of {piece}");
    }
    let mut dec = ValueDecoder::new(MAX);
    for reply in REDIS_REPLIES {
        let mut buf = BytesMut::from(*reply);
        let flat = dec.take_flat(&mut buf);
        let is_flat = matches!(reply[0], b'+' | b'-' | b':' | b'$');
        assert_eq!(flat.is_some(), is_flat, "{:?}", Bytes::from_static(reply));
        if let Some(flat) = flat {
            assert_eq!(&flat[..], *reply);
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn malformed_or_oversized_flat_replies_are_left_for_the_decoder() {
    for input in [
        &b":12a\r\n"[..],
        b"$-2\r\n",
        b"$3\r\nfoobar\r\n",
        b"+OK\rx",
        b"+O\nK\r\n",
        b"$5\r\nab",
    ] {
        let mut buf = BytesMut::from(input);
        assert_eq!(
            ValueDecoder::new(MAX).take_flat(&mut buf),
            None,
            "{input:?}"
        );
        assert_eq!(&buf[..], input);
    }
    let mut buf = BytesMut::from(&b"$5\r\nhello\r\n"[..]);
    assert_eq!(
        ValueDecoder::new(10).take_flat(&mut buf),
        None,
        "over the limit"
    );
}

// === Malformed input ===

#[test]
fn malformed_replies() {
    for (input, want) in [
        (&b"?x\r\n"[..], "unexpected type byte '?'"),
        (b"\r\n", "unexpected type byte '\\x0d'"),
        (b":12a\r\n", "invalid integer"),
        (b":\r\n", "invalid integer"),
        (b"$-2\r\n", "invalid bulk length"),
        (b"$?\r\n", "invalid bulk length"),
        (b"$x\r\n", "invalid bulk length"),
        (b"!-1\r\n", "invalid bulk length"),
        (b"*-2\r\n", "invalid multibulk length"),
        (b"*?\r\n", "invalid multibulk length"),
        (b"%-1\r\n", "invalid multibulk length"),
        (b"~-1\r\n", "invalid multibulk length"),
        (b"#x\r\n", "invalid boolean"),
        (b"_x\r\n", "invalid null"),
        (b",\r\n", "invalid double"),
        (b"(12x\r\n", "invalid big number"),
        (b"=3\r\ntxt\r\n", "invalid verbatim string"),
        (b"$3\r\nfoobar\r\n", "expected CRLF after a bulk string"),
        (b"+OK\rx", "expected CRLF at the end of a line"),
        // Found by the fuzz target: a simple string with an LF in it cannot be written
        // back as it came.
        (b"+O\nK\r\n", "expected CRLF at the end of a line"),
        (b"-ERR\n\r\n", "expected CRLF at the end of a line"),
        (b"*2\r\n:1\r\n;", "unexpected type byte ';'"),
    ] {
        assert_eq!(value(input), Err(protocol(want)), "{input:?}");
    }
    // Unterminated: waiting, not an error, until the limit.
    assert_eq!(value(b"$5\r\nabc"), Ok(None));
    assert_eq!(value(b"*3\r\n:1\r\n"), Ok(None));
    assert_eq!(value(b"+OK"), Ok(None));
}

#[test]
fn reply_limits() {
    let mut deep = "*1\r\n".repeat(MAX_DEPTH);
    deep.push_str(":1\r\n");
    assert!(value(deep.as_bytes()).unwrap().is_some());
    let deeper = format!("*1\r\n{deep}");
    assert_eq!(
        value(deeper.as_bytes()),
        Err(protocol("reply nested deeper than 128 levels"))
    );
    let mut dec = ValueDecoder::new(10);
    assert!(matches!(
        dec.decode(&mut BytesMut::from(&b"$100\r\n"[..])),
        Err(RespError::TooLarge { max: 10, .. })
    ));
    let mut dec = ValueDecoder::new(10);
    assert!(matches!(
        dec.decode(&mut BytesMut::from(&b"*1000000\r\n"[..])),
        Err(RespError::TooLarge { max: 10, .. })
    ));
    let mut dec = ValueDecoder::new(10);
    assert!(matches!(
        dec.decode(&mut BytesMut::from(&b"+0123456789"[..])),
        Err(RespError::TooLarge { max: 10, .. })
    ));
    // The limit applies per value: many small values in a row are fine.
    let mut dec = ValueDecoder::new(10);
    let mut buf = BytesMut::from(":1\r\n".repeat(100).as_bytes());
    for _ in 0..100 {
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Value::Integer(1)));
    }
}

#[test]
fn attributes_inside_aggregates_are_dropped() {
    let wire = b"*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n";
    assert_eq!(
        value(wire).unwrap(),
        Some(Value::Array(vec![
            Value::Integer(1),
            Value::Integer(2),
            Value::Integer(3)
        ]))
    );
    // At the top level an attribute comes on its own, then the reply.
    let mut dec = ValueDecoder::new(MAX);
    let mut buf = BytesMut::from(&b"|1\r\n+ttl\r\n:3600\r\n+OK\r\n"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(Value::Attribute(_)))
    ));
    assert_eq!(dec.decode(&mut buf), Ok(Some(Value::ok())));
}
