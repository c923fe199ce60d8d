//! The controller's probe endpoint (`--probe-listen`): `GET /ready` (200 once every
//! named readiness task has finished, else 503 naming the pending ones), `GET /healthz`
//! (200 while the process serves), `GET /metrics` (Prometheus text: snapshots published,
//! watch restarts per kind, leadership).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    fmt::Write,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// Counters and gauges shown on `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Snapshots the source published (changed content only).
    pub snapshots_published: AtomicU64,
    /// Whether this replica leads (cluster mode).
    pub leader: AtomicBool,
    /// Whether the controller runs against the Kubernetes API (the leader gauge means
    /// something only then).
    pub cluster_mode: AtomicBool,
    watch_restarts: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts a watch of `kind` that ended with an error and restarts.
    pub fn watch_restarted(&self, kind: &str) {
        let mut map = self
            .watch_restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(kind.to_string()).or_default() += 1;
    }

    /// Watch restarts of `kind` so far.
    pub fn watch_restarts(&self, kind: &str) -> u64 {
        let map = self
            .watch_restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(kind).copied().unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, ready: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP corridor_controller_snapshots_published_total Snapshots with new content published to xDS clients.\n\
             # TYPE corridor_controller_snapshots_published_total counter\n\
             corridor_controller_snapshots_published_total {}",
            self.snapshots_published.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP corridor_controller_watch_restarts_total Kubernetes watches that failed and restarted, by kind.\n\
             # TYPE corridor_controller_watch_restarts_total counter"
        );
        let restarts = self
            .watch_restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (kind, n) in restarts.iter() {
            let _ = writeln!(
                out,
                "corridor_controller_watch_restarts_total{{kind=\"{kind}\"}} {n}"
            );
        }
        drop(restarts);
        if self.cluster_mode.load(Ordering::Relaxed) {
            let _ = writeln!(
                out,
                "# HELP corridor_controller_leader 1 when this replica holds the leader Lease.\n\
                 # TYPE corridor_controller_leader gauge\n\
                 corridor_controller_leader {}",
                u8::from(self.leader.load(Ordering::Relaxed))
            );
        }
        let _ = writeln!(
            out,
            "# HELP corridor_controller_ready 1 once the first snapshot is built.\n\
             # TYPE corridor_controller_ready gauge\n\
             corridor_controller_ready {}",
            u8::from(ready)
        );
        out
    }
}

/// Named things start-up waits for; `/ready` answers 200 once none is pending.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: Mutex<BTreeMap<u64, String>>,
    next: AtomicU64,
}

/// One pending readiness task; done when dropped (or [`ReadyTask::done`]).
#[derive(Debug)]
pub struct ReadyTask {
    readiness: Arc<Readiness>,
    id: u64,
}

impl ReadyTask {
    /// Marks the task done.
    pub fn done(self) {}
}

impl Drop for ReadyTask {
    fn drop(&mut self) {
        let mut pending = self
            .readiness
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pending.remove(&self.id);
    }
}

impl Readiness {
    /// Registers a pending task named `name`.
    pub fn task(self: &Arc<Self>, name: impl Into<String>) -> ReadyTask {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.insert(id, name.into());
        ReadyTask {
            readiness: self.clone(),
            id,
        }
    }

    /// Names of the pending tasks, sorted.
    pub fn pending(&self) -> Vec<String> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = pending.values().cloned().collect();
        names.sort();
        names
    }

    /// True when nothing is pending.
    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }
}

/// Serves the probes on `listener` until `shutdown` turns true.
pub fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "probe accept failed");
                        continue;
                    }
                },
            };
            let (readiness, metrics) = (readiness.clone(), metrics.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let reply = answer(&req, &readiness, &metrics);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Binds the probe address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

fn answer(
    req: &Request<Incoming>,
    readiness: &Readiness,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    let text = |code: StatusCode, body: String, content_type: &str| {
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/ready" => {
            let pending = readiness.pending();
            if pending.is_empty() {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            } else {
                let body = format!("not ready; waiting for: {}\n", pending.join(", "));
                text(StatusCode::SERVICE_UNAVAILABLE, body, "text/plain")
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/metrics" => text(
            StatusCode::OK,
            metrics.render(readiness.is_ready()),
            "text/plain; version=0.0.4",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_tasks_clear_on_drop() {
        let r = Arc::new(Readiness::default());
        let a = r.task("initial list of Service");
        let b = r.task("first snapshot");
        assert_eq!(
            r.pending(),
            vec!["first snapshot", "initial list of Service"]
        );
        drop(a);
        assert!(!r.is_ready());
        b.done();
        assert!(r.is_ready());
    }

    #[test]
    fn metrics_render_counters_per_kind() {
        let m = Metrics::default();
        m.snapshots_published.fetch_add(3, Ordering::Relaxed);
        m.watch_restarted("Pod");
        m.watch_restarted("Pod");
        m.cluster_mode.store(true, Ordering::Relaxed);
        let text = m.render(true);
        assert!(
            text.contains("corridor_controller_snapshots_published_total 3"),
            "{text}"
        );
        assert!(
            text.contains("corridor_controller_watch_restarts_total{kind=\"Pod\"} 2"),
            "{text}"
        );
        assert!(text.contains("corridor_controller_leader 0"), "{text}");
        assert!(text.contains("corridor_controller_ready 1"), "{text}");
    }
}
