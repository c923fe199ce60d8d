//! The 16-byte Dubbo2 header: magic, flags, status, request id, body length.

use bytes::{BufMut, BytesMut};

/// Header size; the body follows.
pub(crate) const HEADER_LEN: usize = 16;

/// The two bytes every Dubbo2 message starts with.
pub(crate) const MAGIC: [u8; 2] = [0xda, 0xbb];

/// Set on requests, clear on responses.
pub(crate) const FLAG_REQUEST: u8 = 0x80;
/// Set on requests that expect a response.
pub(crate) const FLAG_TWO_WAY: u8 = 0x40;
/// Set on events (heartbeats, read-only notices).
pub(crate) const FLAG_EVENT: u8 = 0x20;
/// The serialization id's bits of the flag byte.
pub(crate) const SERIALIZATION_MASK: u8 = 0x1f;

/// Serialization id of Hessian2, the only body encoding the codec reads.
pub(crate) const HESSIAN2: u8 = 2;

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Request/two-way/event bits and the serialization id.
    pub(crate) flags: u8,
    /// Response status (meaningless on requests).
    pub(crate) status: u8,
    /// Pairs a response with its request.
    pub(crate) request_id: u64,
    /// Body bytes after the header.
    pub(crate) body_len: usize,
}

/// Why a header cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer than 16 bytes so far.
    Short,
    /// The first two bytes are not 0xdabb.
    BadMagic([u8; 2]),
}

impl Header {
    /// Parses the header at the front of `buf`.
    pub(crate) fn parse(buf: &[u8]) -> Result<Self, HeaderError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            // Say "bad magic" as early as the magic is visible.
            return match buf {
                [a, ..] if *a != MAGIC[0] => Err(HeaderError::BadMagic([*a, 0])),
                [a, b, ..] if [*a, *b] != MAGIC => Err(HeaderError::BadMagic([*a, *b])),
                _ => Err(HeaderError::Short),
            };
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&head[4..12]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[12..16]);
        if head[..2] != MAGIC {
            return Err(HeaderError::BadMagic([head[0], head[1]]));
        }
        Ok(Self {
            flags: head[2],
            status: head[3],
            request_id: u64::from_be_bytes(id),
            body_len: u32::from_be_bytes(len) as usize,
        })
    }

    /// Whether this is a request (else a response).
    pub(crate) fn is_request(&self) -> bool {
        self.flags & FLAG_REQUEST != 0
    }

    /// Whether this is an event.
    pub(crate) fn is_event(&self) -> bool {
        self.flags & FLAG_EVENT != 0
    }

    /// Whether a request expects an answer.
    pub(crate) fn is_two_way(&self) -> bool {
        self.flags & FLAG_TWO_WAY != 0
    }

    /// The body's serialization id.
    pub(crate) fn serialization(&self) -> u8 {
        self.flags & SERIALIZATION_MASK
    }

    /// Writes the header; `body_len` must fit in 32 bits (callers check).
    pub(crate) fn write(&self, out: &mut BytesMut) {
        out.put_slice(&MAGIC);
        out.put_u8(self.flags);
        out.put_u8(self.status);
        out.put_u64(self.request_id);
        out.put_u32(self.body_len as u32);
    }
}
