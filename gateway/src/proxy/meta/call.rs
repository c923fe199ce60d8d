//! One call of a codec-based protocol, the same for every codec: admission (rate limits),
//! routing, mirrors, then tries on the route's cluster under its timeout and retry
//! policy, and the answer re-encoded under the caller's request id — or a local reply in
//! the protocol's own error form.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::upstream::{Multiplexed, UpstreamError};
use crate::cluster::{ClusterState, Endpoint};
use crate::codec::{Codec, Edit, Frame, MessageType, Metadata};
use crate::model::route::RetryPolicy;
use crate::policy;
use crate::policy::chain::Check;
use crate::policy::reject::{Reject, RejectKind};
use crate::policy::request::Source;
use crate::policy::route::RoutePolicy;
use crate::proxy::attempts::{self, Plan, Transport, TryError};
use crate::proxy::exchange::{ClusterActive, EndpointActive};
use crate::proxy::retry::{self, RetryActive, TryFailure};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::record::PeerRef;
use crate::telemetry::tcp::TcpMetrics;
use crate::telemetry::trace::{Span, TRACEPARENT};

/// Where a request goes, as the route decided.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The route's name (logs, metrics).
    pub route: Arc<str>,
    /// The cluster picked.
    pub cluster: Arc<str>,
    /// Attributes to write into the request.
    pub request_edit: Edit,
    /// Attributes to write into the response.
    pub response_edit: Edit,
    /// Whole-call timeout, across retries; `None` waits as long as the connection lives.
    pub timeout: Option<Duration>,
    /// Retries, if the route has a policy.
    pub retry: Option<RetryPolicy>,
    /// Clusters that get a copy of this request (already sampled by their fractions).
    pub mirrors: Vec<Arc<str>>,
    /// The route's policies, as the request filters read them (a fault rule, ...).
    pub policy: Arc<RoutePolicy>,
}

/// How a call ended, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The upstream answered; its outcome in HTTP's terms (`Codec::http_status`). A
    /// one-way call that was written counts as 200.
    Answered(u16),
    /// The gateway answered itself (or, for a one-way call, dropped it), for this reason.
    Local(RejectKind),
}

/// One finished call, for telemetry.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// How it ended.
    pub outcome: CallOutcome,
    /// The route that matched, if any.
    pub route: Option<Arc<str>>,
    /// The cluster picked, if any.
    pub cluster: Option<Arc<str>>,
    /// The upstream endpoint of the last try, if any.
    pub upstream: Option<SocketAddr>,
    /// Tries after the first.
    pub retries: u32,
    /// Response flags the request filters marked (`DI` for an injected delay).
    pub flags: u16,
    /// From the request's arrival to its answer.
    pub took: Duration,
    /// Bytes of the request as received.
    pub request_bytes: usize,
    /// Bytes of the answer sent (0 for one-way calls).
    pub response_bytes: usize,
    /// The outcome in the protocol's own terms (`Codec::response_code`).
    pub response_code: u16,
    /// The calling workload.
    pub source: PeerRef,
    /// The workload of the endpoint of the last try.
    pub destination: PeerRef,
    /// The gateway's span, when the call is traced.
    pub span: Option<Span>,
}

impl CallRecord {
    /// A record for a request of `request_bytes` not yet handled.
    pub fn new(request_bytes: usize) -> CallRecord {
        CallRecord {
            outcome: CallOutcome::Local(RejectKind::Internal),
            route: None,
            cluster: None,
            upstream: None,
            retries: 0,
            flags: 0,
            took: Duration::ZERO,
            request_bytes,
            response_bytes: 0,
            response_code: 0,
            source: PeerRef::unknown(),
            destination: PeerRef::unknown(),
            span: None,
        }
    }
}

/// A connection for one try, counting the try as active on its endpoint (least-request
/// balancing reads that) while held.
#[derive(Debug)]
pub struct Lease {
    /// The shared upstream connection.
    pub connection: Multiplexed,
    /// The endpoint's active-request count, if the backend keeps one.
    pub active: Option<EndpointActive>,
}

impl From<Multiplexed> for Lease {
    fn from(connection: Multiplexed) -> Lease {
        Lease {
            connection,
            active: None,
        }
    }
}

/// Why no connection to a cluster could be had.
#[derive(Debug, Clone)]
pub enum Unreachable {
    /// No endpoint to try (no such cluster, none healthy): not worth another try.
    NoEndpoint(Reject),
    /// Connecting to this endpoint failed or timed out: another endpoint may do.
    Connect(SocketAddr, String),
}

impl Unreachable {
    /// The local reply's error.
    pub fn into_error(self) -> Reject {
        match self {
            Unreachable::NoEndpoint(e) => e,
            Unreachable::Connect(addr, reason) => local(
                RejectKind::ConnectFailure,
                format!("cannot connect to {addr}: {reason}"),
            ),
        }
    }
}

/// What a call needs from the rest of the gateway: admission, routing, upstream
/// connections, retry accounting and telemetry (the listener wires these to the current
/// snapshot and its metrics; tests to fakes).
pub trait Backend: Send + Sync + 'static {
    /// Runs the listener's request filters (rate limits, faults, ...) on a request from
    /// `source`, after routing: `route` is the matched route's policies (none when no
    /// route matched; "no route" is answered after the filters, as on HTTP). Filters
    /// mark `flags` for telemetry.
    fn admit(
        &self,
        _source: &Source,
        _request: &Metadata,
        _route: Option<&RoutePolicy>,
        _flags: &mut u16,
    ) -> Check {
        Check::Done(Ok(()))
    }

    /// The metrics registry mirrored calls are counted in, if any.
    fn metrics(&self) -> Option<&Metrics> {
        None
    }

    /// Routes a request, or says why it cannot be served.
    fn route(&self, request: &Metadata) -> Result<Decision, Reject>;

    /// Admits a call to `cluster` under its circuit breaker (`max_requests`), counting it
    /// as active there until the returned guard drops.
    fn admit_cluster(&self, _cluster: &str) -> Result<Option<ClusterActive>, Reject> {
        Ok(None)
    }

    /// A connection to an endpoint of `cluster`, preferring endpoints not in `avoid`
    /// (those that already failed this call), by consistent hash on `key` when the
    /// cluster hashes and the call has one.
    fn connection(
        &self,
        cluster: &str,
        avoid: &[SocketAddr],
        key: Option<u64>,
    ) -> impl Future<Output = Result<Lease, Unreachable>> + Send;

    /// The state of `cluster`, when the backend has one: its connection breakers
    /// (`max_connections`, `max_pending_requests`) then apply to calls.
    fn cluster_state(&self, _cluster: &str) -> Option<Arc<ClusterState>> {
        None
    }

    /// Counts one more retry on `cluster` if its retry budget admits it.
    fn admit_retry(&self, _cluster: &str) -> Option<RetryActive> {
        Some(RetryActive::untracked())
    }

    /// Records a finished call.
    fn record(&self, _request: &Metadata, _call: &CallRecord) {}

    /// The `istio_tcp_*` counters of the listener's connections, if counted.
    fn tcp_metrics(&self) -> Option<&TcpMetrics> {
        None
    }

    /// The calling workload's labels, for telemetry.
    fn source_peer(&self, _source: &Source) -> PeerRef {
        PeerRef::unknown()
    }

    /// The gateway's span of a call, continuing its `traceparent` if it brought one;
    /// `None` when the call is not traced.
    fn trace(&self, _request: &Metadata) -> Option<Span> {
        None
    }
}

/// One call; the bytes to answer with (`None` for one-way calls: never answered, also
/// not on errors). How it ended, and where it went, are written into `record`.
pub async fn call<B: Backend>(
    codec: &dyn Codec,
    backend: &Arc<B>,
    source: &Source,
    frame: &Frame,
    record: &mut CallRecord,
) -> Option<Bytes> {
    let oneway = frame.metadata.message_type == MessageType::Oneway;
    record.source = backend.source_peer(source);
    record.span = backend.trace(&frame.metadata);
    let (bytes, outcome) = match exchange(codec, backend, source, frame, record).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let kind = e.kind;
            record.response_code = codec.reject_code(kind);
            (
                (!oneway).then(|| codec.local_reply(&frame.metadata, &e)),
                CallOutcome::Local(kind),
            )
        }
    };
    record.outcome = outcome;
    if oneway { None } else { bytes }
}

/// Admission, routing, mirrors and tries; a local error when the gateway must answer.
async fn exchange<B: Backend>(
    codec: &dyn Codec,
    backend: &Arc<B>,
    source: &Source,
    frame: &Frame,
    record: &mut CallRecord,
) -> Result<(Option<Bytes>, CallOutcome), Reject> {
    let request = &frame.metadata;
    let routed = backend.route(request);
    let policy = routed.as_ref().ok().map(|d| &*d.policy);
    match backend.admit(source, request, policy, &mut record.flags) {
        Check::Done(verdict) => verdict?,
        Check::Wait(pending) => pending.await?,
    }
    let mut decision = routed?;
    // The upstream continues the trace under the gateway's span (Thrift without THeader
    // has nowhere to carry it).
    if let Some(span) = &record.span
        && codec.can_mutate(request)
    {
        let set = &mut decision.request_edit.set;
        set.retain(|(k, _)| k != TRACEPARENT);
        set.push((TRACEPARENT.to_string(), span.traceparent()));
    }
    record.route = Some(decision.route.clone());
    record.cluster = Some(decision.cluster.clone());
    let _active = backend.admit_cluster(&decision.cluster)?;
    for cluster in &decision.mirrors {
        mirror(backend, cluster, frame, &decision.request_edit);
    }
    let key = policy::hash::key(&decision.policy.hash, request, source);
    let Some(response) = tries(codec, &**backend, frame, &decision, key, record).await? else {
        record.response_code = codec.delivered_code();
        return Ok((None, CallOutcome::Answered(200)));
    };
    let status = codec.http_status(&response);
    record.response_code = codec.response_code(&response);
    let mut edit = decision.response_edit;
    edit.request_id = Some(request.request_id);
    let mut out = BytesMut::with_capacity(response.bytes.len() + 32);
    codec.encode(&response, &edit, &mut out).map_err(|e| {
        local(
            RejectKind::Internal,
            format!("cannot re-encode the response: {e}"),
        )
    })?;
    Ok((Some(out.freeze()), CallOutcome::Answered(status)))
}

/// Tries the call until it gets an answer the policy keeps, the policy gives up, or the
/// route's timeout passes (see `attempts::run`). `Ok(None)`: a one-way call was written.
async fn tries<B: Backend>(
    codec: &dyn Codec,
    backend: &B,
    frame: &Frame,
    decision: &Decision,
    hash_key: Option<u64>,
    record: &mut CallRecord,
) -> Result<Option<Frame>, Reject> {
    let plan = Plan {
        retry: decision.retry.as_ref(),
        deadline: decision.timeout.map(|t| Instant::now() + t),
    };
    let mut t = MetaTry {
        codec,
        backend,
        frame,
        decision,
        record,
        endpoint: None,
        hash_key,
        cluster: backend.cluster_state(&decision.cluster),
    };
    let tries = attempts::run(&mut t, plan).await;
    t.record.retries = tries.retries;
    tries.result
}

/// A call's tries on its route's cluster, through the backend's connections.
struct MetaTry<'a, B> {
    codec: &'a dyn Codec,
    backend: &'a B,
    frame: &'a Frame,
    decision: &'a Decision,
    record: &'a mut CallRecord,
    /// The endpoint of the last try, when the backend tracks endpoints.
    endpoint: Option<Arc<Endpoint>>,
    /// The consistent-hash key, when the route hashes.
    hash_key: Option<u64>,
    /// The route's cluster, when the backend has one (its connection breakers apply).
    cluster: Option<Arc<ClusterState>>,
}

impl<B: Backend> Transport for MetaTry<'_, B> {
    type Answer = Option<Frame>;

    async fn try_once(
        &mut self,
        avoid: &[SocketAddr],
        _last: bool,
    ) -> Result<Option<Frame>, TryError> {
        self.endpoint = None;
        let lease = self
            .backend
            .connection(&self.decision.cluster, avoid, self.hash_key)
            .await
            .map_err(|e| match e {
                Unreachable::NoEndpoint(e) => TryError::Final(e),
                Unreachable::Connect(addr, _) => {
                    self.record.upstream = Some(addr);
                    TryError::Failed(TryFailure::Connect, e.into_error())
                }
            })?;
        self.record.upstream = Some(lease.connection.addr());
        self.endpoint = lease.active.as_ref().map(|a| a.0.clone());
        self.record.destination = self
            .endpoint
            .as_deref()
            .map_or(PeerRef::unknown(), crate::telemetry::record::destination_of);
        lease
            .connection
            .call(self.frame, &self.decision.request_edit)
            .await
            .map_err(|e| match e {
                UpstreamError::Connect { addr, reason } => TryError::Failed(
                    TryFailure::Connect,
                    local(
                        RejectKind::ConnectFailure,
                        format!("cannot connect to {addr}: {reason}"),
                    ),
                ),
                UpstreamError::Reset { addr, reason } => TryError::Failed(
                    TryFailure::Reset,
                    local(
                        RejectKind::UpstreamReset,
                        format!("upstream {addr} went away mid-call: {reason}"),
                    ),
                ),
                // Not retried: the same request would fail to encode again.
                UpstreamError::Encode(reason) => {
                    TryError::Final(local(RejectKind::Internal, reason))
                }
            })
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.endpoint.as_ref()
    }

    fn upstream(&self) -> Option<SocketAddr> {
        self.record.upstream
    }

    fn status(&self, answer: &Option<Frame>) -> u16 {
        answer.as_ref().map_or(200, |f| self.codec.http_status(f))
    }

    fn cluster(&self) -> Option<&Arc<ClusterState>> {
        self.cluster.as_ref()
    }

    fn retries_answer(&self, policy: &RetryPolicy, answer: &Option<Frame>) -> bool {
        answer.as_ref().is_some_and(|response| {
            let status = self.codec.http_status(response);
            retry::retries_response(policy, status, &http::HeaderMap::new())
        })
    }

    fn admit_retry(&mut self) -> Option<RetryActive> {
        self.backend.admit_retry(&self.decision.cluster)
    }

    fn timed_out(&self, per_try: bool) -> Reject {
        let (cluster, route) = (&self.decision.cluster, &self.decision.route);
        let message = if per_try {
            format!("no answer from {cluster} within the per-try timeout (route {route})")
        } else {
            let t = self.decision.timeout.unwrap_or_default();
            format!("no answer from {cluster} within {t:?} (route {route})")
        };
        local(RejectKind::Timeout, message)
    }
}

/// Sends a copy of the request to `cluster` in the background (`policy::mirror`: under
/// the cluster's breaker, bounded); its answer (or failure) is dropped and never touches
/// the caller's call.
fn mirror<B: Backend>(backend: &Arc<B>, cluster: &Arc<str>, frame: &Frame, edit: &Edit) {
    let admitted = backend.admit_cluster(cluster);
    let (task_backend, target) = (backend.clone(), cluster.clone());
    let (frame, edit) = (frame.clone(), edit.clone());
    let send = async move {
        let lease = task_backend
            .connection(&target, &[], None)
            .await
            .map_err(|e| e.into_error().message.into_owned())?;
        lease
            .connection
            .call(&frame, &edit)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    policy::mirror::spawn(cluster.clone(), admitted, backend.metrics(), send);
}

fn local(kind: RejectKind, message: String) -> Reject {
    Reject::new(kind, message)
}
