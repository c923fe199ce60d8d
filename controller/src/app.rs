//! Wiring: configuration in, a running controller (file source + ADS server) out.
//!
//! ```text
//! manifests ─▶ source::run ─▶ source snapshots ─┐
//!                                               ├─▶ availability::run ─▶ served snapshots ─▶ ADS
//! gateway streams' listener ACKs ─▶ pool ───────┘
//! ```

use std::{collections::BTreeMap, net::Ipv4Addr, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

pub use crate::config::Config;
use crate::{
    availability,
    config::ConfigError,
    source::{self, Pipeline, file::ManifestDir},
    translate::{TranslateOptions, service_host},
    xds::{AdsServer, snapshot::Snapshot},
};

/// How long open xDS streams get to close after shutdown is requested before the server
/// stops anyway.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive on xDS connections, so a vanished client's stream is reclaimed.
pub const XDS_KEEPALIVE: Duration = Duration::from_secs(30);

/// Why the controller could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The xDS address could not be bound.
    #[error("cannot listen on {addr} for xDS: {source} (is another controller running there?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("xDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// A background task panicked.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Asks a running controller to stop.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Starts a graceful shutdown (idempotent).
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// A running controller.
#[derive(Debug)]
pub struct Bound {
    /// Where the ADS server listens.
    pub xds_addr: SocketAddr,
    shutdown: ShutdownHandle,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    gateway_available: watch::Receiver<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    source: JoinHandle<()>,
    stamper: JoinHandle<()>,
}

impl Bound {
    /// A handle that can stop the controller from elsewhere (a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The served snapshots (the latest one, and change notifications), with the gateway
    /// pool's availability stamped on the name table.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// Whether the gateway pool can take traffic: true while at least one gateway stream
    /// serves listeners it acknowledged (see [`crate::xds::pool`]).
    pub fn gateway_available(&self) -> watch::Receiver<bool> {
        self.gateway_available.clone()
    }

    /// Stops gracefully and waits until everything has ended.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.shutdown.shutdown();
        self.wait().await
    }

    /// Waits until the controller ends (after a shutdown request, or on a server failure).
    pub async fn wait(self) -> Result<(), AppError> {
        let served = self.server.await;
        self.shutdown.shutdown();
        self.source.await?;
        self.stamper.await?;
        served??;
        Ok(())
    }
}

/// Translation options derived from the configuration.
pub fn translate_options(config: &Config) -> TranslateOptions {
    TranslateOptions {
        addressing: crate::translate::Addressing::File { gateway_cidr: config.gateway_cidr },
        cluster_domain: config.cluster_domain.clone(),
        own_namespace: config.namespace.clone(),
    }
}

/// Gateway address of every meshed service the manifests define, by host name (for
/// tools that tell users where to send requests).
pub fn service_addresses(config: &Config) -> BTreeMap<String, Ipv4Addr> {
    let mut dir = ManifestDir::new(&config.manifests);
    dir.rescan();
    let (store, _) = dir.store();
    let opts = translate_options(config);
    crate::translate::gateway_addresses(&store, &opts)
        .into_iter()
        .map(|(k, a)| (service_host(&k, &opts.cluster_domain), a))
        .collect()
}

/// Validates the configuration, loads the manifests, binds the xDS address and starts
/// serving. The first snapshot is complete before the first client can connect.
pub async fn build(config: Config) -> Result<Bound, AppError> {
    config.validate()?;
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "corridor-controller starting");

    let opts = translate_options(&config);
    let mut pipeline = Pipeline::new(ManifestDir::new(&config.manifests), opts);
    let (pipeline, first) = tokio::task::spawn_blocking(move || {
        pipeline.refresh();
        let snapshot = pipeline.translate();
        (pipeline, snapshot)
    })
    .await?;
    tracing::info!(resources = %first.summary(), "initial snapshot");
    let (source_tx, source_rx) = watch::channel(Arc::new(first));

    let listener = TcpListener::bind(config.xds_listen)
        .await
        .map_err(|source| AppError::Bind {
            addr: config.xds_listen,
            source,
        })?;
    let xds_addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: config.xds_listen,
        source,
    })?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown = ShutdownHandle(Arc::new(shutdown_tx));

    let source = tokio::spawn(source::run(
        pipeline,
        source_tx,
        Duration::from_millis(config.debounce_ms),
        Duration::from_millis(config.rescan_ms),
        shutdown_rx.clone(),
    ));

    // Stamped before the server starts, so no client ever sees an unstamped table.
    let (served_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let ads = AdsServer::new(snapshots.clone(), shutdown_rx.clone());
    let gateway_available = ads.gateway_available();
    served_tx.send_replace(availability::stamp(
        &source_rx.borrow(),
        *gateway_available.borrow(),
    ));
    let stamper = tokio::spawn(availability::run(
        source_rx,
        gateway_available.clone(),
        served_tx,
        shutdown_rx.clone(),
    ));
    let mut stop = shutdown_rx;
    let serve = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(XDS_KEEPALIVE))
        .add_service(ads.into_service())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop.wait_for(|v| *v).await;
        });
    let mut deadline = shutdown.0.subscribe();
    let server = tokio::spawn(async move {
        tokio::select! {
            r = serve => r,
            _ = async {
                let _ = deadline.wait_for(|v| *v).await;
                tokio::time::sleep(DRAIN_DEADLINE).await;
            } => {
                tracing::warn!("xDS streams did not close in time; stopping anyway");
                Ok(())
            }
        }
    });
    tracing::info!(%xds_addr, "serving ADS (SotW and Delta)");
    Ok(Bound {
        xds_addr,
        shutdown,
        snapshots,
        gateway_available,
        server,
        source,
        stamper,
    })
}
