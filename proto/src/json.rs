//! Renders protobuf messages (Envoy's and ours) as proto3 JSON, the form Envoy's own
//! `/config_dump` uses, from the descriptor set written by `build.rs`.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::google::protobuf::Any;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The descriptor set compiled into the binary is unreadable (a build problem).
    #[error("descriptor set is invalid: {0}")]
    Descriptors(String),
    /// The type URL names a message the descriptor set does not know.
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The bytes are not a valid encoding of the named message.
    #[error("cannot decode {type_url}: {reason}")]
    Decode {
        /// The message type.
        type_url: String,
        /// The decoder's explanation.
        reason: String,
    },
}

fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// Renders an `Any` as JSON with an `@type` field, expanding nested `Any`s (filters,
/// protocol options) the way Envoy does.
pub fn any_to_json(any: &Any) -> Result<serde_json::Value, JsonError> {
    let pool = pool()?;
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = pool
        .get_message_by_name(name)
        .ok_or_else(|| JsonError::UnknownType(any.type_url.clone()))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice()).map_err(|e| JsonError::Decode {
        type_url: any.type_url.clone(),
        reason: e.to_string(),
    })?;
    let opts = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    let mut value = msg
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .map_err(|e| JsonError::Decode {
            type_url: any.type_url.clone(),
            reason: e.to_string(),
        })?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("@type".into(), serde_json::Value::String(any.type_url.clone()));
    }
    Ok(value)
}

/// Renders any known prost message as JSON (with its `@type`).
pub fn message_to_json<M: prost::Message + prost::Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    let any = Any { type_url: M::type_url(), value: msg.encode_to_vec() };
    any_to_json(&any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::config::listener::v3::Listener;

    #[test]
    fn renders_envoy_listener_with_proto_field_names() {
        let l = Listener { name: "reviews.default.svc.cluster.local:9080".into(), ..Default::default() };
        let json = message_to_json(&l).unwrap();
        assert_eq!(json["name"], "reviews.default.svc.cluster.local:9080");
        assert_eq!(json["@type"], "type.googleapis.com/envoy.config.listener.v3.Listener");
    }

    #[test]
    fn unknown_type_is_an_error_not_a_panic() {
        let any = Any { type_url: "type.googleapis.com/no.such.Message".into(), value: vec![1, 2, 3] };
        assert!(matches!(any_to_json(&any), Err(JsonError::UnknownType(_))));
    }
}
