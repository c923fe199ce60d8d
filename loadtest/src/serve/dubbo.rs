//! The Dubbo echo provider: `"{name}: {arg0}"` for two-way calls, heartbeats answered,
//! one-way calls logged only.

use corridor_gateway::codec::{
    Codec, CodecError, Frame, MessageType,
    dubbo::{DubboCodec, peer, status},
};

use super::{INJECTED, echo_value, meta::Incoming, sorted_pairs};

/// Serialization id of Hessian2 (`Metadata::dialect` of Dubbo frames): the only body
/// the provider reads; others get the empty argument.
const HESSIAN2: u32 = 2;

pub(super) fn read(frame: &Frame, name: Option<&str>, fail: bool) -> Result<Incoming, CodecError> {
    let meta = &frame.metadata;
    let two_way = match meta.message_type {
        MessageType::Request => true,
        MessageType::Oneway => false,
        MessageType::Heartbeat => {
            return Ok(Incoming {
                answer: DubboCodec::default().heartbeat_reply(meta),
                ..Incoming::default()
            });
        }
        // Answers to requests the provider never sends: nothing to do.
        MessageType::Response | MessageType::HeartbeatResponse => return Ok(Incoming::default()),
    };
    let invocation = if meta.dialect == HESSIAN2 {
        peer::read_invocation(frame)?
    } else {
        peer::Invocation::default()
    };
    let log = format!(
        "call dubbo id={} interface={} method={} attachments={}",
        meta.request_id,
        meta.get("interface").unwrap_or_default(),
        meta.get("method").unwrap_or_default(),
        sorted_pairs(&invocation.attachments),
    );
    let answer = two_way.then(|| {
        if fail {
            peer::error_response(meta.request_id, status::SERVICE_ERROR, INJECTED)
        } else {
            let arg = invocation.first_string_arg.as_deref().unwrap_or_default();
            let attachments = peer::supports_response_attachments(&invocation.dubbo_version);
            peer::value_response(meta.request_id, &echo_value(name, arg), attachments)
        }
    });
    Ok(Incoming {
        log: Some(log),
        answer,
        delayed: true,
    })
}
