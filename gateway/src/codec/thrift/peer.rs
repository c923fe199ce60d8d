//! What Thrift peers write and read beyond the proxy's needs: a client's calls with one
//! string argument and a server's replies carrying one string. corridor-load's echo
//! server and load client use these, so test peers and the gateway share one reading of
//! the bytes.

use bytes::Bytes;

use super::exception;
use super::header::THeader;
use super::protocol::{self, CALL, ONEWAY, Protocol, REPLY, Reader};
use super::transport::{self, Dialect, Failure, Transport};
use super::{NAME, frame_message, frame_reply};
use crate::codec::{CodecError, Frame, Metadata};

/// `TApplicationException` type a server sends when its handler failed.
pub const INTERNAL_ERROR: i32 = exception::INTERNAL_ERROR;

/// Thrift type code of strings (binary protocol).
const T_STRING: u8 = 11;
/// Compact protocol type code of strings (binary).
const C_BINARY: u8 = 8;

/// What a server answers to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A REPLY whose result struct holds the string as field 0 (success).
    Success(&'a str),
    /// An EXCEPTION carrying a `TApplicationException`.
    Exception {
        /// The exception type (e.g. [`INTERNAL_ERROR`]).
        kind: i32,
        /// Its message.
        message: &'a str,
    },
}

/// How a client speaks: transport and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDialect {
    /// Framing.
    pub transport: Transport,
    /// Encoding (strict binary or compact for new calls).
    pub protocol: Protocol,
}

fn too_large(len: usize) -> CodecError {
    CodecError::TooLarge {
        protocol: NAME,
        len,
        max: u32::MAX as usize,
    }
}

/// A CALL (or ONEWAY) of `method` with `seqid` whose args struct holds `arg` as field 1,
/// in `dialect`; over THeader `headers` travel as info key/values.
pub fn call(
    dialect: ClientDialect,
    method: &str,
    seqid: i32,
    oneway: bool,
    arg: &str,
    headers: &[(String, String)],
) -> Result<Bytes, CodecError> {
    let kind = if oneway { ONEWAY } else { CALL };
    let mut message = Vec::with_capacity(32 + method.len() + arg.len());
    protocol::write_message_header(&mut message, dialect.protocol, method, kind, seqid);
    write_string_struct(&mut message, dialect.protocol, 1, arg);
    let compact = dialect.protocol == Protocol::Compact;
    let mut theader = THeader::for_reply(0, seqid as u32, compact);
    theader.set(headers);
    let d = Dialect {
        transport: dialect.transport,
        protocol: dialect.protocol,
        header_flags: 0,
    };
    frame_message(d, Some(&theader), &message)
        .map(Bytes::from)
        .ok_or_else(|| too_large(message.len()))
}

/// The answer to the call `request` (its metadata, as decoded by `ThriftCodec`) in the
/// caller's own transport and protocol, with the same seqid; over THeader `headers`
/// travel back as info key/values.
pub fn reply(
    request: &Metadata,
    reply: &Reply<'_>,
    headers: &[(String, String)],
) -> Result<Bytes, CodecError> {
    let dialect = Dialect::from_bits(request.dialect);
    let method = request.get(super::METHOD).unwrap_or_default();
    let seqid = request.request_id as u32;
    let message = match reply {
        Reply::Success(value) => {
            let mut out = Vec::with_capacity(32 + method.len() + value.len());
            protocol::write_message_header(&mut out, dialect.protocol, method, REPLY, seqid as i32);
            write_string_struct(&mut out, dialect.protocol, 0, value);
            out
        }
        Reply::Exception { kind, message } => {
            exception::write_message(dialect.protocol, method, seqid as i32, *kind, message)
        }
    };
    frame_reply(dialect, seqid, &message, headers).ok_or_else(|| too_large(message.len()))
}

/// The THeader key/values of a decoded message: its attributes after `method` (empty for
/// other transports).
pub fn headers(metadata: &Metadata) -> &[(String, String)] {
    metadata.attributes.get(1..).unwrap_or_default()
}

/// Field `id` of a decoded message's struct when it is a string: a call's argument, a
/// reply's success value (field 0), an exception's message (field 1). `None` when the
/// field is absent or of another type.
pub fn string_field(frame: &Frame, id: i16) -> Result<Option<String>, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt {
        protocol: NAME,
        reason,
    };
    let located = match transport::locate(&frame.bytes, usize::MAX, false) {
        Ok(located) => located,
        Err(Failure::Corrupt(reason) | Failure::NotThrift(reason)) => return Err(corrupt(reason)),
        Err(_) => return Err(corrupt("truncated message".into())),
    };
    let message = frame.bytes.get(located.message_start..).unwrap_or_default();
    let mut r = Reader::new(message);
    let read = protocol::read_message_header(&mut r, located.header.protocol)
        .and_then(|_| protocol::read_string_field(&mut r, located.header.protocol, id));
    match read {
        Ok(value) => Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned())),
        Err(protocol::ParseError::Corrupt(reason)) => Err(corrupt(reason)),
        Err(protocol::ParseError::Incomplete) => Err(corrupt("truncated struct".into())),
    }
}

/// A struct with the single string field `id` = `value`.
fn write_string_struct(out: &mut Vec<u8>, protocol: Protocol, id: i16, value: &str) {
    match protocol {
        Protocol::Compact => {
            // Short form (id as a delta from 0) for ids 1 to 15; else the type byte and
            // the id as a zigzag varint.
            if (1..=15).contains(&id) {
                out.push(((id as u8) << 4) | C_BINARY);
            } else {
                out.push(C_BINARY);
                protocol::write_varint(out, u64::from(((id << 1) ^ (id >> 15)) as u16));
            }
            protocol::write_varint(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        }
        Protocol::Binary | Protocol::LaxBinary => {
            out.push(T_STRING);
            out.extend_from_slice(&id.to_be_bytes());
            protocol::write_binary_string(out, value.as_bytes());
        }
    }
    out.push(0);
}
