//! Istio's request metrics of one destination service: the label sets, built once per
//! service and outcome, and their cached handles.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use metrics::{Counter, Histogram, Label};

use super::metrics::{Metrics, REQUEST_BYTES, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES};
use crate::model::listener::ServiceLabels;
use crate::telemetry::record::PeerRef;

/// The handles of one (service, outcome) label set.
#[derive(Debug, Clone)]
pub struct RequestHandles {
    /// `istio_requests_total`.
    pub requests: Counter,
    /// `istio_request_duration_milliseconds`.
    pub duration: Histogram,
    /// `istio_request_bytes`.
    pub request_bytes: Histogram,
    /// `istio_response_bytes`.
    pub response_bytes: Histogram,
}

/// The per-request part of a request's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// The protocol's own response code (`response_code`): HTTP status (also for
    /// gRPC), Dubbo status byte, Thrift 0 or `TApplicationException` type.
    pub status: u16,
    /// Response flags bit set.
    pub flags: u16,
    /// gRPC status, if any.
    pub grpc_status: Option<u16>,
    /// The `request_protocol` label.
    pub protocol: RequestProtocol,
    /// The calling workload.
    pub source: PeerRef,
    /// The answering workload.
    pub destination: PeerRef,
}

/// Istio's `request_protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    /// HTTP/1.1 or HTTP/2.
    Http,
    /// gRPC.
    Grpc,
    /// Dubbo.
    Dubbo,
    /// Thrift.
    Thrift,
}

impl RequestProtocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
            RequestProtocol::Dubbo => "dubbo",
            RequestProtocol::Thrift => "thrift",
        }
    }
}

/// Per-service request metrics with the destination labels built once.
#[derive(Debug)]
pub struct ServiceMetrics {
    metrics: Arc<Metrics>,
    base: Vec<Label>,
    destination_service: String,
    tcp: std::sync::OnceLock<crate::telemetry::tcp::TcpMetrics>,
    cache: DashMap<Outcome, RequestHandles, BuildHasherDefault<OutcomeHasher>>,
}

/// Hashes an [`Outcome`] (a few small integers, none chosen by a peer in a way that
/// could flood one bucket: the status space is tiny) with a multiply-rotate instead of
/// SipHash, which cost more than the metric updates themselves on every request.
#[derive(Debug, Default)]
pub struct OutcomeHasher(u64);

impl Hasher for OutcomeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

impl ServiceMetrics {
    /// Label sets for one destination service.
    pub fn new(metrics: Arc<Metrics>, svc: &ServiceLabels) -> Self {
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_string()
            } else {
                s.to_string()
            }
        };
        // Without mTLS the gateway asserts no peer identity on the wire.
        let base = vec![
            Label::new("reporter", "source"),
            Label::new("destination_service", or_unknown(&svc.service)),
            Label::new("destination_service_name", or_unknown(&svc.name)),
            Label::new("destination_service_namespace", or_unknown(&svc.namespace)),
            Label::new("connection_security_policy", "none"),
        ];
        ServiceMetrics {
            metrics,
            base,
            destination_service: or_unknown(&svc.service),
            tcp: std::sync::OnceLock::new(),
            cache: DashMap::default(),
        }
    }

    /// Runs `f` on the handles of one outcome (registered on first use) without cloning
    /// them.
    pub fn record(&self, o: Outcome, f: impl FnOnce(&RequestHandles)) {
        if let Some(h) = self.cache.get(&o) {
            f(&h);
            return;
        }
        f(&self.handles(o));
    }

    /// Handles for one outcome (registered on first use).
    pub fn handles(&self, o: Outcome) -> RequestHandles {
        if let Some(h) = self.cache.get(&o) {
            return h.clone();
        }
        let mut labels = self.base.clone();
        peer_labels(&mut labels, "source", o.source);
        peer_labels(&mut labels, "destination", o.destination);
        labels.push(Label::new("request_protocol", o.protocol.as_str()));
        labels.push(Label::new("response_code", o.status.to_string()));
        labels.push(Label::new(
            "grpc_response_status",
            o.grpc_status.map(|s| s.to_string()).unwrap_or_default(),
        ));
        labels.push(Label::new(
            "response_flags",
            crate::proxy::local_reply::ResponseFlags(o.flags).to_string(),
        ));
        let h = RequestHandles {
            requests: self.metrics.counter(REQUESTS_TOTAL, labels.clone()),
            duration: self.metrics.histogram(REQUEST_DURATION, labels.clone()),
            request_bytes: self.metrics.histogram(REQUEST_BYTES, labels.clone()),
            response_bytes: self.metrics.histogram(RESPONSE_BYTES, labels),
        };
        self.cache.insert(o, h.clone());
        h
    }

    /// The destination labels (for TCP metrics), with unknown peers.
    pub fn base_labels(&self) -> Vec<Label> {
        let mut labels = self.base.clone();
        peer_labels(&mut labels, "source", PeerRef::unknown());
        peer_labels(&mut labels, "destination", PeerRef::unknown());
        labels
    }

    /// This service's `istio_tcp_*` counters (registered on first use).
    pub fn tcp(&self) -> &crate::telemetry::tcp::TcpMetrics {
        self.tcp
            .get_or_init(|| crate::telemetry::tcp::TcpMetrics::new(&self.metrics, self))
    }

    /// The `destination_service` label's value.
    pub fn destination_service(&self) -> &str {
        &self.destination_service
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// Istio's workload labels of one side (`source` or `destination`).
fn peer_labels(labels: &mut Vec<Label>, side: &'static str, peer: PeerRef) {
    let p = peer.get();
    let (workload, namespace, principal, app, version) = match side {
        "source" => (
            "source_workload",
            "source_workload_namespace",
            "source_principal",
            "source_app",
            "source_version",
        ),
        _ => (
            "destination_workload",
            "destination_workload_namespace",
            "destination_principal",
            "destination_app",
            "destination_version",
        ),
    };
    labels.push(Label::new(workload, p.workload.to_string()));
    labels.push(Label::new(namespace, p.namespace.to_string()));
    labels.push(Label::new(principal, p.principal.to_string()));
    labels.push(Label::new(app, p.app.to_string()));
    labels.push(Label::new(version, p.version.to_string()));
}
