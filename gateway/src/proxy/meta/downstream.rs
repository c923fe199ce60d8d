//! A downstream connection of a codec-based protocol: frames are decoded, heartbeats
//! answered, requests routed and sent upstream concurrently, and answers (or local
//! replies in the protocol's own error form) written back. A stream that cannot be
//! decoded gets the codec's error reply, if it has one, and is closed; other
//! connections never notice.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::upstream::{Multiplexed, UpstreamError};
use crate::codec::{Codec, Edit, ErrorKind, Frame, LocalError, MessageType, Metadata, ResponseStatus};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// Answers queued for the writer before request tasks wait.
const ANSWER_QUEUE: usize = 1024;

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
    /// Whole-call timeout; `None` waits as long as the connection lives.
    pub timeout: Option<Duration>,
}

/// How a call ended, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The upstream answered, with this status (one-way calls: written).
    Answered(ResponseStatus),
    /// The gateway answered itself (or, for a one-way call, dropped it), for this reason.
    Local(ErrorKind),
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
    /// The upstream endpoint used, if any.
    pub upstream: Option<std::net::SocketAddr>,
    /// From the request's arrival to its answer.
    pub took: Duration,
    /// Bytes of the request as received.
    pub request_bytes: usize,
    /// Bytes of the answer sent (0 for one-way calls).
    pub response_bytes: usize,
}

/// What the connection needs from the rest of the gateway: routing, upstream
/// connections and telemetry (the listener wires these to the current snapshot and its
/// metrics; tests to fakes).
pub trait Backend: Send + Sync + 'static {
    /// Routes a request, or says why it cannot be served.
    fn route(&self, request: &Metadata) -> Result<Decision, LocalError>;

    /// A connection to an endpoint of `cluster`.
    fn connection(&self, cluster: &str) -> impl Future<Output = Result<Multiplexed, LocalError>> + Send;

    /// Records a finished call.
    fn record(&self, _request: &Metadata, _call: &CallRecord) {}
}

/// An answer on its way to the writer, with its position for in-order protocols.
struct Answer {
    seq: u64,
    bytes: Bytes,
}

/// Serves one downstream connection until the caller closes it or sends bytes the codec
/// cannot read.
pub async fn serve<S, B>(stream: S, codec: Arc<dyn Codec>, backend: Arc<B>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    B: Backend,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (answers, queue) = mpsc::channel::<Answer>(ANSWER_QUEUE);
    let ordered = codec.responses_in_order();
    let writing = tokio::spawn(write_loop(writer, queue, ordered));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut seq = 0u64;
    'read: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Some(answer) = handle(&codec, &backend, frame, seq, &answers)
                        && answers.send(answer).await.is_err()
                    {
                        break 'read;
                    }
                    seq += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(protocol = codec.name(), error = %e, "closing a connection that sent unreadable bytes");
                    if let Some(reply) = codec.error_reply(&buf, &e) {
                        let _ = answers.send(Answer { seq, bytes: reply }).await;
                    }
                    break 'read;
                }
            }
        }
        buf.reserve(READ_CHUNK);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Calls in flight still answer before the connection closes.
    drop(answers);
    let _ = writing.await;
}

/// Starts serving one frame; returns an answer that is ready at once (heartbeats), else
/// spawns the call, which sends its answer when done.
fn handle<B: Backend>(
    codec: &Arc<dyn Codec>,
    backend: &Arc<B>,
    frame: Frame,
    seq: u64,
    answers: &mpsc::Sender<Answer>,
) -> Option<Answer> {
    match frame.metadata.message_type {
        // Every frame yields exactly one answer (maybe empty), so in-order protocols never
        // wait on a position nothing will fill.
        MessageType::Heartbeat => Some(Answer {
            seq,
            bytes: codec.heartbeat_reply(&frame.metadata).unwrap_or_default(),
        }),
        MessageType::Request | MessageType::Oneway => {
            let (codec, backend, answers) = (codec.clone(), backend.clone(), answers.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut record = CallRecord {
                    outcome: CallOutcome::Local(ErrorKind::Internal),
                    route: None,
                    cluster: None,
                    upstream: None,
                    took: Duration::ZERO,
                    request_bytes: frame.bytes.len(),
                    response_bytes: 0,
                };
                let bytes = call(&*codec, &*backend, &frame, &mut record).await;
                // A one-way call answers nothing: its place stays empty.
                let bytes = bytes.unwrap_or_default();
                record.took = started.elapsed();
                record.response_bytes = bytes.len();
                backend.record(&frame.metadata, &record);
                let _ = answers.send(Answer { seq, bytes }).await;
            });
            None
        }
        MessageType::Response | MessageType::HeartbeatResponse => {
            tracing::debug!(protocol = codec.name(), "ignoring a response sent by a caller");
            Some(Answer { seq, bytes: Bytes::new() })
        }
    }
}

/// One call: route, connect, send, wait (bounded by the route's timeout); the bytes to
/// answer with (`None` for one-way calls: never answered, also not on errors). How it
/// ended, and where it went, are written into `record`.
async fn call<B: Backend>(codec: &dyn Codec, backend: &B, frame: &Frame, record: &mut CallRecord) -> Option<Bytes> {
    let request = &frame.metadata;
    let oneway = request.message_type == MessageType::Oneway;
    let (bytes, outcome) = exchange(codec, backend, frame, record).await;
    record.outcome = outcome;
    if oneway { None } else { bytes }
}

async fn exchange<B: Backend>(
    codec: &dyn Codec,
    backend: &B,
    frame: &Frame,
    record: &mut CallRecord,
) -> (Option<Bytes>, CallOutcome) {
    let request = &frame.metadata;
    let oneway = request.message_type == MessageType::Oneway;
    let local = |kind: ErrorKind, message: String| {
        let bytes = (!oneway).then(|| codec.local_reply(request, &LocalError { kind, message }));
        (bytes, CallOutcome::Local(kind))
    };
    let decision = match backend.route(request) {
        Ok(d) => d,
        Err(e) => return local(e.kind, e.message),
    };
    record.route = Some(decision.route.clone());
    record.cluster = Some(decision.cluster.clone());
    let connection = match backend.connection(&decision.cluster).await {
        Ok(c) => c,
        Err(e) => return local(e.kind, e.message),
    };
    record.upstream = Some(connection.addr());
    let sent = connection.call(frame, &decision.request_edit);
    let outcome = match decision.timeout {
        Some(t) => match tokio::time::timeout(t, sent).await {
            Ok(r) => r,
            Err(_) => {
                return local(
                    ErrorKind::Timeout,
                    format!("no answer from {} within {t:?} (route {})", decision.cluster, decision.route),
                );
            }
        },
        None => sent.await,
    };
    match outcome {
        Ok(Some(response)) => {
            let mut edit = decision.response_edit.clone();
            edit.request_id = Some(request.request_id);
            let mut out = BytesMut::with_capacity(response.bytes.len() + 32);
            match codec.encode(&response, &edit, &mut out) {
                Ok(()) => (Some(out.freeze()), CallOutcome::Answered(response.metadata.response_status)),
                Err(e) => local(ErrorKind::Internal, format!("cannot re-encode the response: {e}")),
            }
        }
        Ok(None) => (None, CallOutcome::Answered(ResponseStatus::Ok)),
        Err(UpstreamError::Connect { addr, reason }) => {
            local(ErrorKind::Unavailable, format!("cannot connect to {addr}: {reason}"))
        }
        Err(UpstreamError::Reset { addr, reason }) => {
            local(ErrorKind::UpstreamReset, format!("upstream {addr} went away mid-call: {reason}"))
        }
        Err(UpstreamError::Encode(reason)) => local(ErrorKind::Internal, reason),
    }
}

/// Writes answers as they come, or in request order for protocols that need it.
async fn write_loop<W: AsyncWrite>(writer: W, mut queue: mpsc::Receiver<Answer>, ordered: bool) {
    tokio::pin!(writer);
    let mut next = 0u64;
    let mut held: BTreeMap<u64, Bytes> = BTreeMap::new();
    while let Some(answer) = queue.recv().await {
        if !ordered {
            if !answer.bytes.is_empty() && writer.write_all(&answer.bytes).await.is_err() {
                return;
            }
            continue;
        }
        held.insert(answer.seq, answer.bytes);
        while let Some(bytes) = held.remove(&next) {
            if !bytes.is_empty() && writer.write_all(&bytes).await.is_err() {
                return;
            }
            next += 1;
        }
    }
    let _ = writer.shutdown().await;
}
