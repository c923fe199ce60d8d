//! Wiring: configuration in, a running controller out.
//!
//! ```text
//! manifests dir ─┐                                  ┌─ gateway streams' listener ACKs (file mode)
//!  or watches  ──┴▶ source::run ─▶ source snapshots ─┤   or gateway pods' readiness (cluster mode)
//!                                                   └▶ availability::run ─▶ served snapshots ─▶ ADS
//! cluster mode, leader only: status conditions (kube::status), address Services and the
//! CoreDNS hook (kube::leader, calling crate::cluster)
//! ```

use std::{collections::BTreeMap, net::Ipv4Addr, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

pub use crate::config::Config;
use crate::{
    availability,
    config::ConfigError,
    kube::{self as cluster_mode, KubeError},
    probe::{self, Metrics, Readiness},
    source::{self, Pipeline, Triggers, file::ManifestDir},
    translate::{Addressing, TranslateOptions, service_host},
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
    /// An address could not be bound.
    #[error("cannot listen on {addr} for {what}: {source} (is another controller running there?)")]
    Bind {
        /// xDS or probes.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Kubernetes API cannot be used.
    #[error(transparent)]
    Kube(#[from] KubeError),
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
    /// Where the probes are served, when `--probe-listen` is given.
    pub probe_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    gateway_available: watch::Receiver<bool>,
    leader: watch::Receiver<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    tasks: Vec<JoinHandle<()>>,
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

    /// Whether the gateway pool can take traffic: in file mode, true while at least one
    /// gateway stream serves listeners it acknowledged (see [`crate::xds::pool`]); in
    /// cluster mode, while at least one gateway pod is Ready and not terminating.
    pub fn gateway_available(&self) -> watch::Receiver<bool> {
        self.gateway_available.clone()
    }

    /// Whether this replica leads (holds the Lease) and so writes to the API; always
    /// true in file mode, where nothing is written.
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
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
        for task in self.tasks {
            task.await?;
        }
        served??;
        Ok(())
    }
}

/// Translation options derived from the configuration.
pub fn translate_options(config: &Config) -> TranslateOptions {
    let addressing = if config.kubernetes {
        Addressing::Cluster
    } else {
        Addressing::File {
            gateway_cidr: config.gateway_cidr,
        }
    };
    TranslateOptions {
        addressing,
        cluster_domain: config.cluster_domain.clone(),
        own_namespace: config.namespace.clone(),
        trust_domain: config.trust_domain.clone(),
        root_namespace: config.root_namespace.clone(),
    }
}

/// Gateway address of every meshed service the manifests define, by host name (for
/// tools that tell users where to send requests). Empty in cluster mode.
pub fn service_addresses(config: &Config) -> BTreeMap<String, Ipv4Addr> {
    let Some(manifests) = &config.manifests else {
        return BTreeMap::new();
    };
    let mut dir = ManifestDir::new(manifests);
    dir.rescan();
    let (store, _) = dir.store();
    let opts = translate_options(config);
    crate::translate::gateway_addresses(&store, &opts)
        .into_iter()
        .map(|(k, a)| (service_host(&k, &opts.cluster_domain), a))
        .collect()
}

/// Removes the CoreDNS hook and returns (`--uninstall-coredns-hook`).
pub async fn uninstall_coredns_hook(config: &Config) -> Result<(), AppError> {
    let client = cluster_mode::connect().await?;
    cluster_mode::leader::remove_coredns_hook(client, &config.cluster).await?;
    Ok(())
}

/// Validates the configuration, reads the source (the manifests, or every watched API
/// once), binds the xDS address and starts serving. The first snapshot is complete before
/// the first client can connect.
pub async fn build(config: Config) -> Result<Bound, AppError> {
    config.validate()?;
    tracing::info!(config = %serde_json::to_string(&config).unwrap_or_default(), "corridor-controller starting");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown = ShutdownHandle(Arc::new(shutdown_tx));
    let readiness = Arc::new(Readiness::default());
    let metrics = Arc::new(Metrics::default());
    let first_snapshot = readiness.task("first snapshot");
    let mut tasks = Vec::new();

    // Probes first, so that /healthz answers while the initial lists load.
    let mut probe_addr = None;
    if let Some(addr) = config.probe_listen {
        let (listener, bound) = probe::bind(addr).await.map_err(|source| AppError::Bind {
            what: "probes",
            addr,
            source,
        })?;
        tasks.push(probe::serve(
            listener,
            readiness.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        ));
        tracing::info!(%bound, "serving probes (/ready, /healthz, /metrics)");
        probe_addr = Some(bound);
    }

    let opts = translate_options(&config);
    let debounce = Duration::from_millis(config.debounce_ms);
    let (pipeline, triggers, cluster) = if config.kubernetes {
        let mut cluster =
            cluster_mode::Cluster::start(&config, &readiness, metrics.clone(), shutdown_rx.clone())
                .await?;
        let (source, triggers) = cluster.source(debounce);
        (Pipeline::new(source, opts), triggers, Some(cluster))
    } else {
        let root = config.manifests.clone().unwrap_or_default();
        let (watcher, changes) = source::file::watch(&root);
        let triggers = Triggers {
            changes,
            debounce,
            rescan: Some(Duration::from_millis(config.rescan_ms)),
        };
        let pipeline = Pipeline::new(ManifestDir::new(root), opts);
        // The file watcher lives until shutdown.
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _watcher = watcher;
            let _ = stop.wait_for(|v| *v).await;
        }));
        (pipeline, triggers, None)
    };
    let stores = pipeline.stores();
    let verdicts = pipeline.verdicts();
    let (pipeline, first) = tokio::task::spawn_blocking(move || {
        let mut pipeline = pipeline;
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
            what: "xDS",
            addr: config.xds_listen,
            source,
        })?;
    let xds_addr = listener.local_addr().map_err(|source| AppError::Bind {
        what: "xDS",
        addr: config.xds_listen,
        source,
    })?;

    tasks.push(tokio::spawn(source::run(
        pipeline,
        source_tx,
        triggers,
        metrics.clone(),
        shutdown_rx.clone(),
    )));

    // Stamped before the server starts, so no client ever sees an unstamped table.
    let (served_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
    let ads = AdsServer::new(snapshots.clone(), shutdown_rx.clone());
    let (gateway_available, leader) = match cluster {
        Some(cluster) => {
            let running = cluster.run_writers(stores, verdicts, shutdown_rx.clone());
            tasks.extend(running.tasks);
            (running.gateway_available, running.leader)
        }
        None => (ads.gateway_available(), watch::channel(true).1),
    };
    served_tx.send_replace(availability::stamp(
        &source_rx.borrow(),
        *gateway_available.borrow(),
    ));
    tasks.push(tokio::spawn(availability::run(
        source_rx,
        gateway_available.clone(),
        served_tx,
        shutdown_rx.clone(),
    )));
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
    first_snapshot.done();
    tracing::info!(%xds_addr, "serving ADS (SotW and Delta)");
    Ok(Bound {
        xds_addr,
        probe_addr,
        shutdown,
        snapshots,
        gateway_available,
        leader,
        server,
        tasks,
    })
}
