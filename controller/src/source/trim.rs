//! What the store keeps of an object. Both sources pass every object through [`admit`],
//! so the Kubernetes source and the file source build the same store from the same
//! objects, and memory holds only what the controller reads.
//!
//! In a cluster the store holds every Service, EndpointSlice, Pod and Namespace, so the
//! per-object overhead multiplies: `managedFields` (often larger than the object itself)
//! and kubectl's last-applied annotation (a second copy of the object; for a Secret, its
//! values) are dropped from every object, and so is `resourceVersion` except on Services
//! (the address Service writer replaces Services with it): a write that changes nothing
//! the controller reads (a status update, kubelet's container statuses) then leaves the
//! stored object equal, and triggers no translation. Pods keep their metadata, service account and
//! IPs (subsets, source identity) but not containers, volumes or container statuses; and
//! Secrets of types that never hold the credentials the controller reads (Helm releases,
//! service-account tokens, registry and TLS credentials, bootstrap tokens) are not kept
//! at all. The Kubernetes source also asks the API server not to send those Secrets
//! ([`ignored_secret_types_selector`]).

use k8s_openapi::{
    api::core::v1::{Pod, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::resources::Object;

/// Annotation in which `kubectl apply` keeps the whole applied object.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Secret types the controller never reads credentials from (Redis credentials are
/// `Opaque` or `kubernetes.io/basic-auth` Secrets).
pub const IGNORED_SECRET_TYPES: [&str; 6] = [
    "helm.sh/release.v1",
    "kubernetes.io/service-account-token",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/tls",
    "bootstrap.kubernetes.io/token",
];

/// The object as the store keeps it, or None when it is not kept.
pub fn admit(mut object: Object) -> Option<Object> {
    if let Object::Secret(s) = &object
        && s.type_
            .as_deref()
            .is_some_and(|t| IGNORED_SECRET_TYPES.contains(&t))
    {
        return None;
    }
    match &mut object {
        Object::Namespace(o) => trim_meta(&mut o.metadata),
        Object::Service(o) => {
            let version = o.metadata.resource_version.take();
            trim_meta(&mut o.metadata);
            o.metadata.resource_version = version;
        }
        Object::Pod(o) => trim_pod(o),
        Object::EndpointSlice(o) => trim_meta(&mut o.metadata),
        Object::VirtualService(o) => trim_meta(&mut o.metadata),
        Object::DestinationRule(o) => trim_meta(&mut o.metadata),
        Object::MetaRouter(o) => trim_meta(&mut o.metadata),
        Object::Secret(o) => trim_meta(&mut o.metadata),
        Object::RedisService(o) => trim_meta(&mut o.metadata),
        Object::RedisDestination(o) => trim_meta(&mut o.metadata),
        Object::AuthorizationPolicy(o) => trim_meta(&mut o.metadata),
    }
    Some(object)
}

/// The `fieldSelector` that leaves out [`IGNORED_SECRET_TYPES`].
pub fn ignored_secret_types_selector() -> String {
    IGNORED_SECRET_TYPES
        .iter()
        .map(|t| format!("type!={t}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.resource_version = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

fn trim_pod(pod: &mut Pod) {
    trim_meta(&mut pod.metadata);
    pod.spec = pod.spec.take().map(|s| PodSpec {
        service_account_name: s.service_account_name,
        node_name: s.node_name,
        host_network: s.host_network,
        hostname: s.hostname,
        subdomain: s.subdomain,
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|s| PodStatus {
        phase: s.phase,
        pod_ip: s.pod_ip,
        pod_ips: s.pod_ips,
        ..PodStatus::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::parse_document;

    fn object(yaml: &str) -> Object {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        parse_document(value).pop().unwrap().unwrap()
    }

    #[test]
    fn drops_bookkeeping_and_pod_internals() {
        let pod = object(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: a}\n  managedFields: [{manager: kubectl}]\n  \
             annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}', keep: me}\n  resourceVersion: '42'\n\
             spec: {serviceAccountName: sa, containers: [{name: c, image: i}]}\n\
             status: {podIP: 10.0.0.1, phase: Running, containerStatuses: [{name: c, image: i, imageID: x, ready: true, restartCount: 0}]}\n",
        );
        let Some(Object::Pod(p)) = admit(pod) else {
            panic!("a pod")
        };
        assert!(p.metadata.managed_fields.is_none());
        let annotations = p.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), vec!["keep"]);
        assert_eq!(p.metadata.labels.unwrap()["app"], "a");
        let spec = p.spec.unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("sa"));
        assert!(spec.containers.is_empty());
        let status = p.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert!(status.container_statuses.is_none());
    }

    #[test]
    fn services_keep_their_resource_version() {
        let svc = object(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, resourceVersion: '7', managedFields: [{}]}\n",
        );
        let Some(Object::Service(s)) = admit(svc) else {
            panic!("a service")
        };
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        assert!(s.metadata.managed_fields.is_none());
    }

    #[test]
    fn secrets_of_ignored_types_are_not_kept() {
        let tls =
            object("apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\n");
        assert!(admit(tls).is_none());
        let opaque = object(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: o}\ntype: Opaque\nstringData: {password: x}\n",
        );
        assert!(admit(opaque).is_some());
        assert!(ignored_secret_types_selector().starts_with("type!=helm.sh/release.v1,type!="));
    }
}
