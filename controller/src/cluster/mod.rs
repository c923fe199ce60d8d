//! Cluster mode's own objects in the Kubernetes API: the gateway address Services that
//! give every meshed service a ClusterIP and gateway ports (DESIGN.md §2), and the CoreDNS
//! hook that sends the cluster zone to corridor-dns (DESIGN.md §7).
//!
//! Pure parts (what the objects should be) are separate from the parts that talk to the
//! API server, so that the leader's writes are testable without one:
//!
//! - [`published`] reads the address Services back from the store (the translator uses it
//!   too, so listeners and DNS follow exactly what the API holds);
//! - [`address`] computes the desired address Services and the diff against the existing
//!   ones, with [`ports`] allocating gateway ports and [`name`] naming the Services;
//! - [`reconcile`] applies a diff; [`corefile`] edits a Corefile; [`hook`] keeps the edit
//!   in the CoreDNS ConfigMap.

pub mod address;
pub mod corefile;
pub mod hook;
pub mod name;
pub mod ports;
pub mod published;
pub mod reconcile;

use std::collections::BTreeMap;

/// Label naming the manager of an object; address Services carry [`MANAGED_BY`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on the objects the controller writes.
pub const MANAGED_BY: &str = "corridor";
/// Label of an address Service: the namespace of the service it stands for.
pub const SERVICE_NAMESPACE_LABEL: &str = "corridor.io/service-namespace";
/// Label of an address Service: the name of the service it stands for.
pub const SERVICE_NAME_LABEL: &str = "corridor.io/service-name";
/// Annotation of an address Service: the allocation, `{"<original port>": <gateway port>}`.
pub const PORTS_ANNOTATION: &str = "corridor.io/ports";

/// A label selector in `key=value[,key=value...]` form (`--gateway-selector`) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "label selector {selector:?}: {reason} (expected key=value[,key=value...], like app.kubernetes.io/name=corridor-gateway)"
)]
pub struct SelectorError {
    /// The text given.
    pub selector: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses an equality-based label selector (`a=b,c=d`); address Services select the
/// gateway pods with it, so set-based forms (`in`, `!=`) make no sense here.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, SelectorError> {
    let err = |reason: String| SelectorError {
        selector: text.to_string(),
        reason,
    };
    let mut labels = BTreeMap::new();
    for term in text.split(',').map(str::trim) {
        let (key, value) = term
            .split_once('=')
            .ok_or_else(|| err(format!("{term:?} is not key=value")))?;
        let (key, value) = (key.trim(), value.trim().trim_start_matches('='));
        if key.is_empty() || key.ends_with('!') {
            return Err(err(format!("{term:?} is not key=value")));
        }
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(err(format!("{key} given twice")));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(
            parse_selector("app.kubernetes.io/name=corridor-gateway").unwrap(),
            BTreeMap::from([("app.kubernetes.io/name".into(), "corridor-gateway".into())])
        );
        assert_eq!(parse_selector("a=b, c==d").unwrap().len(), 2);
        for bad in ["", "a", "a!=b", "=b", "a=b,a=c"] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }
}
