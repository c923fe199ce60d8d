//! The fast path of [`CommandDecoder`](super::CommandDecoder): a short command that is
//! already whole in the buffer, as clients nearly always send it, is read in one pass
//! with no resumable state, and its arguments are sliced off one frozen frame, which is
//! also kept as the command's wire bytes (forwarded upstream as they are).
//!
//! Anything unusual (more than [`MAX_ARGS`] arguments, a length that is not plain
//! digits, a missing CRLF, a command over the size limit or not all there yet) is left
//! untouched for the resumable decoder, which gives the exact errors.

use bytes::{Bytes, BytesMut};

use super::PROTO_MAX_BULK_LEN;

/// Most arguments taken here: GET, SET with options, HSET of a field or two. Longer
/// commands are rare enough to go the general way.
pub(super) const MAX_ARGS: usize = 8;

/// Most digits of a length here: `PROTO_MAX_BULK_LEN` has nine.
const MAX_DIGITS: usize = 9;

/// The command at the start of `buf` when all of it is there and fits `max_request`:
/// its whole frame and its arguments (slices of the frame), taken off `buf`. `None`
/// leaves `buf` as it was.
pub(super) fn take(buf: &mut BytesMut, max_request: usize) -> Option<(Bytes, Vec<Bytes>)> {
    let bytes = &buf[..];
    let (count, mut at) = length_line(bytes, 0, b'*')?;
    if count == 0 || count > MAX_ARGS {
        return None;
    }
    let mut spans = [(0, 0); MAX_ARGS];
    for span in &mut spans[..count] {
        let (len, start) = length_line(bytes, at, b'$')?;
        if len > PROTO_MAX_BULK_LEN {
            return None;
        }
        let end = start + len;
        if bytes.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        *span = (start, end);
        at = end + 2;
    }
    if at > max_request {
        return None;
    }
    let frame = buf.split_to(at).freeze();
    let args = spans[..count]
        .iter()
        .map(|&(start, end)| frame.slice(start..end))
        .collect();
    Some((frame, args))
}

/// A line `tag`, length, CRLF at `at`, the length written as Redis writes it (digits,
/// no sign, no leading zero): the length and where the next line starts.
fn length_line(bytes: &[u8], at: usize, tag: u8) -> Option<(usize, usize)> {
    if *bytes.get(at)? != tag {
        return None;
    }
    let digits_at = at + 1;
    let mut value = 0usize;
    let mut i = digits_at;
    while let d @ b'0'..=b'9' = *bytes.get(i)? {
        if i - digits_at == MAX_DIGITS || (value == 0 && i > digits_at) {
            return None;
        }
        value = value * 10 + usize::from(d - b'0');
        i += 1;
    }
    if i == digits_at || bytes.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    Some((value, i + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_from(wire: &[u8], max: usize) -> (Option<(Bytes, Vec<Bytes>)>, usize) {
        let mut buf = BytesMut::from(wire);
        let taken = take(&mut buf, max);
        (taken, buf.len())
    }

    #[test]
    fn a_whole_command_is_sliced_off_one_frame() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
        let (taken, left) = take_from(wire, 1024);
        let (frame, args) = taken.expect("whole");
        assert_eq!(&frame[..], &wire[..frame.len()]);
        assert_eq!(args, [&b"SET"[..], b"k", b""]);
        assert_eq!(left, b"*1\r\n$4\r\nPING\r\n".len());
    }

    #[test]
    fn anything_unusual_is_left_alone() {
        for wire in [
            &b"*2\r\n$3\r\nGET\r\n$1\r\nk\r"[..], // not all there
            b"*2\r\n$3\r\nGET\r\n$1\r\n",         // bulk missing
            b"*0\r\n",                            // empty array
            b"*9\r\n$1\r\na\r\n",                 // too many arguments
            b"*01\r\n$4\r\nPING\r\n",             // leading zero
            b"*1\r\n$04\r\nPING\r\n",             // leading zero
            b"*1\r\n$-1\r\n",                     // negative
            b"*1\r\n$\r\n\r\n",                   // no digits
            b"*1\r\n$4\r\nPINGxx",                // no CRLF after the bulk
            b"*1\r\n$4 \r\nPING\r\n",             // space
            b"*1\r\n$9999999999\r\n",             // too long a length
            b"*1\r\n:4\r\nPING\r\n",              // not a bulk
            b"PING\r\n",                          // inline
        ] {
            let (taken, left) = take_from(wire, 1024);
            assert!(taken.is_none(), "{:?}", String::from_utf8_lossy(wire));
            assert_eq!(left, wire.len());
        }
    }

    #[test]
    fn the_size_limit_is_left_to_the_general_path() {
        let wire = b"*1\r\n$4\r\nPING\r\n";
        assert!(take_from(wire, wire.len()).0.is_some());
        assert!(take_from(wire, wire.len() - 1).0.is_none());
    }
}
