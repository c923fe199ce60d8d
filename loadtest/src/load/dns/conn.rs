//! DNS sockets carrying many queries at once, answers matched to queries by message id:
//! a connected UDP socket (one datagram per message), or a TCP connection (each
//! message after its two-byte length, answers in any order, RFC 7766).

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UdpSocket, tcp::OwnedWriteHalf},
    sync::{Mutex, oneshot},
    task::JoinHandle,
};

use crate::load::CallError;

/// Largest DNS message over UDP we read (EDNS payloads stay far below).
const MAX_UDP: usize = 65_535;
/// Bytes read from a TCP connection at a time.
const READ_CHUNK: usize = 16 * 1024;

type Pending = std::sync::Mutex<HashMap<u16, oneshot::Sender<Bytes>>>;

/// How queries leave.
enum Wire {
    Udp(Arc<UdpSocket>),
    Tcp(Mutex<OwnedWriteHalf>),
}

/// What the callers and the reader task share.
struct Shared {
    pending: Pending,
    /// Set (before `pending` is emptied) once the reader stopped: no answer will come.
    closed: AtomicBool,
}

/// A DNS socket to one server.
pub struct DnsConn {
    wire: Wire,
    shared: Arc<Shared>,
    next_id: AtomicU16,
    reader: JoinHandle<()>,
}

impl Drop for DnsConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl DnsConn {
    /// A UDP socket connected to `addr`.
    pub async fn udp(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, CallError> {
        let local: SocketAddr = match source {
            Some(ip) => (ip, 0).into(),
            None if addr.is_ipv4() => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            None => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let connect = |source| CallError::Connect { addr, source };
        let socket = UdpSocket::bind(local).await.map_err(connect)?;
        socket.connect(addr).await.map_err(connect)?;
        let socket = Arc::new(socket);
        let shared = new_shared();
        let reader = tokio::spawn(read_udp(socket.clone(), shared.clone()));
        Ok(Self::new(Wire::Udp(socket), shared, reader))
    }

    /// A TCP connection to `addr`.
    pub async fn tcp(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, CallError> {
        let stream = super::super::dial(addr, source).await?;
        let (rd, wr) = stream.into_split();
        let shared = new_shared();
        let reader = tokio::spawn(read_tcp(rd, shared.clone()));
        Ok(Self::new(Wire::Tcp(Mutex::new(wr)), shared, reader))
    }

    fn new(wire: Wire, shared: Arc<Shared>, reader: JoinHandle<()>) -> Self {
        Self {
            wire,
            shared,
            // Ids start at random, so a server's or a middlebox's stale answers from an
            // earlier socket on the same port are unlikely to match.
            next_id: AtomicU16::new(rand::random()),
            reader,
        }
    }

    /// Sends `query` (a whole message; its first two bytes are overwritten with a fresh
    /// id) and waits for the answer with that id. A lost UDP answer never comes: the
    /// caller bounds the wait (the driver's `--timeout`), and dropping the call frees
    /// its id.
    pub async fn ask(&self, query: &[u8]) -> Result<Bytes, CallError> {
        let (id, rx) = self.register()?;
        let mut waiting = Waiting {
            conn: self,
            id: Some(id),
        };
        let mut message = BytesMut::with_capacity(query.len() + 2);
        if let Wire::Tcp(_) = self.wire {
            let len = u16::try_from(query.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
            message.extend_from_slice(&len.to_be_bytes());
        }
        let id_at = message.len();
        message.extend_from_slice(query);
        message[id_at..id_at + 2].copy_from_slice(&id.to_be_bytes());
        let sent = match &self.wire {
            Wire::Udp(socket) => socket.send(&message).await.map(drop),
            Wire::Tcp(writer) => writer.lock().await.write_all(&message).await,
        };
        sent?;
        let answer = rx.await.map_err(|_| CallError::Closed);
        // Answered (the reader took the id off) or closed (the map is empty): nothing
        // left to free, and the id may already be another query's.
        waiting.id = None;
        answer
    }

    /// Takes a free id and queues a waiter for it.
    fn register(&self) -> Result<(u16, oneshot::Receiver<Bytes>), CallError> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock: a reader that stopped has set `closed` before taking
        // the lock to empty the map.
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(CallError::Closed);
        }
        if pending.len() > usize::from(u16::MAX) {
            return Err(io::Error::other("every DNS id is in flight").into());
        }
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if let std::collections::hash_map::Entry::Vacant(slot) = pending.entry(id) {
                slot.insert(tx);
                return Ok((id, rx));
            }
        }
    }
}

/// A query waiting for its answer: dropped early (failed send, timeout), it frees its id.
struct Waiting<'a> {
    conn: &'a DnsConn,
    id: Option<u16>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.conn
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

fn new_shared() -> Arc<Shared> {
    Arc::new(Shared {
        pending: std::sync::Mutex::new(HashMap::new()),
        closed: AtomicBool::new(false),
    })
}

/// Hands `answer` to the query with its id; answers to nothing (late, after a
/// timeout) are dropped.
fn dispatch(shared: &Shared, answer: Bytes) {
    if answer.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([answer[0], answer[1]]);
    let waiter = shared
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    if let Some(waiter) = waiter {
        let _ = waiter.send(answer);
    }
}

fn close(shared: &Shared) {
    let mut pending = shared
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    shared.closed.store(true, Ordering::Release);
    // Dropping the senders fails every query in flight.
    pending.clear();
}

async fn read_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => dispatch(&shared, Bytes::copy_from_slice(&buf[..n])),
            // An ICMP port unreachable for an earlier datagram: the server is not
            // there (yet); the queries time out, the socket stays usable.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(_) => break,
        }
    }
    close(&shared);
}

async fn read_tcp(mut rd: tokio::net::tcp::OwnedReadHalf, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        while buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() < 2 + len {
                break;
            }
            buf.advance(2);
            dispatch(&shared, buf.split_to(len).freeze());
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    close(&shared);
}
