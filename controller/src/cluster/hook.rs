//! Keeps the CoreDNS hook ([`super::corefile`]) in the `coredns` ConfigMap: read, edit
//! `data.Corefile`, and write back only when the text changed, with the resourceVersion
//! read so that a concurrent edit (an operator's, another tool's) is never overwritten.
//! CoreDNS's `reload` plugin picks the new Corefile up once kubelet refreshes the mount.

use std::net::SocketAddr;

use ::kube::{Api, Client, api::PostParams};
use k8s_openapi::api::core::v1::ConfigMap;

use super::corefile::{CorefileError, add_stub, remove_stub};

/// Key of the Corefile in the ConfigMap's data.
pub const COREFILE_KEY: &str = "Corefile";
/// Attempts at a write that keeps meeting concurrent edits (409 Conflict) before giving
/// up until the next pass; each attempt re-reads, so only a busy writer exhausts them.
const MAX_ATTEMPTS: u32 = 5;

/// What the Corefile should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// The block forwarding `zone` to `target` (corridor-dns's ClusterIP and port).
    Stub {
        /// The cluster zone (`cluster.local`).
        zone: String,
        /// Where the block forwards.
        target: SocketAddr,
    },
    /// No block (uninstall, or a dns mode other than `stub`).
    Absent,
}

/// Whether [`ensure_hook`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// The Corefile was rewritten.
    Changed,
    /// The Corefile already was as wanted; nothing written.
    Unchanged,
}

/// Why the hook could not be put in place (or taken out).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Reading or writing the ConfigMap failed.
    #[error(
        "{verb} ConfigMap {namespace}/{name}: {source} (does the controller's ServiceAccount \
         have get and update on it? is --coredns-configmap right?)"
    )]
    Api {
        /// `get` or `replace`.
        verb: &'static str,
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// What the API server said.
        #[source]
        source: ::kube::Error,
    },
    /// The ConfigMap has no Corefile.
    #[error("ConfigMap {namespace}/{name} has no data.{COREFILE_KEY}: is it CoreDNS's?")]
    NoCorefile {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
    },
    /// The Corefile cannot be edited safely.
    #[error("ConfigMap {namespace}/{name}: {source}")]
    Corefile {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
        /// Why.
        #[source]
        source: CorefileError,
    },
    /// Every attempt met a concurrent write.
    #[error("ConfigMap {namespace}/{name}: still changing under us after {MAX_ATTEMPTS} attempts")]
    Contended {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// Name of the ConfigMap.
        name: String,
    },
}

/// HTTP status of a failed resourceVersion precondition.
const CONFLICT: u16 = 409;

/// Makes the Corefile in ConfigMap `namespace`/`name` hold `hook`, writing only when it
/// changes the text.
pub async fn ensure_hook(
    client: Client,
    namespace: &str,
    name: &str,
    hook: &Hook,
) -> Result<HookOutcome, HookError> {
    ensure_hook_with(client, namespace, name, hook, |_| async {}).await
}

/// [`ensure_hook`], calling `before_write(attempt)` between the read and the write of each
/// attempt: tests write the ConfigMap there to play a concurrent editor.
pub(crate) async fn ensure_hook_with<F, Fut>(
    client: Client,
    namespace: &str,
    name: &str,
    hook: &Hook,
    mut before_write: F,
) -> Result<HookOutcome, HookError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let api_error = |verb, source| HookError::Api {
        verb,
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let mut cm = api.get(name).await.map_err(|e| api_error("get", e))?;
        let corefile = cm
            .data
            .as_ref()
            .and_then(|d| d.get(COREFILE_KEY))
            .ok_or_else(|| HookError::NoCorefile {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        let edited = match hook {
            Hook::Stub { zone, target } => add_stub(corefile, zone, *target),
            Hook::Absent => remove_stub(corefile),
        }
        .map_err(|source| HookError::Corefile {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })?;
        if &edited == corefile {
            return Ok(HookOutcome::Unchanged);
        }
        cm.data
            .get_or_insert_with(Default::default)
            .insert(COREFILE_KEY.to_string(), edited);
        // Not ours to write back: the server keeps them, and an old managedFields list
        // would only be checked and dropped.
        cm.metadata.managed_fields = None;
        before_write(attempt).await;
        // The resourceVersion read above travels in `cm`: a write in between fails with
        // 409 and the loop starts over from a fresh read.
        match api.replace(name, &PostParams::default(), &cm).await {
            Ok(_) => {
                // The caller logs the outcome; this records which attempt got through.
                tracing::debug!(configmap = %format!("{namespace}/{name}"), attempt, ?hook, "Corefile replaced");
                return Ok(HookOutcome::Changed);
            }
            Err(::kube::Error::Api(status)) if status.code == CONFLICT => {
                tracing::debug!(configmap = %format!("{namespace}/{name}"), attempt, "Corefile changed meanwhile; reading it again");
            }
            Err(e) => return Err(api_error("replace", e)),
        }
    }
    Err(HookError::Contended {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests;
