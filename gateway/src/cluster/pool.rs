//! Per-endpoint upstream connection pools.
//!
//! HTTP/1.1: a stack of idle keep-alive connections; a connection goes back on the stack
//! when the response that used it has been read to the end. HTTP/2 (prior knowledge):
//! one shared multiplexed connection, replaced when it closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::proxy::body::RequestBody;

/// Idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect did not finish in the cluster's connect timeout.
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    /// The TCP connect failed (refused, unreachable...).
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    /// The HTTP handshake failed.
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
}

/// A connection ready for one request.
#[derive(Debug)]
pub enum Conn {
    /// An HTTP/1.1 connection, exclusively ours until checked in.
    H1(http1::SendRequest<RequestBody>),
    /// A handle on the shared HTTP/2 connection.
    H2(http2::SendRequest<RequestBody>),
}

/// The connections to one endpoint.
#[derive(Debug)]
pub struct Pool {
    addr: SocketAddr,
    http2: bool,
    idle: Mutex<Vec<http1::SendRequest<RequestBody>>>,
    shared: Mutex<Option<http2::SendRequest<RequestBody>>>,
    /// Connections opened so far.
    pub opened: AtomicU64,
    /// Connect failures so far.
    pub connect_failures: AtomicU64,
}

impl Pool {
    /// An empty pool.
    pub fn new(addr: SocketAddr, http2: bool) -> Self {
        Pool {
            addr,
            http2,
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(None),
            opened: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
        }
    }

    /// Whether this pool speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// Idle HTTP/1.1 connections right now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// A connection for one request, and whether it was reused (a reused connection may
    /// have been closed by the peer in the meantime, which makes an unsent request safe
    /// to try again on a fresh one).
    ///
    /// Connecting is boxed: it is rare, and its future (TCP connect, timeout, handshake)
    /// would otherwise make every request's future, moved around by value, kilobytes larger.
    pub async fn checkout(&self, connect_timeout: Duration) -> Result<(Conn, bool), ConnectError> {
        if self.http2 {
            let existing = self
                .shared
                .lock()
                .ok()
                .and_then(|g| g.as_ref().filter(|s| !s.is_closed()).cloned());
            if let Some(s) = existing {
                return Ok((Conn::H2(s), true));
            }
            let s = Box::pin(self.connect_h2(connect_timeout)).await?;
            if let Ok(mut g) = self.shared.lock() {
                *g = Some(s.clone());
            }
            return Ok((Conn::H2(s), false));
        }
        loop {
            let popped = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(s) = popped else { break };
            // Only ready connections are pooled; one that is not ready any more has closed.
            if s.is_ready() {
                return Ok((Conn::H1(s), true));
            }
        }
        Ok((
            Conn::H1(Box::pin(self.connect_h1(connect_timeout)).await?),
            false,
        ))
    }

    /// A new connection, never a pooled one (after a pooled one turned out stale).
    pub async fn checkout_fresh(
        &self,
        connect_timeout: Duration,
    ) -> Result<(Conn, bool), ConnectError> {
        if self.http2 {
            let s = Box::pin(self.connect_h2(connect_timeout)).await?;
            if let Ok(mut g) = self.shared.lock() {
                *g = Some(s.clone());
            }
            return Ok((Conn::H2(s), false));
        }
        Ok((
            Conn::H1(Box::pin(self.connect_h1(connect_timeout)).await?),
            false,
        ))
    }

    /// Returns an HTTP/1.1 connection whose response was read to the end. It goes back
    /// on the idle stack once it can take another request (the request body may still be
    /// on its way); a connection that never gets there is dropped when it closes.
    pub fn checkin(self: &Arc<Self>, s: http1::SendRequest<RequestBody>) {
        if s.is_ready() {
            self.push_idle(s);
            return;
        }
        if s.is_closed() {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let mut s = s;
            if s.ready().await.is_ok() {
                pool.push_idle(s);
            }
        });
    }

    fn push_idle(&self, s: http1::SendRequest<RequestBody>) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < MAX_IDLE_PER_ENDPOINT
        {
            v.push(s);
        }
    }

    /// Forgets the shared HTTP/2 connection (after it failed).
    pub fn reset_shared(&self) {
        if let Ok(mut g) = self.shared.lock() {
            *g = None;
        }
    }

    async fn tcp(&self, connect_timeout: Duration) -> Result<TcpStream, ConnectError> {
        let res = tokio::time::timeout(connect_timeout, TcpStream::connect(self.addr)).await;
        let stream = match res {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.connect_failures.fetch_add(1, Ordering::Relaxed);
                return Err(ConnectError::Io(self.addr, e));
            }
            Err(_) => {
                self.connect_failures.fetch_add(1, Ordering::Relaxed);
                return Err(ConnectError::Timeout(self.addr));
            }
        };
        // Small request/response exchanges must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    async fn connect_h1(
        &self,
        connect_timeout: Duration,
    ) -> Result<http1::SendRequest<RequestBody>, ConnectError> {
        let stream = self.tcp(connect_timeout).await?;
        // One flat buffer per write (`send`) rather than `writev` of head and body: for
        // the small messages a gateway mostly carries, the kernel's iovec path cost more
        // than hyper copying the body (measured in BENCHMARKS.md).
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(self.addr, e))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(upstream = %addr, error = %e, "upstream HTTP/1.1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn connect_h2(
        &self,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<RequestBody>, ConnectError> {
        let stream = self.tcp(connect_timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_connection_window_size(crate::proxy::H2_CONNECTION_WINDOW)
            .initial_stream_window_size(crate::proxy::H2_STREAM_WINDOW)
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(self.addr, e))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(upstream = %addr, error = %e, "upstream HTTP/2 connection ended");
            }
        });
        Ok(sender)
    }
}
