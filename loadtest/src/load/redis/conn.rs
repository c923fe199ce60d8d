//! One Redis connection carrying many commands at once (pipelining): replies come back
//! in the order the commands were written, so each caller waits at its place in a
//! queue that the writer fills and the reader empties.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::BytesMut;
use corridor_gateway::{
    codec::CodecError,
    redis::resp::{DEFAULT_MAX_VALUE, Value, ValueDecoder},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    sync::{Mutex, oneshot},
    task::JoinHandle,
};

use crate::load::CallError;

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

type Waiter = oneshot::Sender<Result<Value, String>>;

/// What the callers and the reader task share.
struct Shared {
    /// The write half; held while a caller queues its waiter and writes its command,
    /// so the queue's order is the wire's order.
    writer: Mutex<OwnedWriteHalf>,
    waiters: std::sync::Mutex<VecDeque<Waiter>>,
    /// Set (before `waiters` is emptied) once the reader stopped: no reply will come.
    closed: AtomicBool,
}

/// A pipelined Redis connection.
pub struct RedisConn {
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

impl Drop for RedisConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The error a reply that cannot be read becomes.
pub(super) fn corrupt(reason: String) -> CallError {
    CallError::Codec(CodecError::Corrupt {
        protocol: "redis",
        reason,
    })
}

impl RedisConn {
    /// Connects to `addr`, from `source` when given.
    pub async fn connect(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, CallError> {
        let stream = super::super::dial(addr, source).await?;
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Shared {
            writer: Mutex::new(wr),
            waiters: std::sync::Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(rd, shared.clone()));
        Ok(Self { shared, reader })
    }

    /// Writes `command` (RESP bytes of one command) and waits for its reply.
    pub async fn call(&self, command: &[u8]) -> Result<Value, CallError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut writer = self.shared.writer.lock().await;
            self.shared
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(tx);
            // Checked after queueing: a reader that stopped since has set `closed`
            // before emptying the queue, so the call either sees the flag or is failed.
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(CallError::Closed);
            }
            // A failed write leaves the queue out of step with the wire: the connection
            // is done (the driver drops it), and the reader fails what is queued.
            writer.write_all(command).await?;
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(reason)) => Err(corrupt(reason)),
            Err(_) => Err(CallError::Closed),
        }
    }
}

async fn read_loop(mut rd: OwnedReadHalf, shared: Arc<Shared>) {
    let mut decoder = ValueDecoder::new(DEFAULT_MAX_VALUE);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let next = || {
        shared
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    };
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                // RESP3 out-of-band data answers nothing (never sent to a RESP2 client).
                Ok(Some(Value::Push(_) | Value::Attribute(_))) => {}
                Ok(Some(value)) => match next() {
                    Some(waiter) => {
                        let _ = waiter.send(Ok(value));
                    }
                    // A reply to nothing: the stream cannot be trusted any more.
                    None => break 'read,
                },
                Ok(None) => break,
                Err(e) => {
                    if let Some(waiter) = next() {
                        let _ = waiter.send(Err(e.to_string()));
                    }
                    break 'read;
                }
            }
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.closed.store(true, Ordering::Release);
    // Dropping the waiters fails every call in flight.
    shared
        .waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}
