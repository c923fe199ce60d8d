//! Thrift protocols (binary, lax binary, compact): message headers read and written, and
//! struct bodies skipped to find where an unframed message ends.

/// Deepest nesting of structs and containers accepted while skipping a body: deeper
/// input is treated as corrupt rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Strict binary version word (the high half; the low byte is the message type).
const BINARY_VERSION_1: u32 = 0x8001_0000;
/// First byte of a compact message.
pub(super) const COMPACT_PROTOCOL_ID: u8 = 0x82;
/// Compact protocol version, in the low five bits of the second byte.
const COMPACT_VERSION: u8 = 1;

/// Message types on the wire.
pub(super) const CALL: u8 = 1;
/// A reply to a call.
pub(super) const REPLY: u8 = 2;
/// An exception in place of a reply.
pub(super) const EXCEPTION: u8 = 3;
/// A call without a reply.
pub(super) const ONEWAY: u8 = 4;

/// How a message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Binary with the 0x8001 version word.
    Binary = 0,
    /// Binary without a version word (name length first, then the type byte).
    LaxBinary = 1,
    /// Compact (0x82).
    Compact = 2,
}

impl Protocol {
    /// The protocol of a binary-or-compact message, from its first byte.
    pub(super) fn detect(first: u8) -> Self {
        match first {
            0x80 => Self::Binary,
            COMPACT_PROTOCOL_ID => Self::Compact,
            _ => Self::LaxBinary,
        }
    }
}

/// Why bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ParseError {
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not a readable message.
    Corrupt(String),
}

fn corrupt<T>(reason: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::Corrupt(reason.into()))
}

/// A cursor over bytes that never reads past their end.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    /// Bytes read so far.
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(ParseError::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned LEB128 varint of at most ten bytes.
    pub(super) fn varint(&mut self) -> Result<u64, ParseError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        corrupt("varint longer than ten bytes")
    }

    /// A length (binary i32 or compact varint), rejected when negative or beyond `usize`.
    fn length(&mut self, protocol: Protocol) -> Result<usize, ParseError> {
        let len = match protocol {
            Protocol::Compact => self.varint()?,
            _ => {
                let len = self.u32()? as i32;
                if len < 0 {
                    return corrupt(format!("negative length {len}"));
                }
                len as u64
            }
        };
        usize::try_from(len).or_else(|_| corrupt("length beyond memory"))
    }
}

/// What a message header says, with where its seqid sits (offsets from the message's
/// first byte), so it can be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MessageHeader {
    pub(super) protocol: Protocol,
    pub(super) name: String,
    pub(super) message_type: u8,
    pub(super) seqid: i32,
    pub(super) seqid_start: usize,
    pub(super) seqid_end: usize,
}

/// Reads a message header from the front of `r`, leaving it at the body's first byte.
pub(super) fn read_message_header(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<MessageHeader, ParseError> {
    let (name, message_type, seqid_start, seqid_end, seqid) = match protocol {
        Protocol::Binary => {
            let version = r.u32()?;
            if version & 0xffff_0000 != BINARY_VERSION_1 {
                return corrupt(format!("bad binary version {version:#010x}"));
            }
            let name = read_name(r, protocol)?;
            let start = r.pos;
            (
                name,
                (version & 0xff) as u8,
                start,
                start + 4,
                r.u32()? as i32,
            )
        }
        Protocol::LaxBinary => {
            let name = read_name(r, protocol)?;
            let message_type = r.u8()?;
            let start = r.pos;
            (name, message_type, start, start + 4, r.u32()? as i32)
        }
        Protocol::Compact => {
            if r.u8()? != COMPACT_PROTOCOL_ID {
                return corrupt("bad compact protocol id");
            }
            let b = r.u8()?;
            if b & 0x1f != COMPACT_VERSION {
                return corrupt(format!("bad compact version {}", b & 0x1f));
            }
            let start = r.pos;
            let seqid = r.varint()?;
            let seqid = u32::try_from(seqid).or_else(|_| corrupt("seqid beyond 32 bits"))?;
            // The end as read, not as re-encoded: a writer may pad its varints.
            let end = r.pos;
            (read_name(r, protocol)?, b >> 5, start, end, seqid as i32)
        }
    };
    if !(CALL..=ONEWAY).contains(&message_type) {
        return corrupt(format!("unknown message type {message_type}"));
    }
    Ok(MessageHeader {
        protocol,
        name,
        message_type,
        seqid,
        seqid_start,
        seqid_end,
    })
}

fn read_name(r: &mut Reader<'_>, protocol: Protocol) -> Result<String, ParseError> {
    let len = r.length(protocol)?;
    Ok(String::from_utf8_lossy(r.take(len)?).into_owned())
}

/// Writes a message header (`protocol`'s encoding) to `out`.
pub(super) fn write_message_header(
    out: &mut Vec<u8>,
    protocol: Protocol,
    name: &str,
    message_type: u8,
    seqid: i32,
) {
    match protocol {
        Protocol::Binary => {
            out.extend_from_slice(&(BINARY_VERSION_1 | u32::from(message_type)).to_be_bytes());
            write_binary_string(out, name.as_bytes());
            out.extend_from_slice(&seqid.to_be_bytes());
        }
        Protocol::LaxBinary => {
            write_binary_string(out, name.as_bytes());
            out.push(message_type);
            out.extend_from_slice(&seqid.to_be_bytes());
        }
        Protocol::Compact => {
            out.push(COMPACT_PROTOCOL_ID);
            out.push((message_type << 5) | COMPACT_VERSION);
            write_varint(out, u64::from(seqid as u32));
            write_varint(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// The bytes of a seqid in `protocol`'s encoding.
pub(super) fn encode_seqid(protocol: Protocol, seqid: i32) -> Vec<u8> {
    match protocol {
        Protocol::Compact => {
            let mut out = Vec::with_capacity(5);
            write_varint(&mut out, u64::from(seqid as u32));
            out
        }
        _ => seqid.to_be_bytes().to_vec(),
    }
}

pub(super) fn write_binary_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

pub(super) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// === skipping bodies ===

/// Skips a struct; returns whether it had a field other than field 0 (in a reply: an
/// exception rather than the success value).
pub(super) fn skip_struct(r: &mut Reader<'_>, protocol: Protocol) -> Result<bool, ParseError> {
    skip_struct_at(r, protocol, 0)
}

fn skip_struct_at(
    r: &mut Reader<'_>,
    protocol: Protocol,
    depth: usize,
) -> Result<bool, ParseError> {
    if depth > MAX_DEPTH {
        return corrupt("nesting too deep");
    }
    let mut other_field = false;
    let mut last_id: i16 = 0;
    loop {
        let b = r.u8()?;
        if b == 0 {
            return Ok(other_field);
        }
        let id = match protocol {
            Protocol::Compact => {
                let delta = b >> 4;
                let id = if delta == 0 {
                    zigzag_i16(r.varint()?)?
                } else {
                    last_id.wrapping_add(i16::from(delta))
                };
                match b & 0x0f {
                    // Booleans in fields carry their value in the type nibble.
                    1 | 2 => {}
                    t => skip_compact(r, t, depth + 1)?,
                }
                id
            }
            _ => {
                let id = r.u16()? as i16;
                skip_binary(r, b, depth + 1)?;
                id
            }
        };
        last_id = id;
        other_field |= id != 0;
    }
}

fn skip_binary(r: &mut Reader<'_>, ttype: u8, depth: usize) -> Result<(), ParseError> {
    if depth > MAX_DEPTH {
        return corrupt("nesting too deep");
    }
    match ttype {
        2 | 3 => drop(r.take(1)?),
        6 => drop(r.take(2)?),
        8 => drop(r.take(4)?),
        4 | 10 => drop(r.take(8)?),
        16 => drop(r.take(16)?),
        11 => {
            let len = r.length(Protocol::Binary)?;
            r.take(len)?;
        }
        12 => drop(skip_struct_at(r, Protocol::Binary, depth)?),
        13 => {
            let (k, v) = (r.u8()?, r.u8()?);
            let n = r.length(Protocol::Binary)?;
            // Every element takes at least one byte, so this ends within the buffer.
            for _ in 0..n {
                skip_binary(r, k, depth + 1)?;
                skip_binary(r, v, depth + 1)?;
            }
        }
        14 | 15 => {
            let e = r.u8()?;
            let n = r.length(Protocol::Binary)?;
            for _ in 0..n {
                skip_binary(r, e, depth + 1)?;
            }
        }
        t => return corrupt(format!("unknown binary type {t}")),
    }
    Ok(())
}

fn skip_compact(r: &mut Reader<'_>, ctype: u8, depth: usize) -> Result<(), ParseError> {
    if depth > MAX_DEPTH {
        return corrupt("nesting too deep");
    }
    match ctype {
        // Booleans and bytes inside containers take one byte.
        1..=3 => drop(r.take(1)?),
        4..=6 => drop(r.varint()?),
        7 => drop(r.take(8)?),
        13 => drop(r.take(16)?),
        8 => {
            let len = r.length(Protocol::Compact)?;
            r.take(len)?;
        }
        12 => drop(skip_struct_at(r, Protocol::Compact, depth)?),
        9 | 10 => {
            let b = r.u8()?;
            let n = match b >> 4 {
                15 => r.varint()?,
                n => u64::from(n),
            };
            for _ in 0..n {
                skip_compact(r, b & 0x0f, depth + 1)?;
            }
        }
        11 => {
            let n = r.varint()?;
            if n > 0 {
                let kv = r.u8()?;
                for _ in 0..n {
                    skip_compact(r, kv >> 4, depth + 1)?;
                    skip_compact(r, kv & 0x0f, depth + 1)?;
                }
            }
        }
        t => return corrupt(format!("unknown compact type {t}")),
    }
    Ok(())
}

/// Reads a struct for its field `id` when that field is a string, skipping every other
/// field; `None` when absent or of another type. Leaves `r` after the struct.
pub(super) fn read_string_field(
    r: &mut Reader<'_>,
    protocol: Protocol,
    id: i16,
) -> Result<Option<Vec<u8>>, ParseError> {
    read_field(r, protocol, id, (11, 8), |r| {
        let len = r.length(protocol)?;
        Ok(r.take(len)?.to_vec())
    })
}

/// Reads a struct for its field `id` when that field is an i32, skipping every other
/// field; `None` when absent or of another type (a `TApplicationException`'s type).
pub(super) fn read_i32_field(
    r: &mut Reader<'_>,
    protocol: Protocol,
    id: i16,
) -> Result<Option<i32>, ParseError> {
    read_field(r, protocol, id, (8, 5), |r| match protocol {
        // Compact i32: a zigzag varint.
        Protocol::Compact => {
            let v = r.varint()? as u32;
            Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        _ => Ok(r.u32()? as i32),
    })
}

/// Reads a struct for its field `id` with `read` when the field has the wanted type
/// (`types`: its binary and its compact type code), skipping every other field; `None`
/// when absent or of another type. Leaves `r` after the struct.
fn read_field<T>(
    r: &mut Reader<'_>,
    protocol: Protocol,
    id: i16,
    (binary, compact): (u8, u8),
    read: impl Fn(&mut Reader<'_>) -> Result<T, ParseError>,
) -> Result<Option<T>, ParseError> {
    let mut found = None;
    let mut last_id: i16 = 0;
    loop {
        let b = r.u8()?;
        if b == 0 {
            return Ok(found);
        }
        match protocol {
            Protocol::Compact => {
                let delta = b >> 4;
                let field = if delta == 0 {
                    zigzag_i16(r.varint()?)?
                } else {
                    last_id.wrapping_add(i16::from(delta))
                };
                last_id = field;
                match b & 0x0f {
                    // Booleans carry their value in the type code.
                    1 | 2 => {}
                    t if t == compact && field == id => found = Some(read(r)?),
                    t => skip_compact(r, t, 1)?,
                }
            }
            _ => {
                let field = r.u16()? as i16;
                if b == binary && field == id {
                    found = Some(read(r)?);
                } else {
                    skip_binary(r, b, 1)?;
                }
            }
        }
    }
}

fn zigzag_i16(v: u64) -> Result<i16, ParseError> {
    let v = u16::try_from(v).or_else(|_| corrupt("field id beyond 16 bits"))?;
    Ok(((v >> 1) as i16) ^ -((v & 1) as i16))
}
