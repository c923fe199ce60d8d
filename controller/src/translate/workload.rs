//! The pod table: one `corridor.workload.v1.Workload` per pod IP, so the gateway can
//! name the caller of a request from its source address (namespace, service account,
//! workload). Identity is IP-based, not mTLS; see docs/policies.md "Authorization".

use std::collections::BTreeMap;

use corridor_proto::corridor::workload::v1::Workload;
use k8s_openapi::api::core::v1::Pod;

use crate::{store::Store, xds::snapshot::Resource};

/// The label Kubernetes puts on the pods of a Deployment's ReplicaSet; its value ends
/// the ReplicaSet's name.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Every pod IP of the store, as resources named after the IP. Pods on the host network
/// share the node's IP, and finished pods may have handed theirs on, so neither names a
/// caller; when two live pods claim one IP, the first by namespace/name wins.
pub(super) fn build(store: &Store, trust_domain: &str) -> Vec<Resource> {
    let mut by_ip: BTreeMap<String, Workload> = BTreeMap::new();
    for pod in store.pods.values() {
        if !is_caller(pod) {
            continue;
        }
        for ip in pod_ips(pod) {
            by_ip
                .entry(ip.clone())
                .or_insert_with(|| entry(pod, ip, trust_domain));
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, w)| Resource::new(ip, &w))
        .collect()
}

fn is_caller(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    !host_network && !finished
}

/// `status.podIPs`, else `status.podIP`.
fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone().filter(|ip| !ip.is_empty()));
    }
    ips
}

fn entry(pod: &Pod, ip: String, trust_domain: &str) -> Workload {
    let meta = &pod.metadata;
    let labels = meta.labels.clone().unwrap_or_default();
    let label = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| labels.get(*k).cloned())
            .unwrap_or_default()
    };
    Workload {
        ip,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        workload: workload_name(pod),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        app: label(["app", "app.kubernetes.io/name"]),
        version: label(["version", "app.kubernetes.io/version"]),
        trust_domain: trust_domain.to_string(),
    }
}

/// The workload a pod belongs to, the way Istio names it for `source_workload`: its
/// controlling owner, with a ReplicaSet read as its Deployment (the name less the
/// `-<pod-template-hash>` suffix) and a Job read as its CronJob (the name less a
/// `-<schedule time>` suffix); a pod without an owner is its own workload.
pub(super) fn workload_name(pod: &Pod) -> String {
    let meta = &pod.metadata;
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    let Some(owner) = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(owners.first())
    else {
        return meta.name.clone().unwrap_or_default();
    };
    let name = owner.name.as_str();
    let trimmed = match owner.kind.as_str() {
        "ReplicaSet" => meta
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            .and_then(|hash| name.strip_suffix(hash.as_str()))
            .and_then(|rest| rest.strip_suffix('-')),
        "Job" => name
            .rsplit_once('-')
            .filter(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
            .map(|(head, _)| head),
        _ => None,
    };
    trimmed.unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::store_from_yaml;
    use prost::Message;

    const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f8-x2
  namespace: a
  labels: {app: web, version: v1, pod-template-hash: 7d9f8}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f8, uid: u1, controller: true}]
spec: {serviceAccountName: x, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 127.0.10.1, podIPs: [{ip: 127.0.10.1}, {ip: "fd00::1"}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: report-28123456-abcde
  namespace: b
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: report-28123456, uid: u2, controller: true}]
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 127.0.10.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: c, labels: {app.kubernetes.io/name: db}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 127.0.10.3}
---
apiVersion: v1
kind: Pod
metadata: {name: node-agent, namespace: c}
spec: {hostNetwork: true, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: c}
spec: {containers: [{name: c, image: i}]}
status: {phase: Succeeded, podIP: 127.0.10.4}
"#;

    fn table() -> BTreeMap<String, Workload> {
        build(&store_from_yaml(PODS), "example.org")
            .into_iter()
            .map(|r| {
                let w = Workload::decode(r.body.value.as_slice()).unwrap();
                assert_eq!(r.name, w.ip);
                (r.name, w)
            })
            .collect()
    }

    #[test]
    fn one_entry_per_live_pod_ip_with_istio_workload_names() {
        let t = table();
        assert_eq!(
            t.keys().map(String::as_str).collect::<Vec<_>>(),
            ["127.0.10.1", "127.0.10.2", "127.0.10.3", "fd00::1"],
            "host-network and finished pods name no caller"
        );
        let web = &t["127.0.10.1"];
        assert_eq!(
            (
                web.namespace.as_str(),
                web.name.as_str(),
                web.workload.as_str()
            ),
            ("a", "web-7d9f8-x2", "web")
        );
        assert_eq!(
            (
                web.service_account.as_str(),
                web.app.as_str(),
                web.version.as_str()
            ),
            ("x", "web", "v1")
        );
        assert_eq!(web.trust_domain, "example.org");
        assert_eq!(t["fd00::1"].workload, "web");
        assert_eq!(t["127.0.10.2"].workload, "report", "a CronJob's Job");
        assert_eq!(t["127.0.10.3"].workload, "db-0", "no owner: the pod");
        assert_eq!(t["127.0.10.3"].app, "db");
    }
}
