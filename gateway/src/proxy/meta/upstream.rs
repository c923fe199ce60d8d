//! A shared upstream connection for a codec-based protocol: many downstream requests go
//! over one connection, each under a fresh request id, and responses find their caller
//! by that id. A broken connection fails every call in flight at once (nothing waits for
//! a timeout to learn the upstream is gone).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::codec::{Codec, Edit, Frame, MessageType};
use crate::proxy::READ_CHUNK;

/// Frames queued for the writer before callers wait for room.
const WRITE_QUEUE: usize = 1024;

pub use crate::proxy::upstream::UpstreamError;

type Waiter = oneshot::Sender<Result<Frame, UpstreamError>>;

/// State shared by the connection's tasks and its callers.
#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    codec: Arc<dyn Codec>,
    inflight: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Inner {
    /// Fails every call in flight and refuses new ones.
    fn close(&self, reason: &str) {
        self.closed.store(true, Ordering::Release);
        let waiters: Vec<Waiter> = match self.inflight.lock() {
            Ok(mut m) => m.drain().map(|(_, w)| w).collect(),
            Err(_) => Vec::new(),
        };
        crate::proxy::upstream::fail_all(waiters, self.addr, reason);
    }
}

/// One multiplexed upstream connection.
#[derive(Debug, Clone)]
pub struct Multiplexed {
    inner: Arc<Inner>,
    writes: mpsc::Sender<Bytes>,
}

/// Removes a call's waiter when the caller gives up (timeout, downstream gone), so a late
/// response is dropped instead of leaking the entry.
struct Pending<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.inner.inflight.lock() {
            m.remove(&self.id);
        }
    }
}

impl Multiplexed {
    /// Connects to `addr` and starts the connection's reader and writer.
    pub async fn connect(
        addr: SocketAddr,
        codec: Arc<dyn Codec>,
        connect_timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        let connect_error = |reason: String| UpstreamError::Connect { addr, reason };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error(format!("no answer within {connect_timeout:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let inner = Arc::new(Inner {
            addr,
            codec,
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_loop(inner.clone(), writer, queue));
        tokio::spawn(read_loop(inner.clone(), reader, writes.clone()));
        Ok(Multiplexed { inner, writes })
    }

    /// The upstream's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Whether the connection broke (callers then open another).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Calls waiting for their response.
    pub fn in_flight(&self) -> usize {
        self.inner.inflight.lock().map_or(0, |m| m.len())
    }

    /// Sends `request` under a fresh id with `edit` applied. A request that expects a
    /// response waits for it and gets it back carrying the caller's own id again; a
    /// one-way request returns `None` once written.
    pub async fn call(&self, request: &Frame, edit: &Edit) -> Result<Option<Frame>, UpstreamError> {
        let reset = |reason: &str| UpstreamError::Reset {
            addr: self.inner.addr,
            reason: reason.to_string(),
        };
        if self.is_closed() {
            return Err(reset("already closed"));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut edit = edit.clone();
        edit.request_id = Some(id);
        let mut out = BytesMut::with_capacity(request.bytes.len() + 64);
        self.inner
            .codec
            .encode(request, &edit, &mut out)
            .map_err(|e| UpstreamError::Encode(e.to_string()))?;
        let oneway = request.metadata.message_type == MessageType::Oneway;
        let (waiter, answer) = oneshot::channel();
        let _pending = if oneway {
            None
        } else {
            if let Ok(mut m) = self.inner.inflight.lock() {
                m.insert(id, waiter);
            }
            Some(Pending {
                inner: &self.inner,
                id,
            })
        };
        if self.writes.send(out.freeze()).await.is_err() {
            return Err(reset("writer stopped"));
        }
        if oneway {
            return Ok(None);
        }
        let mut response = answer
            .await
            .map_err(|_| reset("connection dropped the call"))??;
        // Back under the caller's id: the bytes are re-encoded by the downstream side
        // with that id; the metadata already says which it is.
        response.metadata.request_id = request.metadata.request_id;
        Ok(Some(response))
    }
}

async fn write_loop(
    inner: Arc<Inner>,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut queue: mpsc::Receiver<Bytes>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        if let Err(e) = super::write_batch(&mut writer, first, &mut queue, &mut batch).await {
            inner.close(&format!("write failed: {e}"));
            return;
        }
    }
}

async fn read_loop(
    inner: Arc<Inner>,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    writes: mpsc::Sender<Bytes>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        loop {
            match inner.codec.decode(&mut buf) {
                Ok(Some(frame)) => dispatch(&inner, frame, &writes).await,
                Ok(None) => break,
                Err(e) => {
                    inner.close(&format!("unreadable response: {e}"));
                    return;
                }
            }
        }
        if let Err(reason) = crate::proxy::read_more(&mut reader, &mut buf).await {
            inner.close(&reason);
            return;
        }
    }
}

/// Hands a response to its caller; answers the upstream's own heartbeats.
async fn dispatch(inner: &Inner, frame: Frame, writes: &mpsc::Sender<Bytes>) {
    match frame.metadata.message_type {
        MessageType::Response => {
            let waiter = inner
                .inflight
                .lock()
                .ok()
                .and_then(|mut m| m.remove(&frame.metadata.request_id));
            match waiter {
                Some(w) => drop(w.send(Ok(frame))),
                // The caller gave up (timeout) or the id is unknown: nothing to do.
                None => {
                    tracing::debug!(addr = %inner.addr, id = frame.metadata.request_id, "response nobody waits for")
                }
            }
        }
        MessageType::Heartbeat => {
            if let Some(reply) = inner.codec.heartbeat_reply(&frame.metadata) {
                let _ = writes.send(reply).await;
            }
        }
        MessageType::HeartbeatResponse => {}
        MessageType::Request | MessageType::Oneway => {
            tracing::debug!(addr = %inner.addr, "ignoring a request sent by an upstream");
        }
    }
}
