//! Who sent a request: the pod table the controller pushes (one
//! `corridor.workload.v1.Workload` per pod IP) and the lookup of a peer address in it.
//!
//! Identity here is IP-based, not mTLS: the source pod is the one whose IP the
//! connection comes from. That holds only while pod source IPs reach the gateway
//! unchanged (kube-proxy without `masqueradeAll`, no SNAT in the CNI); behind a NAT every
//! caller looks like the NAT's address, which is in no pod's entry.
//!
//! The table lives in the published [`Snapshot`] and is read on every request, so a pod
//! that comes, goes or changes its service account changes the verdict of the next
//! request without rebuilding any listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use corridor_proto::corridor::workload::v1::Workload as PbWorkload;

use crate::cluster::Snapshot;
use crate::model::ModelError;

/// The trust domain a pod's principal is named in when its entry names none (Istio's
/// default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The service account Kubernetes gives a pod that names none.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// One pod IP and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The pod IP.
    pub ip: IpAddr,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The workload (Deployment, StatefulSet, ... or the pod) as Istio names it.
    pub workload: String,
    /// The pod's service account.
    pub service_account: String,
    /// The pod's `app` label; empty when absent.
    pub app: String,
    /// The pod's `version` label; empty when absent.
    pub version: String,
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, the name
    /// authorization policies match principals against.
    pub principal: String,
}

/// Pod IP → workload, as the data path reads it. Looked up on every request that has
/// authorization filters; the keys come from the control plane, not from clients.
pub type PodTable = HashMap<IpAddr, Arc<Workload>, foldhash::fast::RandomState>;

impl TryFrom<&PbWorkload> for Workload {
    type Error = ModelError;

    fn try_from(w: &PbWorkload) -> Result<Self, ModelError> {
        let ip: IpAddr = w
            .ip
            .parse()
            .map_err(|_| ModelError::invalid("ip", format!("{:?} is not an IP address", w.ip)))?;
        if w.namespace.is_empty() {
            return Err(ModelError::Missing("namespace"));
        }
        let service_account = if w.service_account.is_empty() {
            DEFAULT_SERVICE_ACCOUNT
        } else {
            &w.service_account
        };
        let trust_domain = if w.trust_domain.is_empty() {
            DEFAULT_TRUST_DOMAIN
        } else {
            &w.trust_domain
        };
        Ok(Workload {
            ip,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            workload: w.workload.clone(),
            service_account: service_account.to_owned(),
            app: w.app.clone(),
            version: w.version.clone(),
            principal: format!(
                "spiffe://{trust_domain}/ns/{}/sa/{service_account}",
                w.namespace
            ),
        })
    }
}

/// The workload behind `ip` in `snapshot`'s pod table, if it is a known pod. Telemetry
/// reads its source labels (`source_workload`, `source_workload_namespace`,
/// `source_principal`) through this too.
pub fn lookup(snapshot: &Snapshot, ip: IpAddr) -> Option<Arc<Workload>> {
    snapshot.workloads.get(&canonical(ip)).cloned()
}

/// An IPv4 peer accepted on a dual-stack socket shows up as `::ffff:a.b.c.d`; the pod
/// table holds it as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(ip: &str, sa: &str, td: &str) -> PbWorkload {
        PbWorkload {
            ip: ip.into(),
            namespace: "a".into(),
            name: "client-7d9f-x2".into(),
            workload: "client".into(),
            service_account: sa.into(),
            app: "client".into(),
            version: "v1".into(),
            trust_domain: td.into(),
        }
    }

    #[test]
    fn the_principal_names_trust_domain_namespace_and_service_account() {
        let w = Workload::try_from(&pb("127.0.10.1", "x", "example.org")).unwrap();
        assert_eq!(w.principal, "spiffe://example.org/ns/a/sa/x");
        let w = Workload::try_from(&pb("127.0.10.1", "", "")).unwrap();
        assert_eq!(w.principal, "spiffe://cluster.local/ns/a/sa/default");
        assert_eq!(w.service_account, "default");
    }

    #[test]
    fn bad_entries_are_refused() {
        let err = Workload::try_from(&pb("pod-a", "x", "")).unwrap_err();
        assert!(err.to_string().contains("pod-a"), "{err}");
        let mut no_ns = pb("127.0.10.1", "x", "");
        no_ns.namespace.clear();
        assert!(Workload::try_from(&no_ns).is_err());
    }

    #[test]
    fn lookup_finds_v4_peers_seen_through_a_v6_socket() {
        let w = Arc::new(Workload::try_from(&pb("127.0.10.1", "x", "")).unwrap());
        let snapshot = Snapshot {
            workloads: Arc::new([(w.ip, w.clone())].into_iter().collect()),
            ..Snapshot::default()
        };
        let mapped: IpAddr = "::ffff:127.0.10.1".parse().unwrap();
        assert_eq!(lookup(&snapshot, mapped), Some(w.clone()));
        assert_eq!(lookup(&snapshot, "127.0.10.2".parse().unwrap()), None);
    }
}
