//! Writing values and commands as RESP bytes.

use bytes::{BufMut, BytesMut};

use super::Value;

/// Writes `v` as RESP: the exact bytes Redis sends for the same value.
///
/// Line-type payloads (simple strings, errors, doubles, big numbers) cannot hold CR or
/// LF; any that a hand-built value carries are written as spaces, so the output is
/// always a well-formed stream.
pub fn encode(v: &Value, out: &mut BytesMut) {
    match v {
        Value::Simple(text) => line(out, b'+', text),
        Value::Error(text) => line(out, b'-', text),
        Value::Integer(n) => {
            out.put_u8(b':');
            put_int(out, *n);
            out.put_slice(b"\r\n");
        }
        Value::Bulk(bytes) => blob(out, b'$', bytes),
        Value::NullBulk => out.put_slice(b"$-1\r\n"),
        Value::Array(items) => items_of(out, b'*', items),
        Value::NullArray => out.put_slice(b"*-1\r\n"),
        Value::Null => out.put_slice(b"_\r\n"),
        Value::Boolean(true) => out.put_slice(b"#t\r\n"),
        Value::Boolean(false) => out.put_slice(b"#f\r\n"),
        Value::Double(text) => line(out, b',', text),
        Value::BigNumber(text) => line(out, b'(', text),
        Value::BulkError(bytes) => blob(out, b'!', bytes),
        Value::Verbatim(bytes) => blob(out, b'=', bytes),
        Value::Map(pairs) => pairs_of(out, b'%', pairs),
        Value::Set(items) => items_of(out, b'~', items),
        Value::Attribute(pairs) => pairs_of(out, b'|', pairs),
        Value::Push(items) => items_of(out, b'>', items),
    }
}

/// Writes a command as clients send it: an array of bulk strings,
/// `*N\r\n$len\r\narg\r\n...`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.reserve(command_len(args));
    header(out, b'*', args.len());
    for arg in args {
        blob(out, b'$', arg.as_ref());
    }
}

/// How many bytes [`encode_command`] writes for `args`.
pub(crate) fn command_len<A: AsRef<[u8]>>(args: &[A]) -> usize {
    let framing = |n: usize| 1 + decimal_len(n as u64) + 2;
    framing(args.len())
        + args
            .iter()
            .map(|a| framing(a.as_ref().len()) + a.as_ref().len() + 2)
            .sum::<usize>()
}

fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn blob(out: &mut BytesMut, tag: u8, bytes: &[u8]) {
    header(out, tag, bytes.len());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

fn items_of(out: &mut BytesMut, tag: u8, items: &[Value]) {
    header(out, tag, items.len());
    for item in items {
        encode(item, out);
    }
}

fn pairs_of(out: &mut BytesMut, tag: u8, pairs: &[(Value, Value)]) {
    header(out, tag, pairs.len());
    for (k, v) in pairs {
        encode(k, out);
        encode(v, out);
    }
}

/// `tag`, the length in decimal, CRLF: assembled on the stack and written with one copy,
/// since a forwarded command writes three or more of these.
fn header(out: &mut BytesMut, tag: u8, len: usize) {
    let mut line = [0u8; 1 + 20 + 2];
    line[0] = tag;
    let end = 1 + write_decimal(&mut line[1..21], len as u64);
    line[end..end + 2].copy_from_slice(b"\r\n");
    out.put_slice(&line[..end + 2]);
}

fn put_int(out: &mut BytesMut, n: i64) {
    if n < 0 {
        out.put_u8(b'-');
    }
    put_decimal(out, n.unsigned_abs());
}

/// Decimal digits without going through `fmt`: every reply and forwarded command writes
/// a few of these.
fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let len = write_decimal(&mut digits, n);
    out.put_slice(&digits[..len]);
}

/// Writes `n`'s digits at the start of `to` (20 bytes hold any u64); returns how many.
fn write_decimal(to: &mut [u8], mut n: u64) -> usize {
    let len = decimal_len(n);
    for at in (0..len).rev() {
        to[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    len
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn bytes_of(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(v, &mut out);
        out.to_vec()
    }

    #[test]
    fn numbers() {
        for n in [0, 1, -1, 9, 10, 12345, i64::MAX, i64::MIN] {
            assert_eq!(bytes_of(&Value::Integer(n)), format!(":{n}\r\n").as_bytes());
        }
        for n in [0u64, 9, 10, 99, 100, u64::MAX] {
            assert_eq!(decimal_len(n), n.to_string().len());
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let args = [
            Bytes::from_static(b"SET"),
            Bytes::from_static(b"k"),
            Bytes::new(),
        ];
        let mut out = BytesMut::new();
        encode_command(&args, &mut out);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        assert_eq!(command_len(&args), out.len());
    }

    #[test]
    fn line_payloads_never_break_the_stream() {
        let v = Value::Error(Bytes::from_static(b"ERR a\r\nb"));
        assert_eq!(bytes_of(&v), b"-ERR a  b\r\n");
        let v = Value::Simple(Bytes::from_static(b"x\ny"));
        assert_eq!(bytes_of(&v), b"+x y\r\n");
    }
}
