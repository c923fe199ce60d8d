//! One finished request or call, whatever its protocol, and the one function that reports
//! it: Istio's request metrics, the access log line and the gateway's span. The HTTP path
//! (`Exchange`'s drop) and the Dubbo/Thrift path (`MetaListener::record`) both build a
//! [`Record`] and call [`finish`].

use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use dashmap::DashMap;

use super::access_log::{self, Line};
use super::metrics::{Outcome, RequestProtocol, ServiceMetrics};
use super::otlp::Finished;
use super::trace::{Span, Tracer};
use crate::cluster::{Endpoint, Snapshot};
use crate::policy::identity::{self, DEFAULT_TRUST_DOMAIN};
use crate::proxy::local_reply::ResponseFlags;

/// Istio's value for a label nobody knows.
pub const UNKNOWN: &str = "unknown";

/// The workload labels of one side of a call (source: the pod table; destination: the
/// endpoint's metadata). Interned: one instance per distinct set for the life of the
/// process, so requests carry a [`PeerRef`] (a pointer) and the metric handles are found
/// by pointer, never by hashing strings.
#[derive(Debug)]
pub struct Peer {
    /// Workload (Deployment, StatefulSet, ... name).
    pub workload: Box<str>,
    /// Namespace.
    pub namespace: Box<str>,
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
    pub principal: Box<str>,
    /// The `app` label.
    pub app: Box<str>,
    /// The `version` label.
    pub version: Box<str>,
    /// What it was interned under.
    key: [Box<str>; 5],
}

/// An interned [`Peer`]: compared and hashed by address.
#[derive(Debug, Clone, Copy)]
pub struct PeerRef(&'static Peer);

impl PeerRef {
    /// The peer nobody could name: every label `unknown`.
    pub fn unknown() -> PeerRef {
        static PEER: LazyLock<PeerRef> =
            LazyLock::new(|| PeerRef::intern("", "", "", "", "", String::new));
        *PEER
    }

    /// The one instance of these labels (empty values read `unknown`); `principal`
    /// builds the principal when the set is new. Lookups hash the strings without
    /// allocating (a read lock on one shard); only a new set allocates. Instances are
    /// never freed: their number is the number of distinct workload label sets seen,
    /// which pod churn does not grow.
    pub fn intern(
        workload: &str,
        namespace: &str,
        identity: &str,
        app: &str,
        version: &str,
        principal: impl FnOnce() -> String,
    ) -> PeerRef {
        static TABLE: LazyLock<DashMap<u64, Vec<PeerRef>, BuildHasherDefault<Prehashed>>> =
            LazyLock::new(Default::default);
        let parts = [workload, namespace, identity, app, version];
        let key = foldhash::quality::FixedState::with_seed(0).hash_one(parts);
        let same = |p: &PeerRef| p.0.key.iter().map(|k| &**k).eq(parts);
        if let Some(found) = TABLE
            .get(&key)
            .and_then(|v| v.iter().find(|p| same(p)).copied())
        {
            return found;
        }
        let mut slot = TABLE.entry(key).or_default();
        if let Some(found) = slot.iter().find(|p| same(p)).copied() {
            return found;
        }
        let or_unknown = |s: &str| -> Box<str> { if s.is_empty() { UNKNOWN } else { s }.into() };
        let principal = if identity.is_empty() {
            UNKNOWN.into()
        } else {
            principal().into_boxed_str()
        };
        let peer = Peer {
            workload: or_unknown(workload),
            namespace: or_unknown(namespace),
            principal,
            app: or_unknown(app),
            version: or_unknown(version),
            key: parts.map(Box::from),
        };
        let interned = PeerRef(Box::leak(Box::new(peer)));
        slot.push(interned);
        interned
    }

    /// The labels.
    pub fn get(self) -> &'static Peer {
        self.0
    }
}

impl Default for PeerRef {
    fn default() -> Self {
        PeerRef::unknown()
    }
}

impl PartialEq for PeerRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for PeerRef {}

impl Hash for PeerRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0 as *const Peer as usize);
    }
}

/// The calling workload: the pod table's entry for `addr`'s IP, else unknown.
pub fn source_of(addr: SocketAddr, snapshot: &Snapshot) -> PeerRef {
    source_of_ip(addr.ip(), snapshot)
}

fn source_of_ip(ip: IpAddr, snapshot: &Snapshot) -> PeerRef {
    match identity::lookup(snapshot, ip) {
        Some(w) => PeerRef::intern(
            &w.workload,
            &w.namespace,
            &w.principal,
            &w.app,
            &w.version,
            || w.principal.clone(),
        ),
        None => PeerRef::unknown(),
    }
}

/// The workload behind an endpoint: its EDS metadata's labels, else unknown. The
/// principal is the service account's (Kubernetes' `default` when the pod names none) in
/// the default trust domain (EDS names no trust domain).
pub fn destination_of(ep: &Endpoint) -> PeerRef {
    match ep.labels.as_deref() {
        Some(l) => {
            let account = match l.service_account.as_str() {
                "" => DEFAULT_SERVICE_ACCOUNT,
                sa => sa,
            };
            PeerRef::intern(
                &l.workload,
                &l.namespace,
                account,
                &l.app,
                &l.version,
                || {
                    format!(
                        "spiffe://{DEFAULT_TRUST_DOMAIN}/ns/{}/sa/{account}",
                        l.namespace
                    )
                },
            )
        }
        None => PeerRef::unknown(),
    }
}

/// The service account Kubernetes gives a pod that names none.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Passes a key that is already a hash through.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// One finished request or call.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// HTTP, gRPC, Dubbo or Thrift.
    pub protocol: RequestProtocol,
    /// The protocol's own code: HTTP status (also for gRPC), Dubbo status byte, Thrift 0
    /// for a reply or the `TApplicationException` type.
    pub response_code: u16,
    /// The outcome in HTTP's terms (the access log's `code`, as retry conditions read it).
    pub http_code: u16,
    /// gRPC status, for gRPC.
    pub grpc_status: Option<u16>,
    /// Response flags.
    pub flags: u16,
    /// Who called.
    pub source: PeerRef,
    /// The workload of the endpoint that answered (unknown when none did).
    pub destination: PeerRef,
    /// The route that matched.
    pub route: Option<&'a str>,
    /// The cluster picked.
    pub cluster: Option<&'a str>,
    /// The endpoint of the last try.
    pub upstream: Option<SocketAddr>,
    /// From arrival to the end of the answer.
    pub duration: Duration,
    /// Request bytes received.
    pub request_bytes: u64,
    /// Response bytes sent.
    pub response_bytes: u64,
    /// The gateway's span, when traced.
    pub span: Option<&'a Span>,
}

impl Record<'_> {
    /// Whether the call failed, for the span's status: a local reply (any flag), a 5xx
    /// outcome, or a gRPC status other than OK.
    pub fn failed(&self) -> bool {
        self.flags != 0 || self.http_code >= 500 || self.grpc_status.is_some_and(|s| s != 0)
    }
}

/// Reports a finished request: metrics, access log line, and the span when it is
/// sampled and exported.
pub fn finish(metrics: &ServiceMetrics, tracer: &Tracer, r: &Record<'_>, line: Line<'_>) {
    let outcome = Outcome {
        status: r.response_code,
        flags: r.flags,
        grpc_status: r.grpc_status,
        protocol: r.protocol,
        source: r.source,
        destination: r.destination,
    };
    let duration_ms = r.duration.as_secs_f64() * 1000.0;
    metrics.record(outcome, |h| {
        h.requests.increment(1);
        h.duration.record(duration_ms);
        h.request_bytes.record(r.request_bytes as f64);
        h.response_bytes.record(r.response_bytes as f64);
    });
    access_log::emit(r, line);
    if let (Some(span), Some(exporter)) = (r.span, tracer.exporter())
        && span.sampled
    {
        exporter.export(finished(metrics, r, span, line));
    }
}

/// The exported form of a request's span.
fn finished(metrics: &ServiceMetrics, r: &Record<'_>, span: &Span, line: Line<'_>) -> Finished {
    let mut attributes = vec![
        ("request_protocol", r.protocol.as_str().to_string()),
        ("response_code", r.response_code.to_string()),
        ("response_flags", ResponseFlags(r.flags).to_string()),
        (
            "destination_service",
            metrics.destination_service().to_string(),
        ),
        ("source_workload", r.source.get().workload.to_string()),
        (
            "destination_workload",
            r.destination.get().workload.to_string(),
        ),
    ];
    if let Some(route) = r.route {
        attributes.push(("route", route.to_string()));
    }
    if let Some(cluster) = r.cluster {
        attributes.push(("upstream_cluster", cluster.to_string()));
    }
    if let Some(upstream) = r.upstream {
        attributes.push(("upstream_address", upstream.to_string()));
    }
    if let Some(grpc) = r.grpc_status {
        attributes.push(("grpc_response_status", grpc.to_string()));
    }
    Finished {
        span: span.clone(),
        end: span.start + r.duration,
        name: line.operation(),
        error: r.failed(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::listener::ServiceLabels;
    use crate::telemetry::metrics::Metrics;

    #[test]
    fn interning_gives_one_instance_per_label_set() {
        let a = PeerRef::intern("web", "shop", "sa", "web", "v1", || "p".into());
        let b = PeerRef::intern("web", "shop", "sa", "web", "v1", || unreachable!());
        let c = PeerRef::intern("web", "shop", "sa", "web", "v2", || "p".into());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(&*c.get().version, "v2");
        let unknown = PeerRef::unknown();
        assert_eq!(&*unknown.get().workload, UNKNOWN);
        assert_eq!(&*unknown.get().principal, UNKNOWN);
        assert_eq!(PeerRef::intern("", "", "", "", "", String::new), unknown);
    }

    #[test]
    fn finish_counts_the_native_code_with_both_workloads() {
        let registry = Metrics::new();
        let svc = ServiceMetrics::new(
            registry.clone(),
            &ServiceLabels {
                service: "echo.ns.svc.cluster.local".into(),
                ..Default::default()
            },
        );
        let source = PeerRef::intern("client", "a", "spiffe://x/ns/a/sa/c", "client", "", || {
            "spiffe://x/ns/a/sa/c".into()
        });
        let record = Record {
            protocol: RequestProtocol::Dubbo,
            response_code: 70,
            http_code: 500,
            grpc_status: None,
            flags: 0,
            source,
            destination: PeerRef::unknown(),
            route: Some("r"),
            cluster: None,
            upstream: None,
            duration: Duration::from_millis(2),
            request_bytes: 10,
            response_bytes: 20,
            span: None,
        };
        for _ in 0..3 {
            finish(
                &svc,
                &Tracer::default(),
                &record,
                Line::Meta {
                    listener: "l",
                    request: &crate::codec::Metadata {
                        message_type: crate::codec::MessageType::Request,
                        request_id: 1,
                        response_status: Default::default(),
                        attributes: vec![],
                        dialect: 0,
                    },
                },
            );
        }
        let text = registry.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{"))
            .unwrap_or_default();
        for label in [
            "response_code=\"70\"",
            "request_protocol=\"dubbo\"",
            "source_workload=\"client\"",
            "source_workload_namespace=\"a\"",
            "source_principal=\"spiffe://x/ns/a/sa/c\"",
            "destination_workload=\"unknown\"",
            "destination_service=\"echo.ns.svc.cluster.local\"",
        ] {
            assert!(line.contains(label), "{label} in {line}");
        }
        assert!(line.ends_with(" 3"), "{line}");
    }
}
