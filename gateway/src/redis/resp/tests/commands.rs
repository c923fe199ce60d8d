//! The client side: commands as clients send them.

use bytes::{Bytes, BytesMut};

use super::*;

/// Every command in `input`, fed in one piece; the buffer must end empty.
fn commands(input: &[u8]) -> Result<Vec<Vec<Bytes>>, RespError> {
    let mut dec = CommandDecoder::new(MAX);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(c) = dec.decode(&mut buf)? {
        out.push(c.args);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

/// Every command in `input`, fed in pieces cut at `cuts`.
fn commands_split(input: &[u8], cuts: &[usize]) -> Result<Vec<Command>, RespError> {
    let mut dec = CommandDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        while let Some(c) = dec.decode(&mut buf)? {
            out.push(c);
        }
    }
    Ok(out)
}

#[test]
fn arrays_of_bulk_strings() {
    let got = commands(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nal\r\n").unwrap();
    assert_eq!(got, [vec![b("SET"), b("k"), b("v\r\nal")]]);
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"[..]);
    let mut dec = CommandDecoder::new(MAX);
    let first = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!((first.name(), first.bytes), (&b"PING"[..], 14));
    let second = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(second.args, [b("ECHO"), Bytes::new()]);
    assert_eq!(second.bytes, 20);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
}

#[test]
fn inline_commands_and_pipelines() {
    // What redis-server 7.0.15 answered shows how it split these.
    let got = commands(
        b"PING\r\nping \"a b\" 'c\\'d' \"\\x41\\n\"\r\n\r\n\nGET k\n*0\r\n*-1\r\nECHO x\r\n",
    )
    .unwrap();
    assert_eq!(
        got,
        [
            vec![b("PING")],
            vec![b("ping"), b("a b"), b("c'd"), b("A\n")],
            vec![b("GET"), b("k")],
            vec![b("ECHO"), b("x")],
        ]
    );
    let mut dec = CommandDecoder::new(MAX);
    let c = dec
        .decode(&mut BytesMut::from(&b"GET k\r\n"[..]))
        .unwrap()
        .unwrap();
    assert_eq!(c.bytes, 7);
    assert_eq!(c.name_upper().as_bytes(), b"GET");
    let mut out = BytesMut::new();
    c.encode(&mut out);
    assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_eq!(Command::new(c.args.clone()).bytes, out.len());
}

#[test]
fn commands_decode_the_same_at_every_split() {
    let wire: &[u8] =
        b"*3\r\n$3\r\nSET\r\n$9\r\nkey\r\nwith\r\n$0\r\n\r\nPING \"a\\x41\"\r\n*0\r\n\n*1\r\n$4\r\nPING\r\n";
    let whole = commands_split(wire, &[]).unwrap();
    assert_eq!(whole.len(), 3);
    for cut in 0..=wire.len() {
        assert_eq!(commands_split(wire, &[cut]).unwrap(), whole, "cut at {cut}");
        for cut2 in cut..=wire.len() {
            assert_eq!(commands_split(wire, &[cut, cut2]).unwrap(), whole);
        }
    }
    let every: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(commands_split(wire, &every).unwrap(), whole);
}

#[test]
fn a_huge_command_a_byte_at_a_time_is_read_in_linear_work() {
    let n = 100_000;
    let mut wire = format!("*{}\r\n$4\r\nMSET\r\n", n + 1).into_bytes();
    for i in 0..n {
        let arg = format!("k{i}");
        wire.extend(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    let mut dec = CommandDecoder::new(usize::MAX);
    let mut buf = BytesMut::new();
    let mut got = None;
    for &byte in &wire {
        buf.extend_from_slice(&[byte]);
        if let Some(c) = dec.decode(&mut buf).unwrap() {
            assert!(got.is_none());
            got = Some(c);
        }
    }
    let got = got.unwrap();
    assert_eq!(got.args.len(), n + 1);
    assert_eq!(got.args[n], format!("k{}", n - 1).as_bytes());
    assert_eq!(got.bytes, wire.len());
    // Each byte of a `*`/`$` line is examined once, its CR at most twice; payloads are
    // never scanned. Rescanning a line (or the command) on every call would be more.
    let payloads: usize = got.args.iter().map(|a| a.len() + 2).sum();
    let lines = got.args.len() + 1;
    let bound = (wire.len() - payloads + lines) as u64;
    assert!(dec.examined() <= bound, "{} > {bound}", dec.examined());
}

// === Malformed input ===

#[test]
fn malformed_commands_get_redis_errors() {
    for (input, want) in [
        // Texts as redis-server 7.0.15 sends them for the same bytes.
        (&b"*x\r\n"[..], "invalid multibulk length"),
        (b"*+1\r\n$4\r\nPING\r\n", "invalid multibulk length"),
        (b"*3000000000\r\n", "invalid multibulk length"),
        (b"*2\r\n$-5\r\n", "invalid bulk length"),
        (b"*2\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$-0\r\n", "invalid bulk length"),
        (b"*2\r\n$4\r\nECHO\r\n$01\r\na\r\n", "invalid bulk length"),
        (
            b"*2\r\n$3\r\nget\r\n$99999999999\r\n",
            "invalid bulk length",
        ),
        (b"*2\r\n+GET\r\n", "expected '$', got '+'"),
        (b"*1\r\n:3\r\n", "expected '$', got ':'"),
        (b"set a \"b\r\n", "unbalanced quotes in request"),
        (b"echo \"a\"b\r\n", "unbalanced quotes in request"),
        // Refused here though Redis would skip or accept them.
        (b"*-5\r\n", "invalid multibulk length"),
        (b"*1\r\n$4\r\nPINGxx", "expected CRLF after a bulk string"),
        (b"*1\r\x00", "invalid multibulk length"),
        (b"*1\r\n$4\rPING", "invalid bulk length"),
        (b"*1\n$4\r\nPING\r\n", "invalid multibulk length"),
        (b"*1\r\n$4\nPING\r\n", "invalid bulk length"),
        (b"*1\r\n\x01", "expected '$', got '\\x01'"),
        // One byte over the largest bulk Redis accepts.
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
    ] {
        let mut dec = CommandDecoder::new(usize::MAX);
        let got = dec.decode(&mut BytesMut::from(input));
        assert_eq!(got, Err(protocol(want)), "{input:?}");
    }
}

#[test]
fn overlong_lines_are_refused_before_their_end() {
    for (before, start, want) in [
        (&b""[..], &b"*"[..], "too big mbulk count string"),
        (b"*1\r\n", b"$", "too big bulk count string"),
        (b"", b"GET ", "too big inline request"),
    ] {
        let mut input = [before, start].concat();
        input.resize(before.len() + PROTO_INLINE_MAX_SIZE + 1, b'1');
        let mut dec = CommandDecoder::new(usize::MAX);
        assert_eq!(
            dec.decode(&mut BytesMut::from(&input[..])),
            Err(protocol(want))
        );
        // One byte less is still waiting for its line end.
        input.pop();
        let mut dec = CommandDecoder::new(usize::MAX);
        assert_eq!(dec.decode(&mut BytesMut::from(&input[..])), Ok(None));
    }
    // A whole line just as long is refused too, whatever the reads were.
    let mut line = b"GET ".to_vec();
    line.resize(PROTO_INLINE_MAX_SIZE + 1, b'k');
    line.extend_from_slice(b"\r\n");
    assert_eq!(
        CommandDecoder::new(usize::MAX).decode(&mut BytesMut::from(&line[..])),
        Err(protocol("too big inline request"))
    );
}

#[test]
fn commands_over_the_size_limit() {
    let too_large = |max: usize, input: &[u8]| {
        let got = CommandDecoder::new(max).decode(&mut BytesMut::from(input));
        assert!(
            matches!(got, Err(RespError::TooLarge { max: m, .. }) if m == max),
            "{got:?}"
        );
    };
    // A bulk string announced over the limit is refused before its bytes come.
    too_large(100, b"*2\r\n$3\r\nSET\r\n$200\r\n");
    // So is an argument count the limit cannot hold.
    too_large(100, b"*50\r\n");
    too_large(10, b"GET somekey\r\n");
    too_large(10, b"GET somekey");
    too_large(20, b"*1\r\n$123456789012345678");
    // Exactly at the limit is fine.
    let wire = b"*1\r\n$4\r\nPING\r\n";
    let c = CommandDecoder::new(wire.len()).decode(&mut BytesMut::from(&wire[..]));
    assert_eq!(c.unwrap().unwrap().bytes, wire.len());
    too_large(wire.len() - 1, wire);
}
