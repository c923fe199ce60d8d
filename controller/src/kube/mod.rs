//! The controller's Kubernetes side (`--kubernetes`): watches that fill the same store
//! the manifests directory fills ([`watch`], [`reflect`], [`source`]), the gateway pods
//! that drive fail-open ([`gateway`]), leader election ([`lease`]), and what the leader
//! writes: status conditions ([`status`]), and, through [`leader`], the gateway address
//! Services and the CoreDNS hook of [`crate::cluster`].

pub mod apis;
pub mod gateway;
pub mod leader;
pub mod lease;
pub mod reflect;
pub mod source;
pub mod status;
pub mod watch;

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fake;
#[cfg(test)]
mod tests;

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use ::kube::Client;
use tokio::{sync::watch as channel, task::JoinHandle};

use crate::{
    admission::Verdicts,
    config::Config,
    probe::{Metrics, Readiness},
    source::Triggers,
    store::Store,
};
use leader::LeaderContext;
use lease::{LEASE_DURATION, LeaseConfig, RENEW_PERIOD};
use source::{KubeSource, Watches};

/// How often start-up names the APIs it still waits for.
const SYNC_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why cluster mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig and not in a pod.
    #[error(
        "cannot find the Kubernetes API: {0} (set KUBECONFIG, or run in a pod with a service account)"
    )]
    Config(#[source] ::kube::config::InferConfigError),
    /// The client cannot be built from the configuration found.
    #[error(
        "cannot build a Kubernetes client: {0} (check the kubeconfig's cluster and credentials)"
    )]
    Client(#[source] ::kube::Error),
    /// A cluster setting is unusable.
    #[error("{0}")]
    Settings(String),
    /// The CoreDNS hook could not be changed.
    #[error(transparent)]
    Hook(Box<crate::cluster::hook::HookError>),
}

/// A client for the API the environment names (KUBECONFIG, ~/.kube/config, or the
/// in-cluster service account).
pub async fn connect() -> Result<Client, KubeError> {
    let config = ::kube::Config::infer().await.map_err(KubeError::Config)?;
    Client::try_from(config).map_err(KubeError::Client)
}

/// Cluster mode, with every API listed once.
pub struct Cluster {
    client: Client,
    config: Config,
    watches: Watches,
    metrics: Arc<Metrics>,
}

/// The cluster-mode tasks that run beside the pipeline.
#[derive(Debug)]
pub struct Running {
    /// Whether some gateway pod is available (fail-open input).
    pub gateway_available: channel::Receiver<bool>,
    /// Whether this replica leads.
    pub leader: channel::Receiver<bool>,
    /// The tasks; they end on shutdown.
    pub tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Connects, starts the watches and waits until every API has been listed once (or
    /// found off), so the first snapshot is complete.
    pub async fn start(
        config: &Config,
        readiness: &Arc<Readiness>,
        metrics: Arc<Metrics>,
        shutdown: channel::Receiver<bool>,
    ) -> Result<Cluster, KubeError> {
        let client = connect().await?;
        Self::start_with(
            client,
            config,
            readiness,
            metrics,
            watch::WatchOptions::default(),
            shutdown,
        )
        .await
    }

    /// [`Cluster::start`] with a given client and watch options.
    pub async fn start_with(
        client: Client,
        config: &Config,
        readiness: &Arc<Readiness>,
        metrics: Arc<Metrics>,
        opts: watch::WatchOptions,
        shutdown: channel::Receiver<bool>,
    ) -> Result<Cluster, KubeError> {
        metrics.cluster_mode.store(true, Ordering::Relaxed);
        let mut watches =
            Watches::start(client.clone(), readiness, metrics.clone(), opts, shutdown);
        watches.synced(SYNC_REPORT_EVERY).await;
        tracing::info!("initial lists complete");
        Ok(Cluster {
            client,
            config: config.clone(),
            watches,
            metrics,
        })
    }

    /// The pipeline's source and its triggers.
    pub fn source(&mut self, debounce: Duration) -> (KubeSource, Triggers) {
        self.watches.source(debounce)
    }

    /// Starts the gateway pod watch, the election and the leader's writers.
    pub fn run_writers(
        self,
        stores: channel::Receiver<Arc<Store>>,
        verdicts: channel::Receiver<Arc<Verdicts>>,
        shutdown: channel::Receiver<bool>,
    ) -> Running {
        let Cluster {
            client,
            config,
            watches,
            metrics,
        } = self;
        let mut tasks = vec![watches.task];
        let (gateway_available, task) = gateway::watch_gateway_pods(
            client.clone(),
            &config.namespace,
            &config.cluster.gateway_selector,
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.push(task);
        let lease = LeaseConfig {
            namespace: config.namespace.clone(),
            name: config.cluster.lease_name.clone(),
            identity: config.cluster.identity().unwrap_or_default(),
            duration: LEASE_DURATION,
            renew: RENEW_PERIOD,
        };
        let (leader, task) = lease::elect(client.clone(), lease, shutdown.clone());
        tasks.push(task);
        tasks.push(mirror_leader(leader.clone(), metrics, shutdown.clone()));
        tasks.push(status::write_status(
            client.clone(),
            watches.shared.clone(),
            verdicts,
            leader.clone(),
            shutdown.clone(),
        ));
        let ctx = LeaderContext {
            client,
            leader: leader.clone(),
            stores,
            namespace: config.namespace.clone(),
            cluster_domain: config.cluster_domain.clone(),
            cluster: config.cluster.clone(),
            shutdown,
        };
        match leader::keep_address_services(ctx.clone()) {
            Ok(task) => tasks.push(task),
            Err(e) => tracing::error!(error = %e, "address Services are not written"),
        }
        match leader::keep_coredns_hook(ctx) {
            Ok(task) => tasks.extend(task),
            Err(e) => tracing::error!(error = %e, "the CoreDNS hook is not kept"),
        }
        Running {
            gateway_available,
            leader,
            tasks,
        }
    }
}

/// Keeps the leader gauge in step with the election.
fn mirror_leader(
    mut leader: channel::Receiver<bool>,
    metrics: Arc<Metrics>,
    mut shutdown: channel::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            metrics
                .leader
                .store(*leader.borrow_and_update(), Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                r = leader.changed() => if r.is_err() { return },
            }
        }
    })
}
