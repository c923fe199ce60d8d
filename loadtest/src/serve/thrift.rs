//! The Thrift echo server: a REPLY whose success (field 0) is `"{name}: {s}"`, `s` being
//! the call's field 1 when it is a string; THeader key/values travel back; one-way calls
//! are logged only.

use corridor_gateway::codec::{
    CodecError, Frame, MessageType,
    thrift::peer::{self, Reply},
};

use super::{INJECTED, echo_value, meta::Incoming, sorted_pairs};

/// The args struct field whose string is echoed.
const ARG_FIELD: i16 = 1;

pub(super) fn read(frame: &Frame, name: Option<&str>, fail: bool) -> Result<Incoming, CodecError> {
    let meta = &frame.metadata;
    let kind = match meta.message_type {
        MessageType::Request => "call",
        MessageType::Oneway => "oneway",
        // Replies and exceptions: a server has nothing to do with them.
        _ => return Ok(Incoming::default()),
    };
    let headers = peer::headers(meta);
    let log = format!(
        "call thrift seqid={} method={} type={kind} headers={}",
        meta.request_id as u32 as i32,
        meta.get("method").unwrap_or_default(),
        sorted_pairs(headers),
    );
    let answer = if meta.message_type == MessageType::Request {
        let reply_value;
        let reply = if fail {
            Reply::Exception {
                kind: peer::INTERNAL_ERROR,
                message: INJECTED,
            }
        } else {
            let arg = peer::string_field(frame, ARG_FIELD)?.unwrap_or_default();
            reply_value = echo_value(name, &arg);
            Reply::Success(&reply_value)
        };
        Some(peer::reply(meta, &reply, headers)?)
    } else {
        None
    };
    Ok(Incoming {
        log: Some(log),
        answer,
        delayed: true,
    })
}
