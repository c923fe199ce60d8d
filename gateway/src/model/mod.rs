//! The gateway's internal, validated configuration model.
//!
//! Envoy protos arriving over xDS are converted here, once per push and off the hot path:
//! regexes are compiled, oneofs resolved, defaults applied. A resource that cannot be
//! converted is rejected with a reason that ends up in the NACK's `error_detail`.

pub mod cluster;
pub mod listener;
pub mod meta_route;
pub mod redis;
pub mod route;

use std::time::Duration;

use corridor_proto::google::protobuf::{Duration as PbDuration, Struct};

/// Why a resource was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field holds a value the gateway cannot use.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A feature the gateway does not implement.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// The `Any` did not decode as the expected message.
    #[error("cannot decode {type_url}: {reason}")]
    Decode {
        /// The type URL found.
        type_url: String,
        /// The decoder's explanation.
        reason: String,
    },
}

impl ModelError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// The largest `google.protobuf.Duration` the protobuf spec allows (10,000 years): any
/// larger value is invalid, and refusing it keeps `Instant + timeout` from overflowing.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// Converts a protobuf duration; negative or out-of-range durations are rejected.
pub(crate) fn duration(d: &PbDuration, field: &'static str) -> Result<Duration, ModelError> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ModelError::invalid(field, "negative duration"));
    }
    if d.seconds > MAX_DURATION_SECONDS || d.nanos >= 1_000_000_000 {
        return Err(ModelError::invalid(
            field,
            format!(
                "duration {}s {}ns is outside google.protobuf.Duration's range",
                d.seconds, d.nanos
            ),
        ));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// Reads a string field of `filter_metadata[key]`.
pub(crate) fn metadata_string(
    md: Option<&corridor_proto::envoy::config::core::v3::Metadata>,
    key: &str,
    field: &str,
) -> Option<String> {
    use corridor_proto::google::protobuf::value::Kind;
    let s: &Struct = md?.filter_metadata.get(key)?;
    match s.fields.get(field)?.kind.as_ref()? {
        Kind::StringValue(v) => Some(v.clone()),
        Kind::NumberValue(n) => Some(format!("{n}")),
        Kind::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Decodes an `Any` as `M`, checking its type URL.
pub(crate) fn decode_any<M: prost::Message + prost::Name + Default>(
    any: &corridor_proto::google::protobuf::Any,
) -> Result<M, ModelError> {
    if any.type_url != M::type_url() {
        return Err(ModelError::Decode {
            type_url: any.type_url.clone(),
            reason: format!("expected {}", M::type_url()),
        });
    }
    M::decode(any.value.as_slice()).map_err(|e| ModelError::Decode {
        type_url: any.type_url.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
