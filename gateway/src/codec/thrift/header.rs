//! The THeader transport's header: flags, seq id, protocol id, transforms and info
//! key/values (what `fbthrift` and Apache Thrift's `THeaderTransport` write).

use super::protocol::{ParseError, Protocol, Reader, write_varint};

/// Magic in the two bytes after the frame length.
pub(super) const MAGIC: [u8; 2] = [0x0f, 0xff];
/// Bytes between the frame length and the header: magic, flags, seq id, header size.
pub(super) const FIXED_LEN: usize = 10;
/// Protocol ids of the header.
const PROTOCOL_BINARY: u64 = 0;
const PROTOCOL_COMPACT: u64 = 2;
/// Info section types: key/values for this message, and key/values meant to persist over
/// the connection (some implementations); both are read, edits go to the first kind.
const INFO_KEY_VALUE: u64 = 1;
const INFO_PERSISTENT_KEY_VALUE: u64 = 2;

/// A THeader frame's header, read from the bytes after the 4-byte frame length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct THeader {
    pub(super) flags: u16,
    pub(super) seq_id: u32,
    /// Whether the payload is compact (else binary).
    pub(super) compact: bool,
    /// The header's protocol id and transform list, kept as written.
    pub(super) prelude: Vec<u8>,
    /// Key/values of `INFO_KEY_VALUE` sections, in order.
    pub(super) info: Vec<(String, String)>,
    /// Key/values of persistent sections.
    pub(super) persistent: Vec<(String, String)>,
    /// Where the payload starts, from the frame's first byte after the length.
    pub(super) payload_start: usize,
}

/// Reads the header of a THeader frame body (`frame` starts at the magic).
pub(super) fn read(frame: &[u8]) -> Result<THeader, ParseError> {
    let mut r = Reader::new(frame);
    if r.take(2)? != MAGIC {
        return Err(ParseError::Corrupt("bad THeader magic".into()));
    }
    let flags = r.u16()?;
    let seq_id = r.u32()?;
    let header_len = usize::from(r.u16()?) * 4;
    let payload_start = FIXED_LEN + header_len;
    let header = frame
        .get(FIXED_LEN..payload_start)
        .ok_or(ParseError::Incomplete)?;

    // The header is all there: running out of it means it lied about its size.
    let (compact, prelude, info, persistent) = read_header(header).map_err(|e| match e {
        ParseError::Incomplete => ParseError::Corrupt("THeader header runs past its size".into()),
        e => e,
    })?;
    Ok(THeader {
        flags,
        seq_id,
        compact,
        prelude,
        info,
        persistent,
        payload_start,
    })
}

/// Key/values of a header, and the header's protocol id and transforms as written.
type Sections = (bool, Vec<u8>, Vec<(String, String)>, Vec<(String, String)>);

fn read_header(header: &[u8]) -> Result<Sections, ParseError> {
    let mut h = Reader::new(header);
    let compact = match h.varint()? {
        PROTOCOL_BINARY => false,
        PROTOCOL_COMPACT => true,
        id => {
            return Err(ParseError::Corrupt(format!(
                "unsupported THeader protocol id {id}"
            )));
        }
    };
    if h.varint()? != 0 {
        // Compressed payloads cannot be read or rewritten here.
        return Err(ParseError::Corrupt(
            "THeader transforms are not supported".into(),
        ));
    }
    let prelude = header.get(..h.pos).unwrap_or_default().to_vec();
    let mut info = Vec::new();
    let mut persistent = Vec::new();
    while h.pos < header.len() {
        let into = match h.varint()? {
            INFO_KEY_VALUE => &mut info,
            INFO_PERSISTENT_KEY_VALUE => &mut persistent,
            // Padding (0) or a section type nobody here knows: the rest is skipped, as
            // the reference implementations do.
            _ => break,
        };
        let count = h.varint()?;
        // Each pair takes at least two bytes, so the loop ends within the header.
        for _ in 0..count {
            let key = read_string(&mut h)?;
            let value = read_string(&mut h)?;
            into.push((key, value));
        }
    }
    Ok((compact, prelude, info, persistent))
}

fn read_string(r: &mut Reader<'_>) -> Result<String, ParseError> {
    let len = usize::try_from(r.varint()?)
        .map_err(|_| ParseError::Corrupt("THeader string length".into()))?;
    Ok(String::from_utf8_lossy(r.take(len)?).into_owned())
}

impl THeader {
    /// The payload protocol for a payload starting with `first`.
    pub(super) fn payload_protocol(&self, first: u8) -> Protocol {
        if self.compact {
            Protocol::Compact
        } else {
            Protocol::detect(first)
        }
    }

    /// Every key/value, as attributes.
    pub(super) fn attributes(&self) -> impl Iterator<Item = &(String, String)> {
        self.info.iter().chain(self.persistent.iter())
    }

    /// Sets `edits` in the info key/values: a key already present takes the new value,
    /// others are added at the end.
    pub(super) fn set(&mut self, edits: &[(String, String)]) {
        for (key, value) in edits {
            match self.info.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1.clone_from(value),
                None => self.info.push((key.clone(), value.clone())),
            }
        }
    }

    /// A whole frame (length included) with this header and `payload`; `None` when the
    /// header outgrows what the 16-bit header size can say.
    pub(super) fn write_frame(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let mut header = self.prelude.clone();
        for (kind, pairs) in [
            (INFO_KEY_VALUE, &self.info),
            (INFO_PERSISTENT_KEY_VALUE, &self.persistent),
        ] {
            if pairs.is_empty() {
                continue;
            }
            write_varint(&mut header, kind);
            write_varint(&mut header, pairs.len() as u64);
            for (k, v) in pairs {
                write_varint(&mut header, k.len() as u64);
                header.extend_from_slice(k.as_bytes());
                write_varint(&mut header, v.len() as u64);
                header.extend_from_slice(v.as_bytes());
            }
        }
        header.resize(header.len().div_ceil(4) * 4, 0);
        let words = u16::try_from(header.len() / 4).ok()?;
        let len = u32::try_from(FIXED_LEN + header.len() + payload.len()).ok()?;
        let mut out = Vec::with_capacity(4 + len as usize);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.seq_id.to_be_bytes());
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Some(out)
    }

    /// A header for a reply: the same flags, seq id and protocol, no key/values.
    pub(super) fn for_reply(flags: u16, seq_id: u32, compact: bool) -> Self {
        let mut prelude = Vec::with_capacity(2);
        write_varint(
            &mut prelude,
            if compact {
                PROTOCOL_COMPACT
            } else {
                PROTOCOL_BINARY
            },
        );
        write_varint(&mut prelude, 0);
        Self {
            flags,
            seq_id,
            compact,
            prelude,
            info: Vec::new(),
            persistent: Vec::new(),
            payload_start: 0,
        }
    }
}
