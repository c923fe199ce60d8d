//! RESP, the Redis serialization protocol, versions 2 and 3: values, their encoding, and
//! two resumable decoders, one for the commands clients send ([`CommandDecoder`]) and one
//! for the replies servers send ([`ValueDecoder`]).
//!
//! Both decoders take bytes off the front of a `BytesMut` as they go and keep what they
//! have read of an unfinished message in their own state, so a message arriving in many
//! small reads is parsed in time linear in its size. Bulk payloads are split off the
//! buffer without copying. After an error a decoder is not usable again: the connection
//! is expected to answer with [`RespError::reply`] and close.

mod encode;
mod inline;
mod line;
mod reply;
mod request;
mod whole;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use self::encode::{encode, encode_command};
pub(crate) use self::line::parse_int;
pub use self::reply::ValueDecoder;
pub use self::request::{Command, CommandDecoder};

/// Largest bulk string Redis accepts by default (`proto-max-bulk-len`, 512 MiB).
pub const PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Longest inline command, and longest `*`/`$` length line, Redis accepts
/// (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;

/// Most elements in one command: Redis 7 refuses a multibulk length above `INT_MAX`.
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;

/// Deepest nesting of aggregates accepted in a reply. Redis itself never nests deeper
/// than a few levels; the limit only keeps a broken or hostile peer from making the
/// decoder (and whoever walks the value recursively) use unbounded stack or memory.
pub const MAX_DEPTH: usize = 128;

/// A default for the largest command a client may send: a single argument of Redis's own
/// largest bulk size (plus its framing) still fits, so nothing Redis accepts is refused.
pub const DEFAULT_MAX_REQUEST: usize = PROTO_MAX_BULK_LEN + 1024;

/// A default for the largest reply accepted from a server, for the same reason.
pub const DEFAULT_MAX_VALUE: usize = PROTO_MAX_BULK_LEN + 1024;

/// One RESP value, RESP2 or RESP3.
///
/// Text-like payloads are kept as the bytes of the wire so that decoding and encoding
/// again gives the same bytes: a [`Value::Double`] is its decimal text (`3.141`, `inf`),
/// a [`Value::BigNumber`] its digits, a [`Value::Verbatim`] its whole payload including
/// the three-letter format and colon (`txt:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`: a simple string (no CR or LF inside).
    Simple(Bytes),
    /// `-ERR message`: an error; the bytes start with its code (`ERR`, `WRONGTYPE`, ...).
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3 foo`: a binary-safe string.
    Bulk(Bytes),
    /// `$-1`: RESP2's null (a missing key).
    NullBulk,
    /// `*2 ...`: an array.
    Array(Vec<Value>),
    /// `*-1`: RESP2's null array (a timed-out blocking pop).
    NullArray,
    /// `_`: RESP3's null.
    Null,
    /// `#t` / `#f` (RESP3).
    Boolean(bool),
    /// `,3.141` (RESP3): the number's text as sent.
    Double(Bytes),
    /// `(12345678901234567890` (RESP3): the digits as sent.
    BigNumber(Bytes),
    /// `!21 SYNTAX invalid syntax` (RESP3): a binary-safe error.
    BulkError(Bytes),
    /// `=15 txt:Some string` (RESP3): the payload with its format prefix.
    Verbatim(Bytes),
    /// `%2 ...` (RESP3): key/value pairs in wire order.
    Map(Vec<(Value, Value)>),
    /// `~2 ...` (RESP3): an unordered collection, in wire order.
    Set(Vec<Value>),
    /// `|1 ...` (RESP3): out-of-band information about the value that follows it.
    ///
    /// [`ValueDecoder`] returns an attribute at the top level as a value of its own,
    /// before the reply it annotates (so it is not a reply to anything); attributes inside
    /// aggregates are read and dropped, as they do not count towards the aggregate's
    /// length. Redis sends attributes only for `DEBUG PROTOCOL attrib`.
    Attribute(Vec<(Value, Value)>),
    /// `>2 ...` (RESP3): an out-of-band message (pub/sub, client tracking): not a reply.
    Push(Vec<Value>),
}

impl Value {
    /// An error reply: `msg` is the text after the `-`, starting with the error code, as
    /// in `Value::error("ERR unknown command 'foo'")`. CR and LF become spaces, as Redis
    /// does for its own errors, so the reply cannot break the stream.
    pub fn error(msg: impl Into<String>) -> Value {
        let mut msg = msg.into().into_bytes();
        for b in &mut msg {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        Value::Error(Bytes::from(msg))
    }

    /// `+OK`.
    pub fn ok() -> Value {
        Value::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string from static text, such as `PONG`.
    pub fn simple(text: &'static str) -> Value {
        Value::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Bytes>) -> Value {
        Value::Bulk(bytes.into())
    }

    /// Whether this is an error reply (simple or bulk).
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_) | Value::BulkError(_))
    }

    /// Whether this is a null of any protocol version.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::NullBulk | Value::NullArray | Value::Null)
    }

    /// The same reply as a RESP2 client sees it, following what Redis sends a RESP2
    /// connection for each RESP3 type: maps flatten to arrays of key, value, key, ...;
    /// sets and pushes become arrays; null a null bulk; booleans 1 and 0; doubles and big
    /// numbers bulk strings of their text; verbatim strings bulk strings without their
    /// format prefix; bulk errors simple errors. Attributes inside aggregates are dropped;
    /// an attribute on its own becomes a null bulk.
    pub fn into_resp2(self) -> Value {
        match self {
            Value::Null => Value::NullBulk,
            Value::Boolean(b) => Value::Integer(i64::from(b)),
            Value::Double(text) | Value::BigNumber(text) => Value::Bulk(text),
            Value::Verbatim(payload) => {
                // `txt:` — the format is always three bytes and a colon.
                let body = if payload.len() >= 4 {
                    payload.slice(4..)
                } else {
                    payload
                };
                Value::Bulk(body)
            }
            Value::BulkError(msg) => Value::error(String::from_utf8_lossy(&msg)),
            Value::Array(items) | Value::Set(items) | Value::Push(items) => Value::Array(
                items
                    .into_iter()
                    .filter(|v| !matches!(v, Value::Attribute(_)))
                    .map(Value::into_resp2)
                    .collect(),
            ),
            Value::Map(pairs) => Value::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [k.into_resp2(), v.into_resp2()])
                    .collect(),
            ),
            Value::Attribute(_) => Value::NullBulk,
            other => other,
        }
    }
}

/// Why bytes could not be decoded. Either way the peer broke the protocol (or exceeded a
/// limit): the connection cannot continue, and retrying the same bytes cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Malformed RESP; the text is Redis's own wording where Redis has one
    /// (`invalid bulk length`).
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// The message is over the configured size limit (`len` is how large it is known to
    /// be so far: at least that).
    #[error("message of at least {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// Bytes the message has at least.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl RespError {
    /// The error reply a client sees before its connection is closed, in Redis's words:
    /// `-ERR Protocol error: invalid bulk length`.
    pub fn reply(&self) -> Value {
        match self {
            RespError::Protocol(_) => Value::error(format!("ERR {self}")),
            RespError::TooLarge { len, max } => Value::error(format!(
                "ERR Protocol error: too big request (at least {len} bytes, the limit is {max})"
            )),
        }
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> RespError {
        RespError::Protocol(msg.into())
    }
}

/// A byte as Redis prints it in `expected '$', got 'x'`, but never a control byte (which
/// would garble a log line) nor a non-ASCII one (which is not text).
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        char::from(b).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}
