//! A pipelined upstream Redis connection: commands from every downstream connection go
//! out in the order they were queued, and replies come back in that same order (RESP
//! has no request ids), so each reply goes to the oldest waiting command. A broken
//! connection fails every waiting command at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::frame::Frame;
use crate::proxy::{READ_CHUNK, WRITE_BATCH};
use crate::redis::resp::{Value, ValueDecoder, encode_command};

/// Most I/O polls a writer waits for while new commands keep arriving (8, 16 and 64
/// measured no better than 4 at -P1).
const GATHER_ROUNDS: usize = 4;
/// Queued commands past which a writer stops waiting for more after the first poll:
/// pipelining clients fill a write on their own, and waiting longer only adds latency
/// (four polls at -P16 cost a fifth of the throughput of one).
const GATHER_ENOUGH: usize = 16;

/// Largest reply accepted from an upstream (Redis's own bulk limit).
const MAX_REPLY: usize = 512 * 1024 * 1024;

pub use crate::proxy::upstream::UpstreamError;

/// A queued command's reply, when it comes.
pub type Reply = oneshot::Receiver<Result<Frame, UpstreamError>>;

type Waiter = oneshot::Sender<Result<Frame, UpstreamError>>;

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    waiting: Mutex<VecDeque<Waiter>>,
    closed: AtomicBool,
}

impl Inner {
    fn close(&self, reason: &str) {
        self.closed.store(true, Ordering::Release);
        let waiters: Vec<Waiter> = match self.waiting.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        crate::proxy::upstream::fail_all(waiters, self.addr, reason);
    }
}

/// One pipelined connection, shared by every caller.
#[derive(Debug, Clone)]
pub struct Pipelined {
    inner: Arc<Inner>,
    writes: mpsc::UnboundedSender<Queued>,
}

/// A command on its way to the writer: its bytes, its waiter, and how many replies
/// before its own are to be dropped (an `ASKING` sent in the same write).
type Queued = (Bytes, Waiter, usize);

impl Pipelined {
    /// Connects to `addr` and, with a password, authenticates (`AUTH [user] password`)
    /// before any command is queued; with `readonly`, also sends `READONLY` (a Redis
    /// Cluster replica then serves reads).
    pub async fn connect(
        addr: SocketAddr,
        auth: Option<(Option<&str>, &str)>,
        readonly: bool,
        connect_timeout: Duration,
    ) -> Result<Pipelined, UpstreamError> {
        let error = |reason: String| UpstreamError::Connect { addr, reason };
        let mut stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| error(format!("no answer within {connect_timeout:?}")))?
            .map_err(|e| error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut decoder = ValueDecoder::new(MAX_REPLY);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut setup: Vec<Vec<&[u8]>> = Vec::new();
        match auth {
            Some((Some(u), p)) => setup.push(vec![b"AUTH", u.as_bytes(), p.as_bytes()]),
            Some((None, p)) => setup.push(vec![b"AUTH", p.as_bytes()]),
            None => {}
        }
        if readonly {
            setup.push(vec![b"READONLY"]);
        }
        for command in &setup {
            let mut out = BytesMut::new();
            encode_command(command, &mut out);
            stream
                .write_all(&out)
                .await
                .map_err(|e| error(e.to_string()))?;
            let name = String::from_utf8_lossy(command[0]);
            let reply = tokio::time::timeout(
                connect_timeout,
                read_one(&mut stream, &mut decoder, &mut buf),
            )
            .await
            .map_err(|_| error(format!("no answer to {name}")))??;
            if reply.is_error() {
                return Err(error(format!("{name} refused: {}", text(&reply))));
            }
        }
        let (reader, writer) = stream.into_split();
        let inner = Arc::new(Inner {
            addr,
            waiting: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(inner.clone(), writer, queue));
        tokio::spawn(read_loop(inner.clone(), reader, decoder, buf));
        Ok(Pipelined { inner, writes })
    }

    /// The upstream's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Whether the connection broke (callers then open another).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Queues an encoded command; its reply arrives on the returned receiver. Commands
    /// queued one after another from one task reach the upstream in that order.
    pub fn send(&self, command: Bytes) -> Reply {
        self.queue(command, 0)
    }

    /// Queues `ASKING` and then `command` back to back (no other command can come
    /// between them on the shared connection); the reply is the command's.
    pub fn send_asking(&self, command: &[u8]) -> Reply {
        let mut out = BytesMut::with_capacity(command.len() + 16);
        encode_command(&[b"ASKING".as_slice()], &mut out);
        out.extend_from_slice(command);
        self.queue(out.freeze(), 1)
    }

    fn queue(&self, bytes: Bytes, skip: usize) -> Reply {
        let (waiter, reply) = oneshot::channel();
        if let Err(mpsc::error::SendError((_, waiter, _))) = self.writes.send((bytes, waiter, skip))
        {
            let _ = waiter.send(Err(UpstreamError::Reset {
                addr: self.inner.addr,
                reason: "already closed".into(),
            }));
        }
        reply
    }
}

/// Reads exactly one value (the AUTH handshake).
async fn read_one(
    stream: &mut TcpStream,
    decoder: &mut ValueDecoder,
    buf: &mut BytesMut,
) -> Result<Value, UpstreamError> {
    let addr = stream.peer_addr().map_err(|e| UpstreamError::Connect {
        addr: ([0, 0, 0, 0], 0).into(),
        reason: e.to_string(),
    })?;
    let error = |reason: String| UpstreamError::Connect { addr, reason };
    loop {
        if let Some(v) = decoder.decode(buf).map_err(|e| error(e.to_string()))? {
            return Ok(v);
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) => return Err(error("closed during AUTH".into())),
            Ok(_) => {}
            Err(e) => return Err(error(e.to_string())),
        }
    }
}

/// An error reply's text, for messages.
pub fn text(v: &Value) -> String {
    match v {
        Value::Error(b) | Value::Simple(b) | Value::Bulk(b) | Value::BulkError(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        other => format!("{other:?}"),
    }
}

async fn write_loop(
    inner: Arc<Inner>,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        // Let the clients made ready by the next I/O polls queue their commands first
        // (tokio runs a yielded task after its next poll of the driver), as long as
        // each poll brings more: one bigger write instead of several small ones, and a
        // lone command waits one poll only. redis-server spends less per command on
        // fewer, fuller reads: -P1 GETs through one worker went from 49k/s (no
        // gathering) to 55k/s (one poll) and 60k/s (up to four), and redis-server from
        // 6.2 to 4.0 us per command (loadtest/bench-redis.sh setup).
        let mut waiting = queue.len();
        for _ in 0..GATHER_ROUNDS {
            tokio::task::yield_now().await;
            let now = queue.len();
            if now == waiting || now >= GATHER_ENOUGH {
                break;
            }
            waiting = now;
        }
        batch.clear();
        let take = |(bytes, waiter, skip): Queued, batch: &mut BytesMut| {
            // The waiter joins the queue before its bytes can reach the upstream, so
            // replies always find theirs; replies to skip get a waiter nobody reads.
            match inner.waiting.lock() {
                Ok(mut q) => {
                    for _ in 0..skip {
                        q.push_back(oneshot::channel().0);
                    }
                    q.push_back(waiter);
                }
                Err(_) => return,
            }
            batch.extend_from_slice(&bytes);
        };
        take(first, &mut batch);
        while batch.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(next) => take(next, &mut batch),
                Err(_) => break,
            }
        }
        if inner.closed.load(Ordering::Acquire) {
            inner.close("closed");
            return;
        }
        if let Err(e) = writer.write_all(&batch).await {
            inner.close(&format!("write failed: {e}"));
            return;
        }
    }
}

async fn read_loop(
    inner: Arc<Inner>,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut decoder: ValueDecoder,
    mut buf: BytesMut,
) {
    loop {
        loop {
            // Flat replies (most of them) go back as the bytes they came in.
            let frame = match decoder.take_flat(&mut buf) {
                Some(wire) => Frame::Wire(wire),
                None => match decoder.decode(&mut buf) {
                    // A RESP3 attribute precedes the reply it describes: not a reply.
                    Ok(Some(Value::Attribute(_))) => continue,
                    Ok(Some(value)) => Frame::Value(value),
                    Ok(None) => break,
                    Err(e) => {
                        inner.close(&format!("unreadable reply: {e}"));
                        return;
                    }
                },
            };
            let waiter = inner.waiting.lock().ok().and_then(|mut q| q.pop_front());
            match waiter {
                Some(w) => drop(w.send(Ok(frame))),
                None => {
                    // A reply nobody asked for: the stream is out of step.
                    inner.close("a reply with no command waiting");
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
