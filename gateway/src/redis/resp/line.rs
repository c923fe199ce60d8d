//! Line ends and numbers: the pieces both decoders share.

/// Finds the end of the line at the start of a buffer that grows between calls.
///
/// It remembers how far it has looked, so a long line arriving a byte at a time is still
/// scanned once: each byte is examined at most twice (a CR at the end of the buffer is
/// looked at again when its LF arrives).
#[derive(Debug, Default)]
pub(super) struct LineScanner {
    /// Bytes at the start of the buffer known to hold no line end.
    scanned: usize,
    /// Bytes examined since creation: what the tests check to prove linear work.
    pub(super) examined: u64,
}

/// A CR followed by something other than LF.
#[derive(Debug)]
pub(super) struct BadLineEnd;

impl LineScanner {
    /// The length (without CRLF) of the CRLF-terminated line at the start of `buf`, or
    /// `None` until it is all there. A lone CR or LF inside the line is an error: RESP
    /// lines cannot hold one (and a simple string holding one could not be written back).
    pub(super) fn crlf(&mut self, buf: &[u8]) -> Result<Option<usize>, BadLineEnd> {
        let from = self.scanned.min(buf.len());
        let found = buf[from..].iter().position(|&b| b == b'\r' || b == b'\n');
        self.examined += found.map_or(buf.len() - from, |i| i + 1) as u64;
        let Some(cr) = found.map(|i| from + i) else {
            self.scanned = buf.len();
            return Ok(None);
        };
        if buf[cr] == b'\n' {
            return Err(BadLineEnd);
        }
        match buf.get(cr + 1) {
            None => {
                // Look at the CR again when more bytes have come.
                self.scanned = cr;
                Ok(None)
            }
            Some(b'\n') => {
                self.examined += 1;
                self.scanned = 0;
                Ok(Some(cr))
            }
            Some(_) => Err(BadLineEnd),
        }
    }

    /// Forgets a partial scan: the `taken` bytes at the start of the buffer, scanned or
    /// not, were consumed whole by another way of reading (the decoder's fast path).
    pub(super) fn consumed(&mut self, taken: usize) {
        self.scanned = 0;
        self.examined += taken as u64;
    }

    /// The length (without the LF) of the LF-terminated line at the start of `buf`, or
    /// `None` until it is all there: inline commands end at LF alone, as in Redis.
    pub(super) fn lf(&mut self, buf: &[u8]) -> Option<usize> {
        let from = self.scanned.min(buf.len());
        let found = buf[from..].iter().position(|&b| b == b'\n');
        self.examined += found.map_or(buf.len() - from, |i| i + 1) as u64;
        match found {
            Some(i) => {
                self.scanned = 0;
                Some(from + i)
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }
}

/// A decimal integer as Redis's `string2ll` accepts it: an optional `-`, then `0` alone
/// or digits without a leading zero, within `i64`. No `+`, no spaces, no `-0`.
pub(crate) fn parse_int(text: &[u8]) -> Option<i64> {
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate as a negative number: its range holds i64::MIN.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_redis_reads_them() {
        for (text, want) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("512", Some(512)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1x", None),
            ("0x10", None),
        ] {
            assert_eq!(parse_int(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn crlf_lines_resume_where_they_stopped() {
        let mut s = LineScanner::default();
        assert!(matches!(s.crlf(b"$12"), Ok(None)));
        assert!(matches!(s.crlf(b"$123\r"), Ok(None)));
        assert!(matches!(s.crlf(b"$123\r\nxx"), Ok(Some(4))));
        // 3 + 2 new bytes, the CR again, then the LF.
        assert_eq!(s.examined, 3 + 2 + 1 + 1);
        assert!(matches!(s.crlf(b"+OK\rx"), Err(BadLineEnd)));
        let mut s = LineScanner::default();
        assert!(matches!(s.crlf(b"+O\nK\r\n"), Err(BadLineEnd)));
    }

    #[test]
    fn lf_lines() {
        let mut s = LineScanner::default();
        assert_eq!(s.lf(b"PING"), None);
        assert_eq!(s.lf(b"PING\r\n"), Some(5));
        assert_eq!(s.lf(b"\n"), Some(0));
    }
}
