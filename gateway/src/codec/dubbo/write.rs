//! The little Hessian2 the gateway writes: strings, null, and maps of strings.

use bytes::{BufMut, BytesMut};

/// Largest chunk of a chunked string, in UTF-16 units (Hessian2's 16-bit chunk length;
/// Java writes chunks of this size).
const CHUNK: usize = 0x8000;

/// Longest string written in the one-byte compact form.
const COMPACT_MAX: usize = 31;

/// Longest string written in the two-byte medium form.
const MEDIUM_MAX: usize = 1023;

/// Hessian2 null.
pub(crate) const NULL: u8 = b'N';

/// Writes `s` as a Hessian2 string. Lengths count UTF-16 units (Java's chars), and each
/// unit is written as the UTF-8 of that unit, so a supplementary character becomes two
/// 3-byte surrogate sequences: the form Java's Hessian2 reader accepts (it refuses 4-byte
/// UTF-8).
pub(crate) fn write_string(out: &mut BytesMut, s: &str) {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut rest = units.as_slice();
    while rest.len() > CHUNK {
        let mut len = CHUNK;
        // Never split a surrogate pair across chunks.
        if (0xd800..0xdc00).contains(&rest[len - 1]) {
            len -= 1;
        }
        out.put_u8(b'R');
        out.put_u16(len as u16);
        put_units(out, &rest[..len]);
        rest = &rest[len..];
    }
    let len = rest.len();
    if len <= COMPACT_MAX {
        out.put_u8(len as u8);
    } else if len <= MEDIUM_MAX {
        out.put_u8(0x30 + (len >> 8) as u8);
        out.put_u8(len as u8);
    } else {
        out.put_u8(b'S');
        out.put_u16(len as u16);
    }
    put_units(out, rest);
}

fn put_units(out: &mut BytesMut, units: &[u16]) {
    for &u in units {
        let u = u32::from(u);
        if u < 0x80 {
            out.put_u8(u as u8);
        } else if u < 0x800 {
            out.put_u8(0xc0 | (u >> 6) as u8);
            out.put_u8(0x80 | (u & 0x3f) as u8);
        } else {
            out.put_u8(0xe0 | (u >> 12) as u8);
            out.put_u8(0x80 | ((u >> 6) & 0x3f) as u8);
            out.put_u8(0x80 | (u & 0x3f) as u8);
        }
    }
}
