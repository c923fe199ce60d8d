//! Thrift transports (unframed, framed, THeader), detected per message from its first
//! bytes, and the dialect word that remembers how a caller speaks.

use super::header::{self, THeader};
use super::protocol::{self, MessageHeader, ParseError, Protocol, REPLY, Reader};

/// How messages are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The message begins at once and ends where its struct ends.
    Unframed = 0,
    /// A 4-byte big-endian length, then the message.
    Framed = 1,
    /// A 4-byte length, then a THeader header, then the message.
    Header = 2,
}

/// A caller's transport and protocol, as kept in `Metadata::dialect`:
///
/// | bits  | meaning |
/// |-------|---------|
/// | 0–1   | transport: 0 unframed, 1 framed, 2 THeader |
/// | 2–3   | protocol: 0 binary, 1 lax binary, 2 compact |
/// | 16–31 | THeader flags, echoed in replies |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dialect {
    pub(super) transport: Transport,
    pub(super) protocol: Protocol,
    pub(super) header_flags: u16,
}

impl Dialect {
    pub(super) fn to_bits(self) -> u32 {
        self.transport as u32 | (self.protocol as u32) << 2 | u32::from(self.header_flags) << 16
    }

    /// The dialect of `bits`; unknown values fall back to framed binary, the most common
    /// setup, so a reply is still written.
    pub(super) fn from_bits(bits: u32) -> Self {
        let transport = match bits & 0b11 {
            0 => Transport::Unframed,
            2 => Transport::Header,
            _ => Transport::Framed,
        };
        let protocol = match (bits >> 2) & 0b11 {
            1 => Protocol::LaxBinary,
            2 => Protocol::Compact,
            _ => Protocol::Binary,
        };
        Self {
            transport,
            protocol,
            header_flags: (bits >> 16) as u16,
        }
    }
}

/// Why a message could not be taken off a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// More bytes are needed.
    Incomplete,
    /// A message larger than the limit (its announced or buffered length).
    TooLarge(usize),
    /// The first bytes are not Thrift.
    NotThrift(String),
    /// Thrift framing, unreadable content.
    Corrupt(String),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Incomplete => Self::Incomplete,
            ParseError::Corrupt(reason) => Self::Corrupt(reason),
        }
    }
}

/// Where a message sits in a buffer and what its header says.
#[derive(Debug, Clone)]
pub(super) struct Located {
    pub(super) dialect: Dialect,
    pub(super) header: MessageHeader,
    /// The THeader header, for THeader frames.
    pub(super) theader: Option<THeader>,
    /// Offset of the message's first byte (after any frame length and THeader header).
    pub(super) message_start: usize,
    /// Bytes of the whole message, framing included (0 when only the header was read).
    pub(super) total_len: usize,
    /// For replies whose body was read: whether it carried an exception field.
    pub(super) reply_exception: bool,
}

/// Finds the message at the front of `buf`. With `whole`, the message must be complete
/// (its body is read to its end when unframed or a reply); without, only its header is
/// read, as far as the buffer goes.
pub(super) fn locate(buf: &[u8], max: usize, whole: bool) -> Result<Located, Failure> {
    let first = *buf.first().ok_or(Failure::Incomplete)?;
    if first == 0x80 || first == protocol::COMPACT_PROTOCOL_ID {
        return unframed(buf, Protocol::detect(first), max, whole);
    }
    let word = buf.get(..6).ok_or(Failure::Incomplete)?;
    let announced = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    // A lax binary message starts with its name's length and then the name; a frame
    // starts with its length and then a message whose first byte is 0x80, 0x82, 0x0f
    // (THeader) or 0 (the high byte of a lax name length).
    let transport = match (word[4], word[5]) {
        (0x0f, 0xff) => Transport::Header,
        (0x80 | protocol::COMPACT_PROTOCOL_ID | 0, _) => Transport::Framed,
        _ => {
            if announced as usize > max || announced & 0x8000_0000 != 0 {
                return Err(Failure::NotThrift(format!(
                    "unknown first word {announced:#010x}"
                )));
            }
            return unframed(buf, Protocol::LaxBinary, max, whole);
        }
    };
    if announced & 0x8000_0000 != 0 {
        return Err(Failure::NotThrift(format!(
            "negative frame length {}",
            announced as i32
        )));
    }
    // The limit counts the frame length's own four bytes, like the unframed one counts
    // every byte of the message.
    let end = 4 + announced as usize;
    if end > max {
        return Err(Failure::TooLarge(end));
    }
    let (frame, complete) = match buf.get(4..end) {
        Some(frame) => (frame, true),
        None if whole => return Err(Failure::Incomplete),
        None => (buf.get(4..).unwrap_or_default(), false),
    };
    // Within a whole frame, running out of bytes means the frame lied.
    let inside = |e: ParseError| match e {
        ParseError::Incomplete if complete => {
            Failure::Corrupt("message runs past its frame".into())
        }
        e => e.into(),
    };
    let (theader, message_start) = match transport {
        Transport::Header => {
            let h = header::read(frame).map_err(inside)?;
            let start = 4 + h.payload_start;
            (Some(h), start)
        }
        _ => (None, 4),
    };
    let message = buf
        .get(message_start..end.min(buf.len()))
        .unwrap_or_default();
    let first = *message
        .first()
        .ok_or_else(|| inside(ParseError::Incomplete))?;
    let protocol = match &theader {
        Some(h) => h.payload_protocol(first),
        None => Protocol::detect(first),
    };
    let mut r = Reader::new(message);
    let header = protocol::read_message_header(&mut r, protocol).map_err(inside)?;
    let reply_exception = if whole && header.message_type == REPLY {
        protocol::skip_struct(&mut r, protocol).map_err(inside)?
    } else {
        false
    };
    let dialect = Dialect {
        transport,
        protocol,
        header_flags: theader.as_ref().map_or(0, |h| h.flags),
    };
    Ok(Located {
        dialect,
        header,
        theader,
        message_start,
        total_len: if whole { end } else { 0 },
        reply_exception,
    })
}

fn unframed(buf: &[u8], protocol: Protocol, max: usize, whole: bool) -> Result<Located, Failure> {
    let too_large_if_short = |e: ParseError| match e {
        ParseError::Incomplete if buf.len() > max => Failure::TooLarge(buf.len()),
        e => e.into(),
    };
    let mut r = Reader::new(buf);
    let header = protocol::read_message_header(&mut r, protocol).map_err(too_large_if_short)?;
    let mut reply_exception = false;
    let mut total_len = 0;
    if whole {
        let exception = protocol::skip_struct(&mut r, protocol).map_err(too_large_if_short)?;
        reply_exception = header.message_type == REPLY && exception;
        total_len = r.pos;
        if total_len > max {
            return Err(Failure::TooLarge(total_len));
        }
    }
    Ok(Located {
        dialect: Dialect {
            transport: Transport::Unframed,
            protocol,
            header_flags: 0,
        },
        header,
        theader: None,
        message_start: 0,
        total_len,
        reply_exception,
    })
}
