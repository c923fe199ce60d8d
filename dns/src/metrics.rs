//! Prometheus metrics under CoreDNS's names and labels, so dashboards and alerts written
//! for CoreDNS work unchanged.
//!
//! Each instance owns its recorder (no global one), so several servers can run in one
//! process (tests). Handles are cheap to clone; hot paths cache them.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// `coredns_dns_requests_total{server,zone,view,proto,family,type}`.
pub const DNS_REQUESTS: &str = "coredns_dns_requests_total";
/// `coredns_dns_responses_total{server,zone,view,rcode,plugin}`.
pub const DNS_RESPONSES: &str = "coredns_dns_responses_total";
/// `coredns_dns_request_duration_seconds{server,zone,view,type}`.
pub const DNS_REQUEST_DURATION: &str = "coredns_dns_request_duration_seconds";
/// `coredns_dns_request_size_bytes{server,zone,view,proto}`.
pub const DNS_REQUEST_SIZE: &str = "coredns_dns_request_size_bytes";
/// `coredns_dns_response_size_bytes{server,zone,view,proto}`.
pub const DNS_RESPONSE_SIZE: &str = "coredns_dns_response_size_bytes";
/// `coredns_cache_entries{server,type,zones,view}` (type: success, denial).
pub const CACHE_ENTRIES: &str = "coredns_cache_entries";
/// `coredns_cache_requests_total{server,zones,view}`.
pub const CACHE_REQUESTS: &str = "coredns_cache_requests_total";
/// `coredns_cache_hits_total{server,type,zones,view}`.
pub const CACHE_HITS: &str = "coredns_cache_hits_total";
/// `coredns_cache_misses_total{server,zones,view}`.
pub const CACHE_MISSES: &str = "coredns_cache_misses_total";
/// `coredns_cache_evictions_total{server,type,zones,view}`.
pub const CACHE_EVICTIONS: &str = "coredns_cache_evictions_total";
/// `coredns_forward_requests_total{to}`.
pub const FORWARD_REQUESTS: &str = "coredns_forward_requests_total";
/// `coredns_forward_responses_total{to,rcode}`.
pub const FORWARD_RESPONSES: &str = "coredns_forward_responses_total";
/// `coredns_forward_request_duration_seconds{to,rcode}`.
pub const FORWARD_DURATION: &str = "coredns_forward_request_duration_seconds";
/// `coredns_forward_healthcheck_broken_total`: every upstream failed a query.
pub const FORWARD_BROKEN: &str = "coredns_forward_healthcheck_broken_total";
/// `coredns_forward_max_concurrent_rejects_total`.
pub const FORWARD_MAX_CONCURRENT_REJECTS: &str = "coredns_forward_max_concurrent_rejects_total";
/// `coredns_health_request_duration_seconds`.
pub const HEALTH_DURATION: &str = "coredns_health_request_duration_seconds";
/// `coredns_build_info{version,revision,goversion}`.
pub const BUILD_INFO: &str = "coredns_build_info";
/// `coredns_plugin_enabled{server,zone,view,name}`.
pub const PLUGIN_ENABLED: &str = "coredns_plugin_enabled";
/// `coredns_kubernetes_dns_programming_duration_seconds` has no meaning here; instead the
/// age of the name table: `corridor_dns_name_table_updates_total`.
pub const NAME_TABLE_UPDATES: &str = "corridor_dns_name_table_updates_total";
/// Whether the last name table said the gateway pool is available (1) or not (0).
pub const GATEWAY_AVAILABLE: &str = "corridor_dns_gateway_available";
/// xDS stream terminations by reason.
pub const XDS_STREAM_TERMINATIONS: &str = "corridor_xds_stream_terminations_total";

/// CoreDNS's duration buckets (seconds), shared by the request and forward histograms.
pub const DURATION_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];
/// CoreDNS's size buckets (bytes).
pub const SIZE_BUCKETS: &[f64] = &[
    0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16000.0, 32000.0,
    48000.0, 64000.0,
];

static METADATA: Metadata<'static> = Metadata::new("corridor_dns", metrics::Level::INFO, None);

/// The DNS server's metrics registry.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with CoreDNS's buckets.
    pub fn new() -> Arc<Self> {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in [
            (DNS_REQUEST_DURATION, DURATION_BUCKETS),
            (FORWARD_DURATION, DURATION_BUCKETS),
            (HEALTH_DURATION, DURATION_BUCKETS),
            (DNS_REQUEST_SIZE, SIZE_BUCKETS),
            (DNS_RESPONSE_SIZE, SIZE_BUCKETS),
        ] {
            // Bucket lists are non-empty constants, so the builder cannot refuse them.
            builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let m = Metrics { recorder, handle };
        m.describe();
        Arc::new(m)
    }

    fn describe(&self) {
        let help = |n: &'static str, h: &'static str| {
            self.recorder.describe_counter(
                KeyName::from_const_str(n),
                None,
                SharedString::const_str(h),
            )
        };
        help(DNS_REQUESTS, "Counter of DNS requests made per zone, protocol and family.");
        help(DNS_RESPONSES, "Counter of response status codes.");
        help(CACHE_REQUESTS, "The count of cache requests.");
        help(CACHE_HITS, "The count of cache hits.");
        help(CACHE_MISSES, "The count of cache misses.");
        help(CACHE_EVICTIONS, "The count of cache evictions.");
        help(FORWARD_REQUESTS, "Counter of requests made per upstream.");
        help(FORWARD_RESPONSES, "Counter of responses received per upstream.");
        help(FORWARD_BROKEN, "Counter of the number of complete failures of the upstreams.");
        help(FORWARD_MAX_CONCURRENT_REJECTS, "Counter of the number of queries rejected because the concurrent queries were at maximum.");
        help(NAME_TABLE_UPDATES, "Name tables received from the controller and applied.");
        help(XDS_STREAM_TERMINATIONS, "xDS streams that ended, by reason.");
        let hist = |n: &'static str, h: &'static str| {
            self.recorder.describe_histogram(
                KeyName::from_const_str(n),
                None,
                SharedString::const_str(h),
            )
        };
        hist(DNS_REQUEST_DURATION, "Histogram of the time (in seconds) each request took per zone.");
        hist(DNS_REQUEST_SIZE, "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.");
        hist(DNS_RESPONSE_SIZE, "Size of the returned response in bytes.");
        hist(FORWARD_DURATION, "Histogram of the time each request took.");
        hist(HEALTH_DURATION, "Histogram of the time (in seconds) each request took.");
        let gauge = |n: &'static str, h: &'static str| {
            self.recorder.describe_gauge(
                KeyName::from_const_str(n),
                None,
                SharedString::const_str(h),
            )
        };
        gauge(CACHE_ENTRIES, "The number of elements in the cache.");
        gauge(BUILD_INFO, "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.");
        gauge(PLUGIN_ENABLED, "A metric that indicates whether a plugin is enabled on per server and zone basis.");
        gauge(GATEWAY_AVAILABLE, "1 while the name table says the gateway pool is available, else 0.");
    }

    /// Registers (or finds) a counter.
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// Registers (or finds) a histogram.
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
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
