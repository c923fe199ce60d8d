//! An HTTP test backend: HTTP/1.1 and h2c (prior knowledge) on one socket, answering with its
//! own name so a test can tell which endpoint served a request.
//!
//! - every response carries `x-backend: <name>` and, unless told otherwise, the body `<name>`;
//! - `/delay/<ms>` answers after `ms` milliseconds;
//! - `/status/<code>` answers with that status;
//! - [`Backend::set_status`] makes every other path answer with a fixed status (e.g. 503);
//! - the request's path, `host` and HTTP version come back in `x-path`, `x-host` and
//!   `x-version` (`HTTP/1.1`, `HTTP/2.0`), its `traceparent` (if any) in
//!   `x-traceparent`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A running test backend; stops (closing its connections) when dropped.
pub struct Backend {
    name: String,
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

#[derive(Default)]
struct State {
    requests: AtomicU64,
    /// Every request target (path and query) received, so a test can tell whether one
    /// particular request got here.
    targets: std::sync::Mutex<std::collections::HashSet<String>>,
    /// 0 = answer normally, else the status every ordinary request gets.
    forced_status: AtomicU16,
}

impl Backend {
    /// Starts a backend called `name` on `addr` (port 0 picks a free port).
    pub async fn start(name: &str, addr: SocketAddr) -> anyhow::Result<Backend> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("backend {name}: binding {addr}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, name.to_string(), state.clone()));
        Ok(Backend {
            name: name.to_string(),
            addr,
            state,
            task,
        })
    }

    /// The backend's name, as it appears in `x-backend` and the body.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it has received (counted when they arrive).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Whether a request for `target` (path and query, e.g. `/x?n=3`) has arrived.
    pub fn received(&self, target: &str) -> bool {
        self.state
            .targets
            .lock()
            .map(|t| t.contains(target))
            .unwrap_or(false)
    }

    /// How many distinct request targets starting with `prefix` have arrived.
    pub fn requests_matching(&self, prefix: &str) -> usize {
        self.state
            .targets
            .lock()
            .map(|t| t.iter().filter(|t| t.starts_with(prefix)).count())
            .unwrap_or(0)
    }

    /// Makes every ordinary request (not `/delay` or `/status`) answer with `status`;
    /// `None` restores normal answers.
    pub fn set_status(&self, status: Option<u16>) {
        self.state
            .forced_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Stops accepting and closes every open connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl crate::mesh::Upstream for Backend {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, name: String, state: Arc<State>) {
    // Dropping this set (when the task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            Some(_) = connections.join_next() => continue,
        };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        let state = state.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let name = name.clone();
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(req, &name, &state).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(req: Request<Incoming>, name: &str, state: &State) -> Response<Full<Bytes>> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(target) = req.uri().path_and_query()
        && let Ok(mut targets) = state.targets.lock()
    {
        targets.insert(target.as_str().to_string());
    }
    let path = req.uri().path().to_string();
    let version = format!("{:?}", req.version());
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Read the whole request body so keep-alive connections stay usable.
    let _ = req.into_body().collect().await;

    let mut status = StatusCode::OK;
    if let Some(ms) = path
        .strip_prefix("/delay/")
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|v| v.parse::<u16>().ok())
    {
        status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    } else {
        let forced = state.forced_status.load(Ordering::SeqCst);
        if forced != 0 {
            status = StatusCode::from_u16(forced).unwrap_or(StatusCode::BAD_REQUEST);
        }
    }
    let mut response = Response::new(Full::new(Bytes::from(name.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let fields = [
        ("x-backend", name),
        ("x-path", &path),
        ("x-host", &host),
        ("x-version", &version),
        ("x-traceparent", &traceparent),
    ];
    for (key, value) in fields {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(key, value);
        }
    }
    response
}
