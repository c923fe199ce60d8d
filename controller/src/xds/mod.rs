//! The ADS server: `envoy.service.discovery.v3.AggregatedDiscoveryService`, both
//! State-of-the-World (`StreamAggregatedResources`) and Delta
//! (`DeltaAggregatedResources`), serving the latest published [`snapshot::Snapshot`].

mod delta;
pub mod pool;
pub mod snapshot;
mod sotw;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use corridor_proto::{
    envoy::service::discovery::v3::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
        aggregated_discovery_service_server::{
            AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
        },
    },
    type_url,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use pool::{GatewayPool, StreamAcks};
use snapshot::Snapshot;

/// Responses buffered per stream before the sender waits for the client to read.
const STREAM_BUFFER: usize = 16;

/// True for the types whose subscription may be a wildcard (LDS, CDS, the pod table, and
/// the name table, whose one resource a DNS replica need not know the name of).
pub(crate) fn wildcard_type(type_url: &str) -> bool {
    [
        type_url::LISTENER,
        type_url::CLUSTER,
        type_url::WORKLOAD,
        type_url::NAME_TABLE,
    ]
    .contains(&type_url)
}

/// Shared state of all streams.
#[derive(Debug, Clone)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: watch::Receiver<bool>,
    nonces: Arc<AtomicU64>,
    pool: GatewayPool,
}

impl AdsServer {
    /// A server publishing what `snapshots` holds; streams end when `shutdown` turns true.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            snapshots,
            shutdown,
            nonces: Arc::new(AtomicU64::new(0)),
            pool: GatewayPool::new(),
        }
    }

    /// Whether a gateway stream serves acknowledged listeners (see [`pool`]).
    pub fn gateway_available(&self) -> watch::Receiver<bool> {
        self.pool.available()
    }

    /// The tonic service.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

/// Fresh nonces, unique per server.
#[derive(Debug, Clone)]
pub(crate) struct Nonces(Arc<AtomicU64>);

impl Nonces {
    pub fn next(&self) -> String {
        (self.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// Where a stream's task sends its responses.
pub(crate) type Outbox<T> = mpsc::Sender<Result<T, Status>>;

/// The stream cannot continue (the client went away).
pub(crate) struct Closed;

/// One ADS stream variant (SotW or Delta): what it does with a client request and with a
/// newly published snapshot. [`drive`] runs the loop common to both.
pub(crate) trait Session: Send {
    /// The request message of this variant.
    type Request: Send;
    /// The client's node id, once known (for logs).
    fn node(&self) -> &str;
    /// Answers one request against the current snapshot.
    fn handle_request(
        &mut self,
        r: Self::Request,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), Closed>> + Send;
    /// Pushes what changed in a new snapshot.
    fn handle_snapshot(
        &mut self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), Closed>> + Send;
}

/// Serves one stream until the client leaves, the stream fails or shutdown is requested.
async fn drive<S: Session>(
    mut session: S,
    mut requests: Streaming<S::Request>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) where
    S::Request: prost::Message + Default + 'static,
{
    tracing::debug!("stream opened");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let outcome = tokio::select! {
            _ = shutdown.changed() => break,
            request = requests.message() => match request {
                Ok(Some(r)) => {
                    let snapshot = snapshots.borrow_and_update().clone();
                    session.handle_request(r, &snapshot).await
                }
                Ok(None) => { tracing::debug!(node = %session.node(), "client closed the stream"); break }
                Err(status) => { tracing::debug!(node = %session.node(), %status, "stream ended"); break }
            },
            changed = snapshots.changed() => {
                if changed.is_err() { break }
                let snapshot = snapshots.borrow_and_update().clone();
                session.handle_snapshot(&snapshot).await
            }
        };
        if outcome.is_err() {
            break;
        }
    }
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(self.open("sotw", request, sotw::SotwStream::new))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(self.open("delta", request, delta::DeltaStream::new))
    }
}

impl AdsServer {
    /// Starts serving one stream of either variant in its own task and hands tonic the
    /// receiving end of its responses.
    fn open<S, T>(
        &self,
        kind: &'static str,
        request: Request<Streaming<S::Request>>,
        new: fn(Outbox<T>, Nonces, StreamAcks) -> S,
    ) -> Response<BoxStream<T>>
    where
        S: Session + 'static,
        S::Request: prost::Message + Default + 'static,
        T: Send + 'static,
    {
        let peer = request.remote_addr();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let session = new(tx, Nonces(self.nonces.clone()), self.pool.stream());
        let span = tracing::info_span!("ads", kind, peer = ?peer);
        tokio::spawn(
            drive(
                session,
                request.into_inner(),
                self.snapshots.clone(),
                self.shutdown.clone(),
            )
            .instrument(span),
        );
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests;
