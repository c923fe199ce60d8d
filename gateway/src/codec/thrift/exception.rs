//! `TApplicationException`: the error a Thrift server sends in place of a reply.

use super::protocol::{self, EXCEPTION, Protocol, Reader};
use super::transport;
use crate::policy::reject::RejectKind;

/// `TApplicationException` types (the ones the gateway uses).
pub(super) const UNKNOWN: i32 = 0;
/// No handler for the method: what a server says when it has no such method, and what
/// the gateway says when no route takes the call.
pub(super) const UNKNOWN_METHOD: i32 = 1;
/// The server failed while handling the call.
pub(super) const INTERNAL_ERROR: i32 = 6;
/// The request could not be read.
pub(super) const PROTOCOL_ERROR: i32 = 7;

/// The exception type for a refusal. `NoRoute` is `UNKNOWN_METHOD`, as a server
/// without the method would answer; failures on the gateway's or upstream's side, limits
/// and fault aborts are `INTERNAL_ERROR`; a denied call is `UNKNOWN` (the list has no
/// better word), and the message says why in every case.
pub(super) fn type_of(kind: RejectKind) -> i32 {
    match kind {
        RejectKind::NoRoute => UNKNOWN_METHOD,
        RejectKind::BadRequest => PROTOCOL_ERROR,
        RejectKind::Unauthorized => UNKNOWN,
        RejectKind::NoCluster
        | RejectKind::NoHealthyUpstream
        | RejectKind::ConnectFailure
        | RejectKind::Timeout
        | RejectKind::UpstreamReset
        | RejectKind::Overflow
        | RejectKind::RateLimited
        | RejectKind::RateLimitServiceError
        | RejectKind::FaultAbort { .. }
        | RejectKind::Internal => INTERNAL_ERROR,
    }
}

/// The type of the `TApplicationException` in an EXCEPTION message (`bytes` framing
/// included); `None` when `bytes` are not one, or it carries no type.
pub(super) fn type_in(bytes: &[u8]) -> Option<i32> {
    let located = transport::locate(bytes, usize::MAX, false).ok()?;
    if located.header.message_type != EXCEPTION {
        return None;
    }
    let message = bytes.get(located.message_start..)?;
    let mut r = Reader::new(message);
    let protocol = located.header.protocol;
    protocol::read_message_header(&mut r, protocol).ok()?;
    protocol::read_i32_field(&mut r, protocol, 2).ok()?
}

/// An EXCEPTION message (header and `TApplicationException` struct: field 1 message,
/// field 2 type) in `protocol`.
pub(super) fn write_message(
    protocol: Protocol,
    method: &str,
    seqid: i32,
    kind: i32,
    text: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + method.len() + text.len());
    protocol::write_message_header(&mut out, protocol, method, EXCEPTION, seqid);
    match protocol {
        Protocol::Compact => {
            // Field 1 (delta 1), binary; field 2 (delta 1), i32 zigzag.
            out.push(0x18);
            protocol::write_varint(&mut out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
            out.push(0x15);
            protocol::write_varint(&mut out, u64::from(((kind << 1) ^ (kind >> 31)) as u32));
        }
        Protocol::Binary | Protocol::LaxBinary => {
            out.extend_from_slice(&[11, 0, 1]);
            protocol::write_binary_string(&mut out, text.as_bytes());
            out.extend_from_slice(&[8, 0, 2]);
            out.extend_from_slice(&kind.to_be_bytes());
        }
    }
    out.push(0);
    out
}
