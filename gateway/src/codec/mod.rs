//! Codecs of the non-HTTP L7 protocols (Dubbo, Thrift, ...), behind one trait.
//!
//! A codec knows a protocol's bytes and nothing else: it cuts a stream into messages and
//! reads each one's [`Metadata`] (type, request id, routing attributes), writes a message
//! back with an [`Edit`] applied (a new request id, attributes set), and writes local
//! replies in the protocol's own error form. Routing, load balancing, timeouts, retries,
//! metrics and the access log live in the one generic proxy path that drives every codec,
//! as in Aeraki's MetaProtocol proxy: a new protocol is one codec.

use bytes::{Bytes, BytesMut};

use crate::policy::reject::{Reject, RejectKind};

pub mod dubbo;
pub mod thrift;

/// Largest message accepted by default (issue: 8 MiB), header and body together.
pub const DEFAULT_MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// What kind of message a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A call that expects a response.
    Request,
    /// A call that expects none (Thrift ONEWAY, Dubbo one-way): forwarded, never answered.
    Oneway,
    /// A response to a request.
    Response,
    /// A keep-alive the gateway answers itself (Dubbo heartbeat events).
    Heartbeat,
    /// A heartbeat's answer.
    HeartbeatResponse,
}

/// Whether a response reports success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseStatus {
    /// The call succeeded (Dubbo status 20, Thrift REPLY).
    #[default]
    Ok,
    /// The call failed (Dubbo status other than 20, Thrift EXCEPTION, or an exception
    /// payload).
    Error,
}

/// What the proxy needs to know about a message: enough to route it, match its response,
/// and answer in the caller's own dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Request, response, one-way, heartbeat.
    pub message_type: MessageType,
    /// The id that pairs a response with its request (Dubbo request id, Thrift seqid
    /// widened).
    pub request_id: u64,
    /// For responses.
    pub response_status: ResponseStatus,
    /// Routing attributes, in the order the codec found them: `interface`, `method`,
    /// `version`, `group` and every attachment for Dubbo; `method` and THeader key/values
    /// for Thrift. Names are the ones MetaRouter matches on.
    pub attributes: Vec<(String, String)>,
    /// How this caller speaks, so replies and edits use the same framing and encoding
    /// (Dubbo serialization id; Thrift transport and protocol). Meaningful to its codec
    /// only.
    pub dialect: u32,
}

impl Metadata {
    /// The value of attribute `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One whole message as it came off the wire, with what was read from it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// What the message is.
    pub metadata: Metadata,
    /// Every byte of the message, framing included, exactly as received.
    pub bytes: Bytes,
}

/// Changes to apply when writing a frame out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edit {
    /// Replace the request id (upstream connections are shared: ids are rewritten on the
    /// way up and mapped back on the way down).
    pub request_id: Option<u64>,
    /// Attributes to set (replacing a value under the same name, else added): Dubbo
    /// attachments, Thrift THeader headers. A codec that has nowhere to put them for this
    /// caller ignores them and says so through [`Codec::can_mutate`].
    pub set: Vec<(String, String)>,
}

impl Edit {
    /// Whether writing with this edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self.request_id.is_none() && self.set.is_empty()
    }
}

/// Why a stream cannot be decoded. Every variant ends the connection: after bad bytes
/// there is no next message boundary to trust.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not this protocol (bad magic, unknown version or type).
    #[error("not a {protocol} message: {reason}")]
    NotProtocol {
        /// The codec's name.
        protocol: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A length beyond the configured maximum.
    #[error("{protocol} message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The codec's name.
        protocol: &'static str,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The framing is fine but the content is not (truncated or corrupt body).
    #[error("corrupt {protocol} message: {reason}")]
    Corrupt {
        /// The codec's name.
        protocol: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// A protocol's bytes. Implementations are stateless (per-connection state, such as a
/// detected dialect, travels in [`Metadata::dialect`]) and shared by every connection.
pub trait Codec: Send + Sync + std::fmt::Debug + 'static {
    /// The protocol's name (`dubbo`, `thrift`), as in metrics and logs.
    fn name(&self) -> &'static str;

    /// Takes one whole message off the front of `buf`: `Ok(None)` while more bytes are
    /// needed (nothing consumed), `Err` when the stream cannot be read. With `Err`, the
    /// proxy answers [`Codec::error_reply`] when it returns bytes, then closes.
    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError>;

    /// Writes `frame` with `edit` applied to `out`. With an empty edit this is the
    /// frame's bytes unchanged.
    fn encode(&self, frame: &Frame, edit: &Edit, out: &mut BytesMut) -> Result<(), CodecError>;

    /// Whether attribute edits reach the wire for this caller (Thrift: only over THeader).
    fn can_mutate(&self, metadata: &Metadata) -> bool;

    /// A response to `request` refusing it for `reject`, in the caller's dialect (Dubbo
    /// response with the status the codec picks for the kind; Thrift
    /// `TApplicationException` of the kind's type), carrying the refusal's message.
    fn local_reply(&self, request: &Metadata, reject: &Reject) -> Bytes;

    /// The answer to a heartbeat, when the protocol has one.
    fn heartbeat_reply(&self, request: &Metadata) -> Option<Bytes>;

    /// What to send before closing a stream that failed to decode, when the protocol can
    /// say so (a Dubbo bad-request response when the header was readable).
    fn error_reply(&self, buf: &[u8], error: &CodecError) -> Option<Bytes>;

    /// A response's outcome in HTTP's terms, the one vocabulary retry conditions (`5xx`,
    /// `gateway-error`, `retriable-status-codes`) and Istio's `response_code` use for every
    /// protocol. By default a success is 200 and an error 500; a codec whose protocol has
    /// richer statuses maps them (Dubbo: timeouts 504, no provider 503, ...).
    fn http_status(&self, response: &Frame) -> u16 {
        match response.metadata.response_status {
            ResponseStatus::Ok => 200,
            ResponseStatus::Error => 500,
        }
    }

    /// A response's code in the protocol's own terms: Istio's `response_code` label
    /// (Dubbo: the status byte; Thrift: 0 for a reply, else the exception type). By
    /// default the HTTP equivalent.
    fn response_code(&self, response: &Frame) -> u16 {
        self.http_status(response)
    }

    /// The code of the gateway's own reply refusing a call for `kind`, in the same terms
    /// as [`Codec::response_code`] (what [`Codec::local_reply`] writes).
    fn reject_code(&self, kind: RejectKind) -> u16 {
        kind.outline().http
    }

    /// The code of a one-way call written upstream (nothing comes back to read).
    fn delivered_code(&self) -> u16 {
        200
    }

    /// Whether a caller expects responses in the order of its requests on a connection
    /// (Thrift clients that pipeline do; Dubbo matches by request id, so answers go out
    /// as they come).
    fn responses_in_order(&self) -> bool {
        false
    }
}
