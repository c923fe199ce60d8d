//! Wiring: builds every part of the gateway from a [`Config`] and hands back the bound
//! addresses and a shutdown handle.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

pub use crate::config::Config;

use crate::admin::{self, AdminState};
use crate::cluster::Snapshot;
use crate::drain::{self, DrainTrigger};
use crate::listener::ListenerManager;
use crate::proxy::Shared;
use crate::readiness::Ready;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otlp::{Exporter, OtlpError};
use crate::telemetry::trace::Tracer;
use crate::xds::{ConfigStore, XdsClient, XdsConfig, XdsState};

/// How often histogram buffers are folded (keeps memory flat under load).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The admin address could not be bound.
    #[error("cannot bind the admin address {addr}: {source}")]
    AdminBind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The OTLP endpoint is unusable.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
}

/// Binds an admin-protocol address, returning the listener and the bound address.
async fn bind_admin(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), AppError> {
    let bind_error = |source| AppError::AdminBind { addr, source };
    let listener = admin::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// A running gateway.
#[derive(Debug)]
pub struct Bound {
    /// Where the admin server listens.
    pub admin_addr: SocketAddr,
    /// Where the read-only probe endpoints listen (`--probe-listen`), when asked for.
    pub probe_addr: Option<SocketAddr>,
    listeners: Arc<ListenerManager>,
    ready: Ready,
    stop: DrainTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl Bound {
    /// Drains (stop accepting, let in-flight requests and connections finish up to the
    /// drain timeout), then stops the xDS client and the admin server.
    pub async fn shutdown(self) {
        tracing::info!("draining");
        self.listeners.drain_all().await;
        self.stop.drain();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        tracing::info!("drained; bye");
    }

    /// Bound listeners (name, address).
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.bound()
    }

    /// Readiness (pending tasks).
    pub fn ready(&self) -> &Ready {
        &self.ready
    }
}

/// The tracer `config` asks for (an OTLP exporter with `--otlp-endpoint`).
fn tracer(config: &Config, metrics: &Metrics) -> Result<Tracer, AppError> {
    let exporter = match &config.otlp_endpoint {
        Some(endpoint) => Some(Exporter::spawn(endpoint, metrics)?),
        None => None,
    };
    Ok(Tracer::new(config.trace_sampling, exporter))
}

/// Starts the gateway: admin server, xDS client, listener manager.
pub async fn build(config: Config) -> Result<Bound, AppError> {
    let bootstrap = serde_json::to_value(&config).unwrap_or_default();
    tracing::info!(config = %bootstrap, "corridor-gateway starting");

    let metrics = Metrics::new();
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let shared = Arc::new(Shared {
        snapshot: snapshot.clone(),
        metrics: metrics.clone(),
        max_rpc_message_bytes: config.max_rpc_message_bytes,
        rls: Default::default(),
        max_redis_request_bytes: config.max_redis_request_bytes,
        zone: Arc::from(config.zone.as_str()),
        tracer: Arc::new(tracer(&config, &metrics)?),
    });
    let listeners = Arc::new(ListenerManager::new(shared, config.drain_timeout));
    let store = Arc::new(Mutex::new(ConfigStore::default()));
    let ready = Ready::new();
    let xds_ready = ready.register_task("xds: waiting for lds, cds");
    let (stop, stop_watch) = drain::channel();

    let (admin_listener, admin_addr) = bind_admin(config.admin_address).await?;
    let probes = match config.probe_address {
        Some(addr) => Some(bind_admin(addr).await?),
        None => None,
    };

    let drain_listeners = listeners.clone();
    let admin_state = Arc::new(AdminState {
        bootstrap,
        ready: ready.clone(),
        store: store.clone(),
        snapshot: snapshot.clone(),
        listeners: listeners.clone(),
        metrics: metrics.clone(),
        log: config.log_handle.clone(),
        start_drain: Box::new(move || {
            let l = drain_listeners.clone();
            tokio::spawn(async move { l.drain_all().await });
        }),
    });

    let state = XdsState {
        store,
        snapshot,
        listeners: listeners.clone(),
    };
    let xds = XdsClient::new(
        XdsConfig {
            address: config.xds_address.clone(),
            node_id: config.node_id.clone(),
        },
        state,
        metrics.clone(),
        xds_ready,
        stop_watch.clone(),
    );
    let mut tasks = vec![tokio::spawn(xds.run())];
    let probe_addr = probes.as_ref().map(|(_, addr)| *addr);
    if let Some((listener, _)) = probes {
        tasks.push(tokio::spawn(admin::serve(
            listener,
            admin_state.clone(),
            admin::Scope::Probes,
            stop_watch.clone(),
        )));
    }
    tasks.push(tokio::spawn(admin::serve(
        admin_listener,
        admin_state,
        admin::Scope::Full,
        stop_watch.clone(),
    )));
    let upkeep_stop = stop_watch.clone();
    tasks.push(tokio::spawn(async move {
        let stopped = upkeep_stop.signaled();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tick.tick() => metrics.upkeep(),
            }
        }
    }));
    tracing::info!(admin = %admin_addr, xds = %config.xds_address, node = %config.node_id, "corridor-gateway bound");
    Ok(Bound {
        admin_addr,
        probe_addr,
        listeners,
        ready,
        stop,
        tasks,
    })
}
