//! The listener manager: binds, updates and drains listeners as LDS changes.
//!
//! A listener whose resource did not change is not touched. One whose address stays the
//! same keeps its socket (no accept-queue loss) and gets a new handler: new connections
//! use it, the connections of the old version drain gracefully (HTTP/1.1 closes after
//! the current response, HTTP/2 gets GOAWAY). One whose address changes binds the new
//! address first, then drains the old one; a bind failure keeps the old version and is
//! reported back, to be NACKed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::drain::{self, DrainTrigger, DrainWatch};
use crate::model::listener::Listener;
use crate::proxy::{ListenerCtx, Shared, http, tcp};

/// Listen backlog: bursts of new connections must not be refused.
const BACKLOG: u32 = 4096;

/// On shutdown, how long HTTP/1.1 keep-alive connections stay open (each response then
/// carrying `Connection: close`) before idle ones are closed. Closing an idle keep-alive
/// connection at once races with a client writing its next request on it; a client
/// under load sends one within this window and is told to close cleanly instead.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A listener change computed from an LDS push.
#[derive(Debug, Clone)]
pub enum ListenerChange {
    /// Add or replace.
    Upsert(Arc<Listener>),
    /// Remove.
    Remove(String),
}

/// Why a listener could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Binding the address failed.
    #[error(
        "cannot bind {addr}: {source} (is another process using it, or is the address not local?)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gateway is draining and takes no new listeners.
    #[error("gateway is draining")]
    Draining,
}

struct Running {
    listener: Arc<Listener>,
    local_addr: SocketAddr,
    ctx: watch::Sender<ListenerCtx>,
    stop: DrainTrigger,
    task: JoinHandle<()>,
}

/// Owns the bound listeners.
pub struct ListenerManager {
    shared: Arc<Shared>,
    running: Mutex<BTreeMap<String, Running>>,
    retired: Mutex<Vec<JoinHandle<()>>>,
    drain_timeout: Duration,
    draining: AtomicBool,
    drained: watch::Sender<bool>,
}

impl std::fmt::Debug for ListenerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerManager")
            .field("bound", &self.bound())
            .finish()
    }
}

impl ListenerManager {
    /// A manager with no listeners.
    pub fn new(shared: Arc<Shared>, drain_timeout: Duration) -> Self {
        ListenerManager {
            shared,
            running: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Vec::new()),
            drain_timeout,
            draining: AtomicBool::new(false),
            drained: watch::channel(false).0,
        }
    }

    /// Applies changes; returns the listeners that could not be applied, with why.
    /// Must run inside the tokio runtime (it binds sockets and spawns accept loops).
    pub fn apply(&self, changes: Vec<ListenerChange>) -> Vec<(String, ListenerError)> {
        let mut errors = Vec::new();
        let Ok(mut running) = self.running.lock() else {
            return errors;
        };
        for change in changes {
            match change {
                ListenerChange::Remove(name) => {
                    if let Some(r) = running.remove(&name) {
                        tracing::info!(listener = %name, address = %r.local_addr, "listener removed, draining");
                        self.retire(r);
                    }
                }
                ListenerChange::Upsert(l) => {
                    if self.draining.load(Ordering::Relaxed) {
                        errors.push((l.name.clone(), ListenerError::Draining));
                        continue;
                    }
                    if let Some(r) = running.get_mut(&l.name) {
                        if *r.listener == *l {
                            continue;
                        }
                        if r.listener.address == l.address {
                            tracing::info!(listener = %l.name, "listener updated in place");
                            r.ctx.send_replace(ListenerCtx::new(&l, &self.shared));
                            r.listener = l;
                            continue;
                        }
                    }
                    match self.start(l.clone()) {
                        Ok(new) => {
                            tracing::info!(listener = %l.name, address = %new.local_addr, "listener bound");
                            if let Some(old) = running.insert(l.name.clone(), new) {
                                self.retire(old);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(listener = %l.name, error = %e, "listener rejected");
                            errors.push((l.name.clone(), e));
                        }
                    }
                }
            }
        }
        errors
    }

    /// Bound listeners: name and local address.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .lock()
            .map(|r| r.iter().map(|(n, l)| (n.clone(), l.local_addr)).collect())
            .unwrap_or_default()
    }

    /// Stops accepting on every listener and waits (up to the drain timeout) for their
    /// connections to finish.
    pub async fn drain_all(&self) {
        if self.draining.swap(true, Ordering::SeqCst) {
            // Another caller drains: wait for it.
            let _ = self.drained.subscribe().wait_for(|d| *d).await;
            return;
        }
        let running = self
            .running
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        for r in running.into_values() {
            self.retire(r);
        }
        let tasks = self
            .retired
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let all = futures::future::join_all(tasks);
        // Each accept loop bounds its own drain; this bound only guards against a stuck task.
        let _ = tokio::time::timeout(self.drain_timeout + Duration::from_secs(1), all).await;
        self.drained.send_replace(true);
    }

    /// Whether a drain started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn retire(&self, r: Running) {
        r.stop.drain();
        if let Ok(mut v) = self.retired.lock() {
            v.retain(|t| !t.is_finished());
            v.push(r.task);
        }
    }

    fn start(&self, l: Arc<Listener>) -> Result<Running, ListenerError> {
        let bind = |addr: SocketAddr| -> std::io::Result<TcpListener> {
            let s = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(BACKLOG)
        };
        let listener = bind(l.address).map_err(|source| ListenerError::Bind {
            addr: l.address,
            source,
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ListenerError::Bind {
                addr: l.address,
                source,
            })?;
        let (ctx_tx, ctx_rx) = watch::channel(ListenerCtx::new(&l, &self.shared));
        let (stop, stop_watch) = drain::channel();
        let task = tokio::spawn(accept_loop(
            l.name.clone(),
            listener,
            ctx_rx,
            stop_watch,
            self.drain_timeout,
        ));
        Ok(Running {
            listener: l,
            local_addr,
            ctx: ctx_tx,
            stop,
            task,
        })
    }
}

async fn accept_loop(
    name: String,
    listener: TcpListener,
    mut ctx_rx: watch::Receiver<ListenerCtx>,
    stop: DrainWatch,
    drain_timeout: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Responses go out as one flat buffer (`send`), not `writev` of head and body: for
    // small messages the kernel's iovec path cost more than hyper copying the body.
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_connection_window_size(crate::proxy::H2_CONNECTION_WINDOW)
        .initial_stream_window_size(crate::proxy::H2_STREAM_WINDOW);
    let mut graceful = GracefulShutdown::new();
    // Set once this listener stops accepting: HTTP/1.1 responses then close their connection.
    let mut closing = Arc::new(AtomicBool::new(false));
    // TCP-proxy connections each hold a sender; the channel closes when the last ends.
    let (tcp_live, mut tcp_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut ctx = ctx_rx.borrow_and_update().clone();
    let stopped = stop.signaled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            changed = ctx_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                ctx = ctx_rx.borrow_and_update().clone();
                let old = std::mem::replace(&mut graceful, GracefulShutdown::new());
                let old_closing = std::mem::replace(&mut closing, Arc::new(AtomicBool::new(false)));
                tokio::spawn(drain_connections(name.clone(), old, old_closing, drain_timeout));
            }
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match &ctx {
                    ListenerCtx::Http(h) => {
                        let h = h.clone();
                        let peer = http::Peer::new(remote);
                        let closing = closing.clone();
                        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let h1 = req.version() < hyper::Version::HTTP_2;
                            let response = http::handle(h.clone(), peer.clone(), req);
                            let closing = closing.clone();
                            async move {
                                let mut response = response.await?;
                                if h1 && closing.load(Ordering::Relaxed) {
                                    response.headers_mut().insert(
                                        hyper::header::CONNECTION,
                                        hyper::header::HeaderValue::from_static("close"),
                                    );
                                }
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        });
                        let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                        let conn = graceful.watch(conn);
                        let span = tracing::debug_span!("conn", listener = %name, %remote);
                        tokio::spawn(
                            async move {
                                if let Err(e) = conn.await {
                                    tracing::debug!(error = %e, "downstream connection error");
                                }
                            }
                            .instrument(span),
                        );
                    }
                    ListenerCtx::Tcp(t) => {
                        let t = t.clone();
                        let span = tracing::debug_span!("tcp", listener = %name, %remote);
                        let live = tcp_live.clone();
                        tokio::spawn(
                            async move {
                                tcp::serve(t, stream).await;
                                drop(live);
                            }
                            .instrument(span),
                        );
                    }
                    ListenerCtx::Redis(r) => {
                        let r = r.clone();
                        let span = tracing::debug_span!("redis", listener = %name, %remote);
                        // No graceful close in RESP either: the drain timeout ends it.
                        let live = tcp_live.clone();
                        let max = r.shared.max_redis_request_bytes;
                        tokio::spawn(
                            async move {
                                crate::proxy::redis::downstream::serve(stream, r, max).await;
                                drop(live);
                            }
                            .instrument(span),
                        );
                    }
                    ListenerCtx::Meta(m) => {
                        let m = m.clone();
                        let span = tracing::debug_span!("meta", listener = %name, %remote, protocol = m.codec.name());
                        // Like opaque TCP, a codec connection has no graceful close of its
                        // own: it gets the drain timeout to end.
                        let live = tcp_live.clone();
                        tokio::spawn(
                            async move {
                                let source = crate::policy::request::Source::new(remote);
                                crate::proxy::meta::downstream::serve(stream, source, m.codec.clone(), m).await;
                                drop(live);
                            }
                            .instrument(span),
                        );
                    }
                }
            }
        }
    }
    drop(listener);
    drop(tcp_live);
    // Opaque TCP has no graceful close: its connections get the drain timeout to end.
    let tcp = async {
        let _ = tokio::time::timeout(drain_timeout, tcp_done.recv()).await;
    };
    tokio::join!(
        drain_connections(name, graceful, closing, drain_timeout),
        tcp
    );
}

/// Drains one generation of HTTP connections: first a grace period in which HTTP/1.1
/// responses carry `Connection: close` (connections still in use close themselves after a
/// response), then graceful shutdown of the rest (idle HTTP/1.1 closed, HTTP/2 GOAWAY),
/// all within `timeout`.
async fn drain_connections(
    name: String,
    graceful: GracefulShutdown,
    closing: Arc<AtomicBool>,
    timeout: Duration,
) {
    closing.store(true, Ordering::Relaxed);
    let grace = CLOSE_GRACE.min(timeout / 2);
    let deadline = tokio::time::Instant::now() + grace;
    while graceful.count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let timeout = timeout.saturating_sub(grace);
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = %name, ?timeout, "drain timeout reached; closing remaining connections");
    }
}
