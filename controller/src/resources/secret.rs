//! core/v1 Secret, as far as the controller reads it: named values for the credentials
//! a RedisService or RedisDestination refers to. Its own type rather than k8s-openapi's so
//! that `Debug` (and so any log line or panic message) never shows a value.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use serde::{Deserialize, Serialize};

/// `v1` Secret: `data` (base64, decoded when parsed) and `stringData` (plain text).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Object metadata (name, namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `type` (`Opaque`, ...); not interpreted.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Values, base64 in the manifest.
    #[serde(default)]
    pub data: BTreeMap<String, ByteString>,
    /// Values in plain text; on a key present in both, this one wins, as the API server
    /// merges `stringData` over `data` when the object is written.
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

/// Why a Secret field gives no usable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The Secret has no such key.
    #[error("has no field {0:?}")]
    Missing(String),
    /// The value is not UTF-8 text (a Redis password must be sent as a string).
    #[error("field {0:?} is not UTF-8 text")]
    NotText(String),
    /// The value is empty once surrounding white space is removed.
    #[error("field {0:?} is empty")]
    Empty(String),
}

impl Secret {
    /// True when `field` is a key of the Secret.
    pub fn has(&self, field: &str) -> bool {
        self.string_data.contains_key(field) || self.data.contains_key(field)
    }

    /// The text of `field`, without surrounding white space: `echo secret | base64`
    /// leaves a newline in the value that no one means as part of a password (Aeraki
    /// trims too).
    pub fn text(&self, field: &str) -> Result<String, FieldError> {
        let text = match (self.string_data.get(field), self.data.get(field)) {
            (Some(s), _) => s.clone(),
            (None, Some(bytes)) => String::from_utf8(bytes.0.clone())
                .map_err(|_| FieldError::NotText(field.to_string()))?,
            (None, None) => return Err(FieldError::Missing(field.to_string())),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(FieldError::Empty(field.to_string()));
        }
        Ok(trimmed.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self.data.keys().chain(self.string_data.keys()).collect();
        f.debug_struct("Secret")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(yaml: &str) -> Secret {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn data_is_base64_and_string_data_wins() {
        // "testredis\n" in base64, as Aeraki's demo writes it.
        let s = secret(
            "metadata: {name: s}\ndata: {password: dGVzdHJlZGlzCg==, user: YWxpY2U=}\nstringData: {user: bob}\n",
        );
        assert_eq!(s.text("password").unwrap(), "testredis");
        assert_eq!(s.text("user").unwrap(), "bob");
        assert_eq!(s.text("token"), Err(FieldError::Missing("token".into())));
        assert!(s.has("user") && !s.has("token"));
    }

    #[test]
    fn unusable_values_are_named() {
        let s = secret("metadata: {name: s}\ndata: {bin: /w==}\nstringData: {blank: \"  \"}\n");
        assert_eq!(s.text("bin"), Err(FieldError::NotText("bin".into())));
        assert_eq!(s.text("blank"), Err(FieldError::Empty("blank".into())));
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let s = secret("metadata: {name: s}\nstringData: {password: hunter2}\n");
        let shown = format!("{s:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn bad_base64_does_not_parse() {
        assert!(serde_yaml_ng::from_str::<Secret>("data: {password: \"%%%\"}\n").is_err());
    }
}
