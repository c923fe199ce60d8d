//! Prometheus metrics: Istio's standard request metrics and the gateway's own counters.
//!
//! Each gateway instance owns its recorder (no global one), so several instances can run
//! in one process (tests, the umbrella binary). Handles are registered once per label set
//! and cached, so the data path only bumps atomics.

use std::sync::Arc;

use dashmap::DashMap;
use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub use super::service::{Outcome, OutcomeHasher, RequestHandles, RequestProtocol, ServiceMetrics};

/// Istio's duration buckets, in milliseconds.
pub const DURATION_BUCKETS_MS: &[f64] = &[
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// Istio's size buckets, in bytes.
pub const SIZE_BUCKETS: &[f64] = &[
    1.0,
    10.0,
    100.0,
    1000.0,
    10000.0,
    100000.0,
    1000000.0,
    10000000.0,
    100000000.0,
];

/// `istio_requests_total`.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds`.
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes`.
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes`.
pub const RESPONSE_BYTES: &str = "istio_response_bytes";
/// xDS stream terminations by reason.
pub const XDS_STREAM_TERMINATIONS: &str = "corridor_xds_stream_terminations_total";
/// NACKs sent, by type.
pub const XDS_NACKS: &str = "corridor_xds_nacks_total";
/// ACKs sent, by type.
pub const XDS_ACKS: &str = "corridor_xds_acks_total";
/// Retries, by cluster.
pub const UPSTREAM_RETRIES: &str = "corridor_upstream_rq_retry_total";
/// Retries refused by the budget, by cluster.
pub const UPSTREAM_RETRY_OVERFLOW: &str = "corridor_upstream_rq_retry_overflow_total";
/// Listener bind failures.
pub const LISTENER_BIND_FAILURES: &str = "corridor_listener_bind_failures_total";
/// TCP proxy connections, by service.
pub const TCP_CONNECTIONS_OPENED: &str = "istio_tcp_connections_opened_total";
/// TCP proxy connections closed, by service.
pub const TCP_CONNECTIONS_CLOSED: &str = "istio_tcp_connections_closed_total";
/// TCP bytes sent to upstream.
pub const TCP_SENT_BYTES: &str = "istio_tcp_sent_bytes_total";
/// TCP bytes received from upstream.
pub const TCP_RECEIVED_BYTES: &str = "istio_tcp_received_bytes_total";
/// Spans sent to the OTLP collector.
pub const SPANS_EXPORTED: &str = "corridor_tracing_spans_exported_total";
/// Spans dropped: export queue full, or the collector failed.
pub const SPANS_DROPPED: &str = "corridor_tracing_spans_dropped_total";
/// Redis commands handled, by listener and command.
pub const REDIS_COMMAND_TOTAL: &str = "corridor_redis_command_total";
/// Redis commands answered without an error.
pub const REDIS_COMMAND_SUCCESS: &str = "corridor_redis_command_success_total";
/// Redis commands answered with an error (the upstream's, or the gateway's).
pub const REDIS_COMMAND_ERROR: &str = "corridor_redis_command_error_total";
/// Redis command latency, from decoding the command to its reply, in milliseconds.
pub const REDIS_COMMAND_LATENCY: &str = "corridor_redis_command_latency_milliseconds";

static METADATA: Metadata<'static> = Metadata::new("corridor_gateway", metrics::Level::INFO, None);

/// The gateway's metrics registry.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    by_cluster: DashMap<(&'static str, String), Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with Istio's buckets.
    pub fn new() -> Arc<Self> {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS_MS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(REQUEST_BYTES.into()), SIZE_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(RESPONSE_BYTES.into()), SIZE_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(REDIS_COMMAND_LATENCY.into()),
                    DURATION_BUCKETS_MS,
                )
            });
        // Bucket lists are non-empty constants, so the builder cannot refuse them.
        let recorder = builder
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            recorder,
            handle,
            by_cluster: DashMap::new(),
        };
        m.describe();
        Arc::new(m)
    }

    fn describe(&self) {
        let d = |n: &'static str, u: Option<Unit>, h: &'static str| {
            self.recorder.describe_counter(
                KeyName::from_const_str(n),
                u,
                SharedString::const_str(h),
            )
        };
        d(
            REQUESTS_TOTAL,
            None,
            "Requests proxied, by destination service, response code and flags.",
        );
        d(
            XDS_STREAM_TERMINATIONS,
            None,
            "xDS streams that ended, by reason.",
        );
        d(XDS_NACKS, None, "xDS responses rejected (NACKed), by type.");
        d(XDS_ACKS, None, "xDS responses accepted (ACKed), by type.");
        d(UPSTREAM_RETRIES, None, "Upstream retries, by cluster.");
        d(SPANS_EXPORTED, None, "Spans sent to the OTLP collector.");
        d(
            SPANS_DROPPED,
            None,
            "Spans dropped (export queue full or collector failure).",
        );
        d(
            TCP_CONNECTIONS_OPENED,
            None,
            "Downstream connections opened (TCP, Redis, Dubbo, Thrift).",
        );
        d(
            TCP_CONNECTIONS_CLOSED,
            None,
            "Downstream connections closed (TCP, Redis, Dubbo, Thrift).",
        );
        d(
            TCP_SENT_BYTES,
            Some(Unit::Bytes),
            "Bytes received from downstream and sent on towards the service.",
        );
        d(
            TCP_RECEIVED_BYTES,
            Some(Unit::Bytes),
            "Bytes sent back to downstream.",
        );
        d(
            UPSTREAM_RETRY_OVERFLOW,
            None,
            "Retries refused by the cluster's retry budget.",
        );
        let h = |n: &'static str, u: Option<Unit>, t: &'static str| {
            self.recorder.describe_histogram(
                KeyName::from_const_str(n),
                u,
                SharedString::const_str(t),
            )
        };
        h(
            REQUEST_DURATION,
            Some(Unit::Milliseconds),
            "Request duration in milliseconds.",
        );
        h(REQUEST_BYTES, Some(Unit::Bytes), "Request body sizes.");
        h(RESPONSE_BYTES, Some(Unit::Bytes), "Response body sizes.");
    }

    /// Registers (or finds) a counter.
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// Registers (or finds) a histogram.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// A counter labelled by one cluster, cached.
    pub fn cluster_counter(&self, name: &'static str, cluster: &str) -> Counter {
        if let Some(c) = self.by_cluster.get(&(name, cluster.to_string())) {
            return c.clone();
        }
        let c = self.counter(name, vec![Label::new("cluster", cluster.to_string())]);
        self.by_cluster
            .insert((name, cluster.to_string()), c.clone());
        c
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram buffers; call periodically.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}
