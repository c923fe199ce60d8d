//! Thrift: framed, unframed and THeader transports; binary, lax binary and compact
//! protocols, detected per message from its first bytes.
//!
//! Metadata: `method` (the message name) and every THeader key/value as attributes; the
//! seqid (its 32 bits, widened) as the request id. Local replies are
//! `TApplicationException`s in the caller's own transport and protocol. Attribute edits
//! reach the wire only for THeader callers, as THeader info key/values.
//!
//! - Framed and THeader messages are cut by their length, checked against the limit
//!   before any body is buffered; unframed ones by reading the struct to its end.
//! - `Metadata::dialect` holds the transport, the protocol and the THeader flags (layout
//!   in `transport::Dialect`).
//! - A reply is an error when it is an EXCEPTION, or a REPLY whose struct has a field
//!   other than 0 (a declared exception instead of the success value).
//! - A new request id is cut to 32 bits; over THeader it also becomes the header's seq
//!   id, as the reference clients keep the two equal.
//! - Local reply types: see `exception::type_of`.

mod exception;
mod header;
pub mod peer;
mod protocol;
mod transport;

pub use protocol::Protocol;
pub use transport::Transport;

#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use super::{
    Codec, CodecError, DEFAULT_MAX_MESSAGE, Edit, Frame, MessageType, Metadata, ResponseStatus,
};
use crate::policy::reject::{Reject, RejectKind};
use header::THeader;
use protocol::{CALL, ONEWAY, REPLY};
use transport::{Dialect, Failure, Located};

/// The codec's name in metrics, logs and errors.
const NAME: &str = "thrift";
/// The attribute holding the method name; local replies read it back from there.
const METHOD: &str = "method";

/// The Thrift codec.
#[derive(Debug, Clone)]
pub struct ThriftCodec {
    /// Largest message accepted, framing included.
    max_message: usize,
}

impl ThriftCodec {
    /// A codec accepting messages of up to `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self { max_message }
    }

    fn error(&self, failure: Failure) -> CodecError {
        match failure {
            Failure::TooLarge(len) => CodecError::TooLarge {
                protocol: NAME,
                len,
                max: self.max_message,
            },
            Failure::NotThrift(reason) => CodecError::NotProtocol {
                protocol: NAME,
                reason,
            },
            Failure::Corrupt(reason) => CodecError::Corrupt {
                protocol: NAME,
                reason,
            },
            Failure::Incomplete => CodecError::Corrupt {
                protocol: NAME,
                reason: "truncated message".into(),
            },
        }
    }
}

impl ThriftCodec {
    /// Writes `frame` with a binary message's seqid (and a THeader's seq id) set to `seqid`.
    fn patch_seqid(
        &self,
        frame: &Frame,
        located: &Located,
        seqid: u32,
        out: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let base = out.len();
        out.extend_from_slice(&frame.bytes);
        let at = base + located.message_start + located.header.seqid_start;
        // Frame length (4), magic (2), flags (2), then the THeader's seq id.
        let header_seq_id = located.theader.as_ref().map(|_| base + 8);
        for at in std::iter::once(at).chain(header_seq_id) {
            let slot = out
                .get_mut(at..at + 4)
                .ok_or_else(|| self.error(Failure::Corrupt("seqid outside the message".into())))?;
            slot.copy_from_slice(&seqid.to_be_bytes());
        }
        Ok(())
    }
}

impl Default for ThriftCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE)
    }
}

fn metadata(located: &Located) -> Metadata {
    let h = &located.header;
    let (message_type, response_status) = match h.message_type {
        CALL => (MessageType::Request, ResponseStatus::Ok),
        ONEWAY => (MessageType::Oneway, ResponseStatus::Ok),
        REPLY if located.reply_exception => (MessageType::Response, ResponseStatus::Error),
        REPLY => (MessageType::Response, ResponseStatus::Ok),
        // EXCEPTION (the only type left: headers with others are rejected).
        _ => (MessageType::Response, ResponseStatus::Error),
    };
    let mut attributes = vec![(METHOD.to_string(), h.name.clone())];
    if let Some(th) = &located.theader {
        attributes.extend(th.attributes().cloned());
    }
    Metadata {
        message_type,
        request_id: u64::from(h.seqid as u32),
        response_status,
        attributes,
        dialect: located.dialect.to_bits(),
    }
}

/// Frames `message` in `dialect`'s transport; `theader` is the header to use for THeader.
fn frame_message(dialect: Dialect, theader: Option<&THeader>, message: &[u8]) -> Option<Vec<u8>> {
    match (dialect.transport, theader) {
        (Transport::Header, Some(h)) => h.write_frame(message),
        (Transport::Unframed, _) => Some(message.to_vec()),
        _ => {
            let len = u32::try_from(message.len()).ok()?;
            let mut out = Vec::with_capacity(4 + message.len());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(message);
            Some(out)
        }
    }
}

impl Codec for ThriftCodec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let located = match transport::locate(buf, self.max_message, true) {
            Ok(located) => located,
            Err(Failure::Incomplete) => return Ok(None),
            Err(failure) => return Err(self.error(failure)),
        };
        let metadata = metadata(&located);
        let bytes = buf.split_to(located.total_len).freeze();
        Ok(Some(Frame { metadata, bytes }))
    }

    fn encode(&self, frame: &Frame, edit: &Edit, out: &mut BytesMut) -> Result<(), CodecError> {
        if edit.is_empty() {
            out.extend_from_slice(&frame.bytes);
            return Ok(());
        }
        let located = match transport::locate(&frame.bytes, usize::MAX, true) {
            Ok(located) => located,
            Err(failure) => return Err(self.error(failure)),
        };
        let headers_change = located.theader.is_some() && !edit.set.is_empty();
        if !headers_change {
            match edit.request_id {
                None => {
                    out.extend_from_slice(&frame.bytes);
                    return Ok(());
                }
                // A fixed-width seqid (binary) is patched in place: the common case costs
                // one copy.
                Some(id) if located.header.protocol != protocol::Protocol::Compact => {
                    return self.patch_seqid(frame, &located, id as u32, out);
                }
                Some(_) => {}
            }
        }
        let message = frame
            .bytes
            .get(located.message_start..located.total_len)
            .unwrap_or_default();
        let mut theader = located.theader.clone();
        let message = match edit.request_id {
            None => message.to_vec(),
            Some(id) => {
                // The seqid is 32 bits: ids beyond are cut to their low 32 bits.
                let seqid = id as u32;
                if let Some(h) = theader.as_mut() {
                    h.seq_id = seqid;
                }
                let h = &located.header;
                let (before, after) = (message.get(..h.seqid_start), message.get(h.seqid_end..));
                let (Some(before), Some(after)) = (before, after) else {
                    return Err(self.error(Failure::Corrupt("seqid outside the message".into())));
                };
                let mut rewritten = before.to_vec();
                rewritten.extend_from_slice(&protocol::encode_seqid(h.protocol, seqid as i32));
                rewritten.extend_from_slice(after);
                rewritten
            }
        };
        if let Some(h) = theader.as_mut() {
            h.set(&edit.set);
        }
        let bytes = frame_message(located.dialect, theader.as_ref(), &message)
            .ok_or_else(|| self.error(Failure::TooLarge(message.len())))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    /// 0 for a REPLY (a declared exception too: the service answered), else the
    /// `TApplicationException` type (UNKNOWN when unreadable).
    fn response_code(&self, response: &Frame) -> u16 {
        if response.metadata.response_status == ResponseStatus::Ok {
            return 0;
        }
        match exception::type_in(&response.bytes) {
            Some(kind) => u16::try_from(kind).unwrap_or(exception::UNKNOWN as u16),
            // A REPLY carrying a declared exception.
            None if transport::locate(&response.bytes, usize::MAX, false)
                .is_ok_and(|l| l.header.message_type == REPLY) =>
            {
                0
            }
            None => exception::UNKNOWN as u16,
        }
    }

    fn reject_code(&self, kind: RejectKind) -> u16 {
        exception::type_of(kind) as u16
    }

    fn delivered_code(&self) -> u16 {
        0
    }

    fn can_mutate(&self, metadata: &Metadata) -> bool {
        Dialect::from_bits(metadata.dialect).transport == Transport::Header
    }

    fn local_reply(&self, request: &Metadata, reject: &Reject) -> Bytes {
        let dialect = Dialect::from_bits(request.dialect);
        let method = request.get(METHOD).unwrap_or_default();
        let kind = exception::type_of(reject.kind);
        reply(
            dialect,
            method,
            request.request_id as u32,
            kind,
            &reject.message,
        )
    }

    fn heartbeat_reply(&self, _request: &Metadata) -> Option<Bytes> {
        None
    }

    fn error_reply(&self, buf: &[u8], error: &CodecError) -> Option<Bytes> {
        let located = transport::locate(buf, usize::MAX, false).ok()?;
        let h = &located.header;
        let text = error.to_string();
        Some(reply(
            located.dialect,
            &h.name,
            h.seqid as u32,
            exception::PROTOCOL_ERROR,
            &text,
        ))
    }

    /// Thrift clients read the next answer on a connection and check its seqid
    /// (BAD_SEQUENCE_ID otherwise), so a pipelining client needs them in order.
    fn responses_in_order(&self) -> bool {
        true
    }
}

/// A `TApplicationException` of `kind` in `dialect` (THeader replies echo the flags and
/// carry the seqid as their seq id, as the reference clients write it).
fn reply(dialect: Dialect, method: &str, seqid: u32, kind: i32, text: &str) -> Bytes {
    let message = exception::write_message(dialect.protocol, method, seqid as i32, kind, text);
    // Only a header beyond 256 KiB fails to frame, and a reply's has no key/values.
    frame_reply(dialect, seqid, &message, &[]).unwrap_or_else(|| Bytes::from(message))
}

/// Frames a reply `message` in `dialect`; over THeader with the request's flags, `seqid`
/// as the seq id and `headers` as info key/values. `None` when the THeader header or the
/// frame outgrows its length fields.
fn frame_reply(
    dialect: Dialect,
    seqid: u32,
    message: &[u8],
    headers: &[(String, String)],
) -> Option<Bytes> {
    let compact = dialect.protocol == protocol::Protocol::Compact;
    let mut theader = THeader::for_reply(dialect.header_flags, seqid, compact);
    theader.set(headers);
    frame_message(dialect, Some(&theader), message).map(Bytes::from)
}
