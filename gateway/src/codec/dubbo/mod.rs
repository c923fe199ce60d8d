//! Dubbo2: the 16-byte header framing and Hessian2 bodies.
//!
//! Requests are read as Dubbo's own decoder reads them (dubbo version, service path,
//! service version, method, parameter descriptor, arguments, attachments) so routing can
//! match on `interface`, `method`, `version`, `group` and any attachment. Bodies in
//! serializations other than Hessian2 are framed and forwarded but not read: they carry
//! no attributes and cannot be mutated.

mod header;
mod hessian;
pub mod peer;
mod reply;
mod request;
mod write;

#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use self::header::{HEADER_LEN, HESSIAN2, Header, HeaderError};
use self::hessian::Reader;
pub use self::reply::status;
use super::{
    Codec, CodecError, DEFAULT_MAX_MESSAGE, Edit, Frame, MessageType, Metadata, ResponseStatus,
};
use crate::policy::reject::{Reject, RejectKind};

/// The codec's name in errors, metrics and logs.
const NAME: &str = "dubbo";

/// Response body types (Dubbo's `DubboCodec`) that carry an exception instead of a value:
/// plain, and with attachments.
const RESPONSE_WITH_EXCEPTION: [i32; 2] = [0, 3];

/// The Dubbo2 codec.
#[derive(Debug, Clone)]
pub struct DubboCodec {
    /// Largest message accepted, header included.
    max_message: usize,
}

impl DubboCodec {
    /// A codec refusing messages over `max_message` bytes, header included.
    pub fn new(max_message: usize) -> Self {
        Self { max_message }
    }
}

impl Default for DubboCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE)
    }
}

fn corrupt(reason: impl ToString) -> CodecError {
    CodecError::Corrupt {
        protocol: NAME,
        reason: reason.to_string(),
    }
}

fn bad_magic(magic: [u8; 2]) -> CodecError {
    CodecError::NotProtocol {
        protocol: NAME,
        reason: format!("magic {:02x}{:02x}, expected dabb", magic[0], magic[1]),
    }
}

/// Reads what routing needs from a whole message.
fn metadata(header: &Header, body: &[u8]) -> Result<Metadata, CodecError> {
    let mut meta = Metadata {
        message_type: MessageType::Request,
        request_id: header.request_id,
        response_status: ResponseStatus::Ok,
        attributes: Vec::new(),
        dialect: u32::from(header.serialization()),
    };
    let hessian = header.serialization() == HESSIAN2;
    if !header.is_request() {
        meta.message_type = if header.is_event() {
            MessageType::HeartbeatResponse
        } else {
            MessageType::Response
        };
        let exception = header.status == status::OK
            && hessian
            && Reader::new(body)
                .read_int()
                .is_ok_and(|t| RESPONSE_WITH_EXCEPTION.contains(&t));
        if header.status != status::OK || exception {
            meta.response_status = ResponseStatus::Error;
        }
        return Ok(meta);
    }
    // Every request event (a heartbeat's null body, or the "R" read-only notice) is
    // answered by the gateway, never forwarded.
    if header.is_event() {
        meta.message_type = MessageType::Heartbeat;
        return Ok(meta);
    }
    if !header.is_two_way() {
        meta.message_type = MessageType::Oneway;
    }
    if !hessian {
        return Ok(meta);
    }
    let parsed = request::parse(body).map_err(corrupt)?;
    let attachment = |name: &str| {
        parsed
            .attachments
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // The service path names the service, as in Dubbo's own dispatch; the `interface`
    // attachment stands in when a caller leaves the path empty.
    let interface = match parsed.path.as_str() {
        "" => attachment("interface").unwrap_or_default(),
        path => path.to_owned(),
    };
    let version = match parsed.version.as_str() {
        "" => attachment("version"),
        v => Some(v.to_owned()),
    };
    let attrs = &mut meta.attributes;
    attrs.push(("interface".to_owned(), interface));
    attrs.push(("method".to_owned(), parsed.method.clone()));
    if let Some(version) = version {
        attrs.push(("version".to_owned(), version));
    }
    if let Some(group) = attachment("group") {
        attrs.push(("group".to_owned(), group));
    }
    attrs.extend(parsed.attachments);
    Ok(meta)
}

impl Codec for DubboCodec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let header = match Header::parse(buf) {
            Ok(header) => header,
            Err(HeaderError::Short) => return Ok(None),
            Err(HeaderError::BadMagic(magic)) => return Err(bad_magic(magic)),
        };
        let len = HEADER_LEN.saturating_add(header.body_len);
        if len > self.max_message {
            return Err(CodecError::TooLarge {
                protocol: NAME,
                len,
                max: self.max_message,
            });
        }
        if buf.len() < len {
            buf.reserve(len - buf.len());
            return Ok(None);
        }
        let body = buf.get(HEADER_LEN..len).unwrap_or_default();
        let metadata = metadata(&header, body)?;
        let bytes = buf.split_to(len).freeze();
        Ok(Some(Frame { metadata, bytes }))
    }

    fn encode(&self, frame: &Frame, edit: &Edit, out: &mut BytesMut) -> Result<(), CodecError> {
        if edit.is_empty() {
            out.extend_from_slice(&frame.bytes);
            return Ok(());
        }
        let mut header = match Header::parse(&frame.bytes) {
            Ok(header) => header,
            Err(HeaderError::Short) => return Err(corrupt("frame shorter than a header")),
            Err(HeaderError::BadMagic(magic)) => return Err(bad_magic(magic)),
        };
        let body = frame
            .bytes
            .get(HEADER_LEN..HEADER_LEN.saturating_add(header.body_len))
            .ok_or_else(|| corrupt("frame shorter than its body length"))?;
        if let Some(id) = edit.request_id {
            header.request_id = id;
        }
        if edit.set.is_empty() || !self.can_mutate(&frame.metadata) {
            header.write(out);
            out.extend_from_slice(body);
            return Ok(());
        }
        let parsed = request::parse(body).map_err(corrupt)?;
        let mut new_body = BytesMut::with_capacity(body.len() + 64);
        request::rewrite(body, &parsed, &edit.set, &mut new_body);
        if u32::try_from(new_body.len()).is_err() {
            return Err(corrupt("rewritten body longer than a Dubbo length can say"));
        }
        header.body_len = new_body.len();
        header.write(out);
        out.extend_from_slice(&new_body);
        Ok(())
    }

    fn http_status(&self, response: &Frame) -> u16 {
        match response.bytes.get(3) {
            Some(&status) => reply::http_status(status, response.metadata.response_status),
            None => 500,
        }
    }

    /// The status byte (20 also when the body carries the service's exception).
    fn response_code(&self, response: &Frame) -> u16 {
        response
            .bytes
            .get(3)
            .map_or(u16::from(status::BAD_RESPONSE), |&s| u16::from(s))
    }

    fn reject_code(&self, kind: RejectKind) -> u16 {
        u16::from(reply::status_of(kind))
    }

    fn delivered_code(&self) -> u16 {
        u16::from(status::OK)
    }

    fn can_mutate(&self, metadata: &Metadata) -> bool {
        metadata.dialect == u32::from(HESSIAN2)
            && matches!(
                metadata.message_type,
                MessageType::Request | MessageType::Oneway
            )
    }

    fn local_reply(&self, request: &Metadata, reject: &Reject) -> Bytes {
        reply::error_response(
            request.request_id,
            reply::status_of(reject.kind),
            &reject.message,
        )
    }

    fn heartbeat_reply(&self, request: &Metadata) -> Option<Bytes> {
        Some(reply::heartbeat_response(request.request_id))
    }

    fn error_reply(&self, buf: &[u8], error: &CodecError) -> Option<Bytes> {
        let header = Header::parse(buf).ok()?;
        // Only a request can be answered, and only when it expects an answer.
        if !header.is_request() || !header.is_two_way() {
            return None;
        }
        Some(reply::error_response(
            header.request_id,
            status::BAD_REQUEST,
            &error.to_string(),
        ))
    }
}
