//! corridor-dns's configuration: command-line flags, their defaults, and validation.

use std::{net::SocketAddr, time::Duration};

use hickory_server::proto::rr::Name;
use serde::Serialize;

/// Default DNS address: CoreDNS's port in a cluster is 53; locally (`corridor up`) 5353.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:53";
/// Default xDS address: the controller's port (DESIGN §11).
pub const DEFAULT_XDS: &str = "127.0.0.1:15010";
/// CoreDNS's `health` plugin address, which liveness probes expect.
pub const DEFAULT_HEALTH: &str = "0.0.0.0:8080";
/// CoreDNS's `ready` plugin address, which readiness probes expect.
pub const DEFAULT_READY: &str = "0.0.0.0:8181";
/// CoreDNS's `prometheus` plugin address, which ServiceMonitors expect.
pub const DEFAULT_METRICS: &str = "0.0.0.0:9153";
/// Default cluster zone.
pub const DEFAULT_ZONE: &str = "cluster.local";
/// TTL of ordinary records (issue: 30 s; the SOA's negative TTL too).
pub const DEFAULT_TTL: &str = "30s";
/// TTL of a meshed service's records: short, so clients follow a fail-open (and its end)
/// within seconds.
pub const DEFAULT_MESHED_TTL: &str = "5s";
/// Budget for answering a forwarded query: below the 5 s a glibc stub waits before it
/// retries, so a client sees our SERVFAIL rather than its own timeout.
pub const DEFAULT_UPSTREAM_TIMEOUT: &str = "2s";
/// Cached upstream answers (CoreDNS's cache plugin holds 9984 per kind by default).
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Idle TCP connections are closed after this long (CoreDNS uses 10 s for reads).
pub const DEFAULT_TCP_IDLE: &str = "10s";
/// Default log filter: the server's own info lines, but not hickory's per-query lines.
pub const DEFAULT_LOG_LEVEL: &str = "info,hickory_server=warn,hickory_proto=warn";

/// Everything corridor-dns needs to run. Logged once at start-up.
#[derive(Debug, Clone, Serialize, clap::Parser)]
#[command(
    name = "corridor-dns",
    version,
    about = "Corridor's cluster DNS: CoreDNS-compatible, fed by the controller's name table"
)]
pub struct Config {
    /// Controller (ADS) address, e.g. 127.0.0.1:15010.
    #[arg(long, env = "CORRIDOR_XDS", default_value = DEFAULT_XDS)]
    pub xds: String,
    /// DNS address, served over UDP and TCP on the same port (port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Upstream resolvers for names outside the zone (`ip:port` or `ip`, repeatable;
    /// default: the nameservers of /etc/resolv.conf).
    #[arg(long = "upstream", value_parser = parse_upstream)]
    pub upstreams: Vec<SocketAddr>,
    /// The cluster zone.
    #[arg(long, default_value = DEFAULT_ZONE)]
    pub zone: String,
    /// Liveness endpoint (`GET /health`), as CoreDNS's health plugin.
    #[arg(long, default_value = DEFAULT_HEALTH)]
    pub health: SocketAddr,
    /// Readiness endpoint (`GET /ready`: 200 once a name table is loaded).
    #[arg(long, default_value = DEFAULT_READY)]
    pub ready: SocketAddr,
    /// Prometheus endpoint (`GET /metrics`).
    #[arg(long, default_value = DEFAULT_METRICS)]
    pub metrics: SocketAddr,
    /// TTL of ordinary records.
    #[arg(long, default_value = DEFAULT_TTL, value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub ttl: Duration,
    /// TTL of meshed services' records (rewritten or failed open).
    #[arg(long, default_value = DEFAULT_MESHED_TTL, value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub meshed_ttl: Duration,
    /// Budget for a forwarded query across every upstream; past it the answer is SERVFAIL.
    #[arg(long, default_value = DEFAULT_UPSTREAM_TIMEOUT, value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub upstream_timeout: Duration,
    /// Most upstream answers kept in the cache.
    #[arg(long, default_value_t = DEFAULT_CACHE_CAPACITY)]
    pub cache_capacity: usize,
    /// Idle TCP connections are closed after this long.
    #[arg(long, default_value = DEFAULT_TCP_IDLE, value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub tcp_idle_timeout: Duration,
    /// Node id sent to the controller (default: corridor-dns-<pid>).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Tokio worker threads (default: one per core; 1 runs a single-threaded runtime).
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, default_value = DEFAULT_LOG_LEVEL, env = "RUST_LOG")]
    pub log_level: String,
}

/// Durations as humantime strings in the start-up log line.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration (like 5s or 500ms): {e}"))
}

/// `ip:port`, or a bare IP meaning port 53.
fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an upstream address (ip or ip:port)"))
}

/// Options that parse but cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// A configuration with every default, fed from `xds` and serving DNS on `listen`
    /// (the HTTP edges on free loopback ports, for tests).
    pub fn new(xds: impl Into<String>, listen: SocketAddr) -> Self {
        use clap::Parser;
        let mut c = Config::parse_from(["corridor-dns"]);
        c.xds = xds.into();
        c.listen = listen;
        let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.health = local;
        c.ready = local;
        c.metrics = local;
        c
    }

    /// The zone as a fully qualified, lowercase DNS name.
    pub fn zone_name(&self) -> Result<Name, ConfigError> {
        let mut n = Name::from_ascii(self.zone.trim_end_matches('.'))
            .map_err(|e| ConfigError(vec![format!("--zone {:?}: {e}", self.zone)]))?
            .to_lowercase();
        n.set_fqdn(true);
        Ok(n)
    }

    /// Checks everything, reporting all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(ConfigError(p)) = self.zone_name() {
            problems.extend(p);
        }
        if self.zone.trim_matches('.').is_empty() {
            problems.push("--zone must not be empty (the root zone cannot be the cluster zone)".into());
        }
        if self.ttl.as_secs() == 0 || self.meshed_ttl.as_secs() == 0 {
            problems.push("--ttl and --meshed-ttl must be at least 1s".into());
        }
        if self.ttl.as_secs() > u64::from(u32::MAX) || self.meshed_ttl.as_secs() > u64::from(u32::MAX) {
            problems.push("--ttl and --meshed-ttl must fit a 32-bit number of seconds".into());
        }
        if self.upstream_timeout.is_zero() {
            problems.push("--upstream-timeout must be positive".into());
        }
        if self.worker_threads == Some(0) {
            problems.push("--worker-threads must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_coredns_ports_and_issue_ttls() {
        let c = Config::parse_from(["corridor-dns"]);
        assert_eq!(c.listen.port(), 53);
        assert_eq!(c.health.port(), 8080);
        assert_eq!(c.ready.port(), 8181);
        assert_eq!(c.metrics.port(), 9153);
        assert_eq!(c.ttl, Duration::from_secs(30));
        assert_eq!(c.meshed_ttl, Duration::from_secs(5));
        assert_eq!(c.zone_name().unwrap().to_ascii(), "cluster.local.");
        c.validate().unwrap();
    }

    #[test]
    fn upstreams_accept_bare_ips_and_every_problem_is_reported() {
        let c = Config::parse_from([
            "corridor-dns", "--upstream", "10.0.0.10", "--upstream", "[::1]:5300",
            "--zone", "Corp.Example.", "--ttl", "0s", "--upstream-timeout", "0s",
        ]);
        assert_eq!(c.upstreams[0], "10.0.0.10:53".parse().unwrap());
        assert_eq!(c.upstreams[1], "[::1]:5300".parse().unwrap());
        assert_eq!(c.zone_name().unwrap().to_ascii(), "corp.example.");
        let err = c.validate().unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(Config::try_parse_from(["corridor-dns", "--upstream", "resolver"]).is_err());
    }
}
