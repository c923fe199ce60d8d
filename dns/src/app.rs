//! Wiring: configuration in, a running DNS server (sockets, name-table client, HTTP
//! edges) out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use metrics::Label;
use tokio::sync::watch;

pub use crate::config::Config;
use crate::config::ConfigError;
use crate::edges::{self, EdgeAddrs, EdgeState};
use crate::forward::{self, ForwardConfig, Forwarder};
use crate::metrics::{BUILD_INFO, Metrics, PLUGIN_ENABLED};
use crate::server::{self, Handler, SharedZone};
use crate::xds::NameTableClient;
use crate::zone::ZoneOptions;

/// How long in-flight queries get to finish on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Histogram upkeep period (keeps their memory bounded between scrapes).
const UPKEEP: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source} (is another DNS server running there?)")]
    Bind {
        /// What the address is for.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running corridor-dns.
pub struct Bound {
    /// Where DNS is served (UDP and TCP).
    pub dns_addr: SocketAddr,
    /// Where `/health`, `/ready` and `/metrics` are served.
    pub edges: EdgeAddrs,
    zone: SharedZone,
    stop: watch::Sender<bool>,
    server: hickory_server::server::Server<server::TcpHandler>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("dns_addr", &self.dns_addr)
            .field("edges", &self.edges)
            .finish()
    }
}

impl Bound {
    /// Whether a name table is loaded.
    pub fn ready(&self) -> bool {
        self.zone.load().is_some()
    }

    /// What the zone answers for `name` now (`None` before the first name table), as a
    /// query over the wire would get it.
    pub fn lookup(&self, name: &hickory_server::proto::rr::Name, qtype: hickory_server::proto::rr::RecordType) -> Option<crate::zone::Lookup> {
        self.zone.load().as_deref().map(|z| z.lookup(name, qtype))
    }

    /// Stops serving: sockets close, in-flight queries get [`SHUTDOWN_GRACE`].
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        match tokio::time::timeout(SHUTDOWN_GRACE, self.server.shutdown_gracefully()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "DNS server stopped with an error"),
            Err(_) => tracing::warn!("in-flight queries did not finish in time; stopping anyway"),
        }
    }
}

/// Validates the configuration, binds every address and starts serving.
pub async fn build(config: Config) -> Result<Bound, AppError> {
    config.validate()?;
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "corridor-dns starting");
    let zone_name = config.zone_name()?;
    let metrics = Metrics::new();

    let upstreams = if config.upstreams.is_empty() {
        forward::system_upstreams()
    } else {
        config.upstreams.clone()
    };
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolvers (none given and none in /etc/resolv.conf): names outside the zone get SERVFAIL");
    }

    let (udp, tcp) = server::bind(config.listen).await.map_err(|source| AppError::Bind {
        what: "DNS",
        addr: config.listen,
        source,
    })?;
    let dns_addr = udp.local_addr().map_err(|source| AppError::Bind { what: "DNS", addr: config.listen, source })?;
    let server_label = format!("dns://:{}", dns_addr.port());

    let forward_config = ForwardConfig {
        upstreams,
        timeout: config.upstream_timeout,
        cache_capacity: config.cache_capacity,
        server_label: server_label.clone(),
        ..ForwardConfig::default()
    };
    let forwarder = Arc::new(Forwarder::new(forward_config, metrics.clone()));
    let zone: SharedZone = Arc::new(ArcSwapOption::empty());
    let (stop, stop_rx) = watch::channel(false);

    let edges = edges::start(
        EdgeAddrs { health: config.health, ready: config.ready, metrics: config.metrics },
        EdgeState { zone: zone.clone(), xds: config.xds.clone(), metrics: metrics.clone() },
        stop_rx.clone(),
    )
    .await
    .map_err(|source| AppError::Bind { what: "health/ready/metrics", addr: config.health, source })?;

    let opts = ZoneOptions {
        zone: zone_name.clone(),
        ttl: u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX),
        meshed_ttl: u32::try_from(config.meshed_ttl.as_secs()).unwrap_or(u32::MAX),
    };
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| format!("corridor-dns-{}", std::process::id()));
    let client = NameTableClient::new(config.xds.clone(), node_id, opts, zone.clone(), metrics.clone());
    tokio::spawn(client.run(stop_rx.clone()));

    describe_build(&metrics, &server_label, &zone_name.to_ascii());
    tokio::spawn(upkeep(metrics.clone(), stop_rx));

    let handler = Arc::new(Handler::new(zone.clone(), zone_name, forwarder, metrics, server_label));
    // One UDP receive loop per worker thread, so every core can answer.
    let udp_loops = config
        .worker_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let server = server::serve(handler, udp, tcp, config.tcp_idle_timeout, udp_loops, stop.subscribe());
    tracing::info!(%dns_addr, health = %edges.health, ready = %edges.ready, metrics = %edges.metrics, "serving DNS (UDP and TCP)");
    Ok(Bound { dns_addr, edges, zone, stop, server })
}

/// `coredns_build_info` and `coredns_plugin_enabled`, which dashboards key on.
fn describe_build(metrics: &Metrics, server: &str, zone: &str) {
    metrics
        .gauge(BUILD_INFO, vec![
            Label::new("version", env!("CARGO_PKG_VERSION")),
            Label::new("revision", "corridor"),
            Label::new("goversion", "rust"),
        ])
        .set(1.0);
    for (plugin, plugin_zone) in [("kubernetes", zone.to_string()), ("forward", ".".to_string()), ("cache", ".".to_string())] {
        metrics
            .gauge(PLUGIN_ENABLED, vec![
                Label::new("server", server.to_string()),
                Label::new("zone", plugin_zone),
                Label::new("view", ""),
                Label::new("name", plugin),
            ])
            .set(1.0);
    }
}

async fn upkeep(metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.upkeep(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
