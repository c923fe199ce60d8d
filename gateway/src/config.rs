//! The gateway's start-up configuration.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::telemetry::LogHandle;

/// Default admin address: localhost only, Envoy's port.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:15000";
/// Default drain deadline: long enough for typical requests, short enough for a rollout.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default share of new traces sampled: none, so requests without a `traceparent` cost
/// no tracing work unless asked for (Istio samples 1 %; set `--trace-sampling 1` for that).
pub const DEFAULT_TRACE_SAMPLING: f64 = 0.0;

/// Why an option is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration did not parse.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 500ms, 15s, 2m")]
    Duration(String),
}

/// Everything the gateway needs to start. Logged once at start-up and shown in
/// `/config_dump` (bootstrap section).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Control plane (ADS) address, `host:port` or `http://host:port`.
    pub xds_address: String,
    /// Admin listen address.
    pub admin_address: SocketAddr,
    /// Where the read-only probes (`/ready`, `/healthz`, `/metrics`) listen for kubelet and
    /// Prometheus, apart from the full admin API; `None`: only on the admin address.
    pub probe_address: Option<SocketAddr>,
    /// Node id sent to the control plane.
    pub node_id: String,
    /// How long in-flight requests may take to finish on shutdown.
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,
    /// Log filter at start-up.
    pub log_level: String,
    /// Tokio worker threads (`None`: one per core). Read by the binary, shown for the record.
    pub worker_threads: Option<usize>,
    /// Largest Dubbo or Thrift message accepted, framing included; a larger one gets the
    /// protocol's error and its connection is closed.
    pub max_rpc_message_bytes: usize,
    /// Largest Redis command accepted from a client; a larger one gets a protocol error
    /// and its connection is closed.
    pub max_redis_request_bytes: usize,
    /// The zone the gateway runs in (`topology.kubernetes.io/zone` of its node); clusters
    /// with zone-aware balancing prefer endpoints in it. Empty: no preference.
    pub zone: String,
    /// Where finished sampled spans go, over OTLP/gRPC (`host:port` or
    /// `http://host:port`); `None`: spans are not exported (traceparent still
    /// propagates).
    pub otlp_endpoint: Option<String>,
    /// Percentage (0 to 100) of requests without a `traceparent` that start a sampled
    /// trace. Requests bringing one keep their caller's decision.
    pub trace_sampling: f64,
    /// Runtime log-level control, when the process installed a reloadable subscriber.
    #[serde(skip)]
    pub log_handle: Option<LogHandle>,
}

impl Config {
    /// A configuration with defaults for everything but the control plane address.
    pub fn new(xds_address: impl Into<String>) -> Self {
        Config {
            xds_address: xds_address.into(),
            admin_address: SocketAddr::from(([127, 0, 0, 1], 15000)),
            probe_address: None,
            node_id: default_node_id(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            log_level: DEFAULT_LOG_LEVEL.into(),
            worker_threads: None,
            max_rpc_message_bytes: crate::codec::DEFAULT_MAX_MESSAGE,
            max_redis_request_bytes: crate::proxy::redis::downstream::DEFAULT_MAX_REQUEST,
            zone: String::new(),
            otlp_endpoint: None,
            trace_sampling: DEFAULT_TRACE_SAMPLING,
            log_handle: None,
        }
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{d:?}"))
}

/// `hostname-pid`, unique per replica and per process.
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}-{}", std::process::id())
}

/// Parses `500ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| ConfigError::Duration(s.into()))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(ConfigError::Duration(s.into())),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| ConfigError::Duration(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
