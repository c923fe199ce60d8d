//! One connection carrying many calls at once, answers matched to calls by id (Dubbo
//! request id, Thrift seqid), read with the gateway's codec for the protocol.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use bytes::{Bytes, BytesMut};
use corridor_gateway::codec::{Codec, Frame, MessageType};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    sync::{Mutex, oneshot},
    task::JoinHandle,
};

use super::CallError;

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

type Pending = std::sync::Mutex<HashMap<u64, oneshot::Sender<Frame>>>;

/// What the caller side and the reader task share.
struct Shared {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    /// Set (before `pending` is emptied) once the reader stopped: no answer will come.
    closed: AtomicBool,
}

/// A multiplexed connection.
pub(crate) struct Mux {
    shared: Arc<Shared>,
    next_id: AtomicU64,
    /// Ids wrap within this mask (Thrift seqids are 32 bits).
    id_mask: u64,
    reader: JoinHandle<()>,
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Mux {
    /// Connects to `addr`; answers are read with `codec`; ids wrap within `id_mask`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
        codec: Arc<dyn Codec>,
        id_mask: u64,
    ) -> Result<Self, CallError> {
        let stream = super::dial(addr, source).await?;
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Shared {
            writer: Mutex::new(wr),
            pending: std::sync::Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(rd, codec, shared.clone()));
        Ok(Self {
            shared,
            next_id: AtomicU64::new(1),
            id_mask,
            reader,
        })
    }

    /// Sends the request `encode` writes for a fresh id and waits for its answer.
    pub(crate) async fn call(
        &self,
        encode: impl FnOnce(u64) -> Result<Bytes, CallError>,
    ) -> Result<Frame, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) & self.id_mask;
        let request = encode(id)?;
        let (tx, rx) = oneshot::channel();
        let pending = || {
            self.shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        pending().insert(id, tx);
        // Checked after inserting: a reader that stopped since has set `closed` before
        // emptying the map, so the call either sees the flag or is emptied out.
        if self.shared.closed.load(Ordering::Acquire) {
            pending().remove(&id);
            return Err(CallError::Closed);
        }
        let written = self.shared.writer.lock().await.write_all(&request).await;
        if let Err(e) = written {
            pending().remove(&id);
            return Err(e.into());
        }
        rx.await.map_err(|_| CallError::Closed)
    }
}

async fn read_loop(mut rd: OwnedReadHalf, codec: Arc<dyn Codec>, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    'read: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => dispatch(&*codec, &shared, frame).await,
                Ok(None) => break,
                // Unreadable answers: nothing after them can be trusted.
                Err(_) => break 'read,
            }
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.closed.store(true, Ordering::Release);
    // Dropping the senders fails every call in flight.
    shared
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

async fn dispatch(codec: &dyn Codec, shared: &Shared, frame: Frame) {
    match frame.metadata.message_type {
        MessageType::Response => {
            let waiter = shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&frame.metadata.request_id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(frame);
            }
        }
        // A server checking the connection (Dubbo providers do after idle time).
        MessageType::Heartbeat => {
            if let Some(reply) = codec.heartbeat_reply(&frame.metadata) {
                let _ = shared.writer.lock().await.write_all(&reply).await;
            }
        }
        // Requests from the server, and answers to heartbeats never sent: ignored.
        _ => {}
    }
}
