//! A Hessian2 request body: the call's names, the arguments (skipped), the attachments.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use super::hessian::{HessianError, Reader, is_string_start};
use super::write::write_string;

/// The parts of a request body the gateway reads or rewrites.
#[derive(Debug, Default)]
pub(crate) struct RequestBody {
    /// The service path (usually the interface name).
    pub(crate) path: String,
    /// The service version.
    pub(crate) version: String,
    /// The method called.
    pub(crate) method: String,
    /// Attachments whose key is a string and whose value reads as text, in wire order.
    pub(crate) attachments: Vec<(String, String)>,
    /// Where the attachments are, if the body has them.
    pub(crate) map: Option<AttachmentMap>,
    /// The bytes a rewritten attachments map replaces: the map, a null, or nothing at
    /// the end of the arguments.
    pub(crate) span: Range<usize>,
}

/// The byte layout of the attachments map, for rewriting it.
#[derive(Debug)]
pub(crate) struct AttachmentMap {
    /// From the map's tag to its first entry (`H`, or `M` and its type).
    pub(crate) head: Range<usize>,
    /// Each entry: its key when a string, and the byte ranges of key and value.
    pub(crate) entries: Vec<(Option<String>, Range<usize>, Range<usize>)>,
}

/// Counts the parameters in a JVM method descriptor such as `Ljava/lang/String;[I`.
fn count_params(desc: &str) -> Result<usize, HessianError> {
    let bad = HessianError::Invalid {
        at: 0,
        what: "a parameter type descriptor",
    };
    let mut bytes = desc.bytes();
    let mut count = 0;
    while let Some(mut b) = bytes.next() {
        while b == b'[' {
            b = bytes.next().ok_or(bad.clone())?;
        }
        match b {
            b'Z' | b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' => {}
            b'L' => {
                if !bytes.by_ref().any(|c| c == b';') {
                    return Err(bad);
                }
            }
            _ => return Err(bad),
        }
        count += 1;
    }
    Ok(count)
}

/// Reads a request body as Dubbo's `DecodeableRpcInvocation` does.
pub(crate) fn parse(body: &[u8]) -> Result<RequestBody, HessianError> {
    let mut r = Reader::new(body);
    let _dubbo_version = r.read_string()?;
    let path = r.read_string()?.unwrap_or_default();
    let version = r.read_string()?.unwrap_or_default();
    let method = r.read_string()?.unwrap_or_default();
    let desc = r.read_string()?.unwrap_or_default();
    for _ in 0..count_params(&desc)? {
        r.skip_value()?;
    }
    let args_end = r.pos();
    let mut out = RequestBody {
        path,
        version,
        method,
        span: args_end..args_end,
        ..Default::default()
    };
    if r.at_end() {
        return Ok(out);
    }
    let start = r.pos();
    match r.peek()? {
        b'N' => {
            r.skip_value()?;
            out.span = start..r.pos();
            return Ok(out);
        }
        b'H' | b'M' => {}
        _ => {
            return Err(HessianError::Invalid {
                at: start,
                what: "an attachments map",
            });
        }
    }
    r.skip_map_head()?;
    let head_end = r.pos();
    let mut entries = Vec::new();
    while r.peek()? != b'Z' {
        let key_start = r.pos();
        let key = if is_string_start(r.peek()?) {
            r.read_string()?
        } else {
            r.skip_value()?;
            None
        };
        let key_range = key_start..r.pos();
        let value_start = r.pos();
        let value = r.read_text()?;
        let value_range = value_start..r.pos();
        if let (Some(k), Some(v)) = (&key, value) {
            out.attachments.push((k.clone(), v));
        }
        entries.push((key, key_range, value_range));
    }
    r.skip_to(r.pos() + 1);
    out.span = start..r.pos();
    out.map = Some(AttachmentMap {
        head: start..head_end,
        entries,
    });
    Ok(out)
}

/// Writes `body` again with the attachments in `set` replaced or added. Existing entries
/// keep their bytes; a replaced value becomes a string in place (a non-string value that
/// held a referenced object would shift later references: attachments are strings in
/// practice). A body without attachments gets a map appended.
pub(crate) fn rewrite(
    body: &[u8],
    parsed: &RequestBody,
    set: &[(String, String)],
    out: &mut BytesMut,
) {
    // Later edits of the same name win, as if applied one after another.
    let mut pending: Vec<(&str, &str)> = Vec::new();
    for (k, v) in set {
        match pending.iter_mut().find(|(pk, _)| *pk == k) {
            Some(slot) => slot.1 = v,
            None => pending.push((k, v)),
        }
    }
    out.put_slice(body.get(..parsed.span.start).unwrap_or_default());
    match &parsed.map {
        Some(map) => {
            out.put_slice(body.get(map.head.clone()).unwrap_or_default());
            for (key, key_range, value_range) in &map.entries {
                out.put_slice(body.get(key_range.clone()).unwrap_or_default());
                let replaced = key.as_deref().and_then(|k| {
                    let i = pending.iter().position(|(pk, _)| *pk == k)?;
                    Some(pending.remove(i).1)
                });
                match replaced {
                    Some(v) => write_string(out, v),
                    None => out.put_slice(body.get(value_range.clone()).unwrap_or_default()),
                }
            }
        }
        None => out.put_u8(b'H'),
    }
    for (k, v) in pending {
        write_string(out, k);
        write_string(out, v);
    }
    out.put_u8(b'Z');
    out.put_slice(body.get(parsed.span.end..).unwrap_or_default());
}

/// What a provider reads to answer a call: the Dubbo version the caller speaks (it picks
/// the response body form) and the first argument when it is a string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CallHead {
    /// The caller's Dubbo protocol version (`2.0.2` from current clients).
    pub(crate) dubbo_version: String,
    /// The first argument, when the call has one and it is a string.
    pub(crate) first_string_arg: Option<String>,
}

/// Reads a request body up to its first argument.
pub(crate) fn read_call_head(body: &[u8]) -> Result<CallHead, HessianError> {
    let mut r = Reader::new(body);
    let dubbo_version = r.read_string()?.unwrap_or_default();
    // Service path, service version, method.
    for _ in 0..3 {
        r.read_string()?;
    }
    let desc = r.read_string()?.unwrap_or_default();
    let first_string_arg = if count_params(&desc)? > 0 && is_string_start(r.peek()?) {
        r.read_string()?
    } else {
        None
    };
    Ok(CallHead {
        dubbo_version,
        first_string_arg,
    })
}
