//! What Dubbo peers write and read beyond the proxy's needs: a consumer's requests and
//! a provider's value responses. corridor-load's echo provider and load client use these,
//! so test peers and the gateway share one reading of the bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::header::{FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, HESSIAN2, Header};
use super::hessian::{Reader, is_string_start};
pub use super::reply::error_response;
use super::reply::{response, status};
use super::request::{parse, read_call_head};
use super::write::{NULL, write_string};
use super::{NAME, corrupt};
use crate::codec::{CodecError, Frame};

/// Response body types (Dubbo's `DubboCodec`): a value, and a value followed by the
/// provider's attachments (Dubbo 2.0.2 and later).
const RESPONSE_VALUE: i32 = 1;
const RESPONSE_VALUE_WITH_ATTACHMENTS: i32 = 4;
/// A null value, plain and with attachments.
const RESPONSE_NULL_VALUE: [i32; 2] = [2, 5];
/// An exception, plain and with attachments.
const RESPONSE_WITH_EXCEPTION: [i32; 2] = [0, 3];

/// The Dubbo versions whose callers read response attachments: from 2.0.2 up to the
/// highest 2.0.x protocol version (Dubbo's `Version.isSupportResponseAttachment`).
/// Versions are compared as Dubbo's integer form (2.0.2 is 2000200).
const RESPONSE_ATTACHMENTS_SINCE: u64 = 2_00_02_00;
const RESPONSE_ATTACHMENTS_UNTIL: u64 = 2_00_99_00;

/// One call as a consumer sends it: every argument a `java.lang.String`.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    /// The Dubbo protocol version to announce (`2.0.2` for current clients).
    pub dubbo_version: &'a str,
    /// The service path, usually the interface name.
    pub path: &'a str,
    /// The service version (may be empty: a `version` attachment stands in).
    pub version: &'a str,
    /// The method.
    pub method: &'a str,
    /// The arguments.
    pub args: &'a [&'a str],
    /// The attachments, in the order given (`group`, `version`, anything else).
    pub attachments: &'a [(String, String)],
}

/// A request for `call` with `request_id`; `two_way` asks for a response. Errors only
/// when the body outgrows what a Dubbo length can say.
pub fn request(request_id: u64, two_way: bool, call: &Call<'_>) -> Result<Bytes, CodecError> {
    let mut body = BytesMut::with_capacity(128);
    for s in [call.dubbo_version, call.path, call.version, call.method] {
        write_string(&mut body, s);
    }
    write_string(&mut body, &"Ljava/lang/String;".repeat(call.args.len()));
    for arg in call.args {
        write_string(&mut body, arg);
    }
    body.put_u8(b'H');
    for (k, v) in call.attachments {
        write_string(&mut body, k);
        write_string(&mut body, v);
    }
    body.put_u8(b'Z');
    if u32::try_from(body.len()).is_err() {
        return Err(corrupt("request body longer than a Dubbo length can say"));
    }
    let mut flags = FLAG_REQUEST | HESSIAN2;
    if two_way {
        flags |= FLAG_TWO_WAY;
    }
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    Header {
        flags,
        status: 0,
        request_id,
        body_len: body.len(),
    }
    .write(&mut out);
    out.extend_from_slice(&body);
    Ok(out.freeze())
}

/// What a provider needs from a request to answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The caller's Dubbo protocol version; see [`supports_response_attachments`].
    pub dubbo_version: String,
    /// The first argument, when there is one and it is a string.
    pub first_string_arg: Option<String>,
    /// The attachments as sent (those whose key is a string and value reads as text),
    /// in wire order. The codec's metadata mixes them with the call's names.
    pub attachments: Vec<(String, String)>,
}

/// Reads the invocation of a Hessian2 request frame (as decoded by `DubboCodec`).
pub fn read_invocation(frame: &Frame) -> Result<Invocation, CodecError> {
    let body = body_of(frame)?;
    let head = read_call_head(body).map_err(corrupt)?;
    let parsed = parse(body).map_err(corrupt)?;
    Ok(Invocation {
        dubbo_version: head.dubbo_version,
        first_string_arg: head.first_string_arg,
        attachments: parsed.attachments,
    })
}

/// Whether a caller announcing `dubbo_version` expects response bodies with
/// attachments, as a Dubbo provider decides it.
pub fn supports_response_attachments(dubbo_version: &str) -> bool {
    if dubbo_version.is_empty() {
        return false;
    }
    let parts: Vec<&str> = dubbo_version.split('.').collect();
    // Each part counts by its leading digits, two decimal places per position.
    let mut v: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or(0);
        let shift = 100u64.saturating_pow((parts.len() - i - 1) as u32);
        v = v.saturating_add(n.saturating_mul(shift));
    }
    // Three-part versions are scaled to the four-part form (2.0.2 is 2.0.2.0).
    if parts.len() == 3 {
        v = v.saturating_mul(100);
    }
    (RESPONSE_ATTACHMENTS_SINCE..=RESPONSE_ATTACHMENTS_UNTIL).contains(&v)
}

/// An OK response carrying the string `value` (Hessian2); with `attachments`, in the
/// body form with an (empty) attachments map, which callers of Dubbo 2.0.2 and later
/// expect.
pub fn value_response(request_id: u64, value: &str, attachments: bool) -> Bytes {
    let mut body = BytesMut::with_capacity(8 + value.len());
    let kind = if attachments {
        RESPONSE_VALUE_WITH_ATTACHMENTS
    } else {
        RESPONSE_VALUE
    };
    write_small_int(&mut body, kind);
    write_string(&mut body, value);
    if attachments {
        body.put_slice(b"HZ");
    }
    response(request_id, HESSIAN2, status::OK, &body)
}

/// Writes an int in Hessian2's one-byte form (-16 to 47: every body type fits).
fn write_small_int(out: &mut BytesMut, v: i32) {
    debug_assert!((-16..=47).contains(&v));
    out.put_u8((0x90 + v) as u8);
}

/// A response as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The header's status ([`status::OK`] when the call ran).
    pub status: u8,
    /// The string value of an OK response, or the message of an error status; `None`
    /// for a null or non-string value.
    pub value: Option<String>,
    /// Whether an OK response carries an exception instead of a value.
    pub exception: bool,
}

impl Answer {
    /// Whether the call succeeded: status OK and a value, not an exception.
    pub fn is_ok(&self) -> bool {
        self.status == status::OK && !self.exception
    }
}

/// Reads a response frame (as decoded by `DubboCodec`).
pub fn read_answer(frame: &Frame) -> Result<Answer, CodecError> {
    let status = frame.bytes.get(3).copied().unwrap_or_default();
    let body = body_of(frame)?;
    let mut r = Reader::new(body);
    let string = |r: &mut Reader<'_>| -> Result<Option<String>, CodecError> {
        match r.peek() {
            Ok(b) if is_string_start(b) || b == NULL => r.read_string().map_err(corrupt),
            _ => Ok(None),
        }
    };
    if status != status::OK {
        return Ok(Answer {
            status,
            value: string(&mut r)?,
            exception: false,
        });
    }
    let kind = r.read_int().map_err(corrupt)?;
    let (value, exception) = match kind {
        RESPONSE_VALUE | RESPONSE_VALUE_WITH_ATTACHMENTS => (string(&mut r)?, false),
        k if RESPONSE_NULL_VALUE.contains(&k) => (None, false),
        k if RESPONSE_WITH_EXCEPTION.contains(&k) => (None, true),
        k => {
            return Err(CodecError::NotProtocol {
                protocol: NAME,
                reason: format!("unknown response body type {k}"),
            });
        }
    };
    Ok(Answer {
        status,
        value,
        exception,
    })
}

fn body_of(frame: &Frame) -> Result<&[u8], CodecError> {
    frame
        .bytes
        .get(HEADER_LEN..)
        .ok_or_else(|| corrupt("frame shorter than a header"))
}
