//! The server side: any RESP2 or RESP3 value, aggregates nested up to [`MAX_DEPTH`].

use bytes::{Buf, Bytes, BytesMut};

use super::line::{LineScanner, parse_int};
use super::{MAX_DEPTH, RespError, Value, show_byte};

/// Smallest wire size of one element (`_\r\n`): what a declared aggregate length must
/// at least cost, to refuse a length the size limit cannot hold before reading on.
const MIN_ELEMENT_BYTES: usize = 3;

/// Most element slots reserved up front, whatever length an aggregate declares.
const PREALLOC_ELEMENTS: usize = 1024;

/// Reads values off a server's byte stream, resuming where the last call stopped.
///
/// Streamed RESP3 strings and aggregates (`$?`, `*?`), which Redis never sends, are
/// refused as malformed.
#[derive(Debug)]
pub struct ValueDecoder {
    max_value: usize,
    lines: LineScanner,
    /// The aggregates being filled, outermost first.
    open: Vec<Open>,
    /// A bulk-like string whose length line has been taken: its type byte and length.
    bulk: Option<(u8, usize)>,
    /// Wire bytes of the current top-level value taken off the buffer so far.
    bytes: usize,
}

#[derive(Debug)]
struct Open {
    /// The aggregate's type byte.
    kind: u8,
    /// Elements still to come (keys and values count one each).
    remaining: usize,
    items: Vec<Value>,
}

/// What one read made of the buffer.
enum Item {
    /// A value with nothing more to read.
    Value(Value),
    /// The header of a non-empty aggregate: its type byte and element count.
    Open(u8, usize),
}

impl ValueDecoder {
    /// A decoder refusing values larger than `max_value` bytes on the wire.
    pub fn new(max_value: usize) -> Self {
        Self {
            max_value,
            lines: LineScanner::default(),
            open: Vec::new(),
            bulk: None,
            bytes: 0,
        }
    }

    /// Takes the next whole value off `buf`; `Ok(None)` means more bytes are needed.
    ///
    /// Bytes of an unfinished value may already be taken off `buf`: the decoder keeps
    /// them until the value is whole.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, RespError> {
        loop {
            let mut value = match self.item(buf)? {
                None => return Ok(None),
                Some(Item::Open(kind, count)) => {
                    if self.open.len() >= MAX_DEPTH {
                        return Err(RespError::protocol(format!(
                            "reply nested deeper than {MAX_DEPTH} levels"
                        )));
                    }
                    self.open.push(Open {
                        kind,
                        remaining: count,
                        items: Vec::with_capacity(count.min(PREALLOC_ELEMENTS)),
                    });
                    continue;
                }
                Some(Item::Value(value)) => value,
            };
            // Hand the value to the aggregates it completes, innermost first.
            loop {
                let Some(parent) = self.open.last_mut() else {
                    self.bytes = 0;
                    return Ok(Some(value));
                };
                if matches!(value, Value::Attribute(_)) {
                    // Not an element: it annotates the next one. Dropped (see Value).
                    break;
                }
                parent.items.push(value);
                parent.remaining -= 1;
                if parent.remaining > 0 {
                    break;
                }
                let Some(done) = self.open.pop() else {
                    break;
                };
                value = done.finish();
            }
        }
    }

    /// The next reply as its wire bytes, taken off `buf`, when it is a flat RESP2 reply
    /// (simple string, error, integer, bulk string or null bulk) already whole and no
    /// other value is half-read: what a proxy forwards without looking inside. Anything
    /// else (aggregates, RESP3 types, a malformed or unfinished reply, one over the size
    /// limit) is left in `buf` for [`decode`](Self::decode), which has the errors.
    pub fn take_flat(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        if !self.open.is_empty() || self.bulk.is_some() {
            return None;
        }
        let kind = *buf.first()?;
        if !matches!(kind, b'+' | b'-' | b':' | b'$') {
            return None;
        }
        // The scanner keeps its place when the line is not all there, so a long line
        // arriving in pieces is still scanned once between this and `decode`.
        let n = self.lines.crlf(buf).ok()??;
        let len = match kind {
            b'+' | b'-' => n + 2,
            b':' => parse_int(&buf[1..n]).map(|_| n + 2)?,
            _ => match parse_int(&buf[1..n])? {
                -1 => n + 2,
                bulk => {
                    let end = (n + 2).checked_add(usize::try_from(bulk).ok()?)?;
                    (buf.get(end..end + 2)? == b"\r\n").then_some(end + 2)?
                }
            },
        };
        if len > self.max_value {
            return None;
        }
        self.lines.consumed(len);
        Some(buf.split_to(len).freeze())
    }

    /// Bytes examined so far (tests prove linear work with it).
    #[cfg(test)]
    pub(super) fn examined(&self) -> u64 {
        self.lines.examined
    }

    /// Reads one scalar, or one aggregate header.
    fn item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, RespError> {
        if let Some((kind, len)) = self.bulk {
            return self.bulk_body(buf, kind, len);
        }
        let Some(&kind) = buf.first() else {
            return Ok(None);
        };
        if !b"+-:$*_#,(!=%~|>".contains(&kind) {
            return Err(RespError::protocol(format!(
                "unexpected type byte '{}'",
                show_byte(kind)
            )));
        }
        let line = self
            .lines
            .crlf(buf)
            .map_err(|_| RespError::protocol("expected CRLF at the end of a line"))?;
        let Some(n) = line else {
            self.within_limit(buf.len())?;
            return Ok(None);
        };
        self.within_limit(n + 2)?;
        let text = &buf[1..n];
        let invalid = |what: &str| RespError::protocol(format!("invalid {what}"));
        let item = match kind {
            b'+' | b'-' | b',' | b'(' => {
                let text = Bytes::copy_from_slice(text);
                Item::Value(match kind {
                    b'+' => Value::Simple(text),
                    b'-' => Value::Error(text),
                    b',' if !text.is_empty() => Value::Double(text),
                    b'(' if parse_big(&text) => Value::BigNumber(text),
                    b',' => return Err(invalid("double")),
                    _ => return Err(invalid("big number")),
                })
            }
            b':' => Item::Value(Value::Integer(
                parse_int(text).ok_or_else(|| invalid("integer"))?,
            )),
            b'_' if text.is_empty() => Item::Value(Value::Null),
            b'_' => return Err(invalid("null")),
            b'#' => Item::Value(Value::Boolean(match text {
                b"t" => true,
                b"f" => false,
                _ => return Err(invalid("boolean")),
            })),
            b'$' | b'!' | b'=' => match parse_int(text) {
                Some(-1) if kind == b'$' => Item::Value(Value::NullBulk),
                Some(len) if len >= 0 => {
                    let len = usize::try_from(len).map_err(|_| invalid("bulk length"))?;
                    self.within_limit((n + 2).saturating_add(len).saturating_add(2))?;
                    self.bytes += n + 2;
                    buf.advance(n + 2);
                    self.bulk = Some((kind, len));
                    return self.bulk_body(buf, kind, len);
                }
                _ => return Err(invalid("bulk length")),
            },
            _ => match parse_int(text) {
                Some(-1) if kind == b'*' => Item::Value(Value::NullArray),
                Some(0) => Item::Value(empty(kind)),
                Some(count) if count > 0 => {
                    let count = usize::try_from(count).map_err(|_| invalid("multibulk length"))?;
                    let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                    let elements = count.saturating_mul(per);
                    self.within_limit(
                        (n + 2).saturating_add(elements.saturating_mul(MIN_ELEMENT_BYTES)),
                    )?;
                    Item::Open(kind, elements)
                }
                _ => return Err(invalid("multibulk length")),
            },
        };
        self.bytes += n + 2;
        buf.advance(n + 2);
        Ok(Some(item))
    }

    /// The payload of a `$`, `!` or `=` string whose length line was taken.
    fn bulk_body(
        &mut self,
        buf: &mut BytesMut,
        kind: u8,
        len: usize,
    ) -> Result<Option<Item>, RespError> {
        if buf.len() < len + 2 {
            return Ok(None);
        }
        if &buf[len..len + 2] != b"\r\n" {
            return Err(RespError::protocol("expected CRLF after a bulk string"));
        }
        let payload = buf.split_to(len).freeze();
        buf.advance(2);
        self.bytes += len + 2;
        self.bulk = None;
        Ok(Some(Item::Value(match kind {
            b'$' => Value::Bulk(payload),
            b'!' => Value::BulkError(payload),
            // `txt:...`: a three-byte format and a colon come first.
            _ if payload.get(3) == Some(&b':') => Value::Verbatim(payload),
            _ => return Err(RespError::protocol("invalid verbatim string")),
        })))
    }

    /// Whether `more` bytes on top of what the value took so far stay within the limit.
    fn within_limit(&self, more: usize) -> Result<(), RespError> {
        let len = self.bytes.saturating_add(more);
        if len > self.max_value {
            return Err(RespError::TooLarge {
                len,
                max: self.max_value,
            });
        }
        Ok(())
    }
}

impl Open {
    fn finish(self) -> Value {
        match self.kind {
            b'~' => Value::Set(self.items),
            b'>' => Value::Push(self.items),
            b'%' => Value::Map(pairs(self.items)),
            b'|' => Value::Attribute(pairs(self.items)),
            _ => Value::Array(self.items),
        }
    }
}

/// An aggregate of length zero.
fn empty(kind: u8) -> Value {
    Open {
        kind,
        remaining: 0,
        items: Vec::new(),
    }
    .finish()
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut items = items.into_iter();
    let mut pairs = Vec::with_capacity(items.len() / 2);
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        pairs.push((k, v));
    }
    pairs
}

/// A big number: an optional sign and at least one digit.
fn parse_big(text: &[u8]) -> bool {
    let digits = match text.first() {
        Some(b'-' | b'+') => &text[1..],
        _ => text,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
