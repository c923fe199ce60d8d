//! Applies a [`Diff`] of address Services to the API server.

use ::kube::{
    Api, Client,
    api::{DeleteParams, PostParams, Preconditions},
};
use k8s_openapi::api::core::v1::Service;

use super::address::Diff;

/// What one [`reconcile`] did.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// Services created (a create that found the Service there already counts: the next
    /// pass sees it and compares).
    pub created: usize,
    /// Services replaced.
    pub updated: usize,
    /// Services deleted (one already gone counts).
    pub deleted: usize,
    /// Writes that failed, each naming its Service; the next pass tries again.
    pub errors: Vec<ReconcileError>,
    /// The Services as the server stored them after each create and replace, and
    /// [`ReconcileReport::gone`] the names deleted: a leader that plans again before its
    /// watch delivers these can fold them into its store first, so that the next plan
    /// starts from what the server holds (ports just allocated stay taken).
    pub written: Vec<Service>,
    /// Names of the Services deleted (or found gone already).
    pub gone: Vec<String>,
}

/// A write of one address Service that failed.
#[derive(Debug, thiserror::Error)]
#[error("{verb} Service {namespace}/{name}: {source}")]
pub struct ReconcileError {
    /// `create`, `replace` or `delete`.
    pub verb: &'static str,
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// What the API server (or the connection to it) said.
    #[source]
    pub source: kube::Error,
}

/// Status code of an API error response, if it is one.
fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// HTTP status of "not found".
const NOT_FOUND: u16 = 404;
/// HTTP status of "already exists" (and of a failed precondition).
const CONFLICT: u16 = 409;

/// Creates, replaces and deletes the Services of `diff` in `namespace`, each on its own:
/// one failure does not stop the others. Failures are logged and returned.
pub async fn reconcile(client: Client, namespace: &str, diff: &Diff) -> ReconcileReport {
    let api: Api<Service> = Api::namespaced(client, namespace);
    let mut report = ReconcileReport::default();
    let failed = |verb: &'static str, name: &str, source: kube::Error| {
        let e = ReconcileError {
            verb,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        };
        tracing::warn!(error = %e, "address Service not written; retried on the next pass");
        e
    };
    // Deletions first: they are what frees names and (once seen gone) ports.
    for d in &diff.delete {
        let params = DeleteParams {
            preconditions: d.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&d.name, &params).await {
            Ok(_) => {
                tracing::info!(service = %d.name, "address Service deleted");
                report.deleted += 1;
                report.gone.push(d.name.clone());
            }
            Err(e) if status_code(&e) == Some(NOT_FOUND) => {
                report.deleted += 1;
                report.gone.push(d.name.clone());
            }
            Err(e) => report.errors.push(failed("delete", &d.name, e)),
        }
    }
    for svc in &diff.update {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        match api.replace(name, &PostParams::default(), svc).await {
            Ok(stored) => {
                tracing::info!(service = %name, "address Service updated");
                report.updated += 1;
                report.written.push(stored);
            }
            Err(e) => report.errors.push(failed("replace", name, e)),
        }
    }
    for svc in &diff.create {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        match api.create(&PostParams::default(), svc).await {
            Ok(stored) => {
                tracing::info!(service = %name, "address Service created");
                report.created += 1;
                report.written.push(stored);
            }
            Err(e) if status_code(&e) == Some(CONFLICT) => report.created += 1,
            Err(e) => report.errors.push(failed("create", name, e)),
        }
    }
    report
}

#[cfg(test)]
mod tests;
