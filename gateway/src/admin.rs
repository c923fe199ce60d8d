//! The admin server: readiness, health, metrics, config dump, listeners, clusters,
//! drain and runtime log level. Plain HTTP/1.1, meant for localhost.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::cluster::Snapshot;
use crate::drain::DrainWatch;
use crate::listener::ListenerManager;
use crate::readiness::Ready;
use crate::telemetry::LogHandle;
use crate::telemetry::metrics::Metrics;
use crate::xds::handlers::{ConfigStore, Entry};

/// What the admin endpoints read and act on.
pub struct AdminState {
    /// The gateway's configuration, rendered once.
    pub bootstrap: Value,
    /// Readiness tasks.
    pub ready: Ready,
    /// Accepted xDS resources.
    pub store: Arc<std::sync::Mutex<ConfigStore>>,
    /// The data path's snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Bound listeners.
    pub listeners: Arc<ListenerManager>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Runtime log level control, when the binary installed one.
    pub log: Option<LogHandle>,
    /// Starts a drain (`POST /drain`).
    pub start_drain: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminState")
    }
}

type Body = Full<Bytes>;

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything, including `/drain`, `/logging` and `/config_dump` (localhost).
    Full,
    /// Only the read-only probes kubelet and Prometheus need: `/ready`, `/healthz`,
    /// `/metrics` (the `--probe-listen` address, reachable from the pod network).
    Probes,
}

/// Serves the admin API (the endpoints of `scope`) on `listener` until `stop`.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, scope: Scope, stop: DrainWatch) {
    let stopped = stop.signaled();
    tokio::pin!(stopped);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, scope, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(v: &Value) -> Response<Body> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(state: &AdminState, scope: Scope, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if scope == Scope::Probes
        && !matches!(
            path,
            "/ready" | "/healthz" | "/metrics" | "/stats/prometheus"
        )
    {
        return text(
            StatusCode::NOT_FOUND,
            "endpoints: /ready /healthz /metrics\n",
        );
    }
    match (req.method(), path) {
        (&Method::GET, "/ready") => ready(state),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "OK\n"),
        (&Method::GET, "/metrics" | "/stats/prometheus") => {
            let mut r = text(StatusCode::OK, state.metrics.render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET, "/config_dump") => json_response(&config_dump(state)),
        (&Method::GET, "/listeners") => json_response(&listeners(state)),
        (&Method::GET, "/clusters") => text(StatusCode::OK, clusters(state)),
        (&Method::POST, "/drain" | "/drain_listeners") => {
            (state.start_drain)();
            text(StatusCode::OK, "draining\n")
        }
        (&Method::POST, "/logging") => logging(state, query),
        (_, "/drain" | "/logging") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "endpoints: /ready /healthz /metrics /config_dump /listeners /clusters POST /drain POST /logging?level=\n",
        ),
    }
}

fn ready(state: &AdminState) -> Response<Body> {
    if state.listeners.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n");
    }
    let pending = state.ready.pending();
    if pending.is_empty() {
        text(StatusCode::OK, "LIVE\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", pending.join("; ")),
        )
    }
}

fn logging(state: &AdminState, query: &str) -> Response<Body> {
    let level = query.split('&').find_map(|kv| kv.strip_prefix("level="));
    let Some(level) = level.filter(|l| !l.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: POST /logging?level=<filter, e.g. debug or info,access_log=off>\n",
        );
    };
    let level = level.replace("%2C", ",").replace("%3D", "=");
    let Some(log) = &state.log else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log level is not reloadable in this process\n",
        );
    };
    match log.set(&level) {
        Ok(()) => {
            tracing::info!(%level, "log level changed");
            text(StatusCode::OK, format!("log level: {level}\n"))
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

fn listeners(state: &AdminState) -> Value {
    let statuses: Vec<Value> = state
        .listeners
        .bound()
        .into_iter()
        .map(|(name, addr)| {
            json!({
                "name": name,
                "local_address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
            })
        })
        .collect();
    json!({ "listener_statuses": statuses })
}

fn clusters(state: &AdminState) -> String {
    let snap = state.snapshot.load();
    let mut names: Vec<&String> = snap.clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let Some(c) = snap.clusters.get(name) else {
            continue;
        };
        let k = &c.counters;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed).to_string();
        let cluster_stats = [
            (
                "default_priority::max_requests",
                c.config.max_requests.to_string(),
            ),
            (
                "default_priority::max_retries",
                c.config.max_retries.to_string(),
            ),
            ("lb_policy", format!("{:?}", c.config.lb)),
            ("http2", c.config.http2.to_string()),
            ("rq_active", load(&k.active_rq)),
            ("rq_total", load(&k.total_rq)),
            ("rq_overflow", load(&k.overflow_rq)),
            ("rq_retry", load(&k.retries)),
            ("rq_retry_overflow", load(&k.retry_overflow)),
            (
                "default_priority::max_connections",
                c.config.max_connections.to_string(),
            ),
            (
                "default_priority::max_pending_requests",
                c.config.max_pending.to_string(),
            ),
            ("rq_connection_slots_active", k.slots.in_use().to_string()),
            ("rq_pending_active", k.slots.pending().to_string()),
            ("upstream_rq_pending_total", load(&k.slots.pending_total)),
            (
                "upstream_rq_pending_overflow",
                load(&k.slots.pending_overflow),
            ),
            ("zone_aware", c.config.zone_aware.to_string()),
            ("outlier_detection", k.detector.enabled().to_string()),
            (
                "outlier_detection.ejections_enforced_total",
                load(&k.detector.ejections),
            ),
            (
                "outlier_detection.ejections_active",
                k.detector.ejected().to_string(),
            ),
        ];
        for (stat, value) in cluster_stats {
            let _ = writeln!(out, "{name}::{stat}::{value}");
        }
        let now = crate::cluster::outlier::now_ms();
        for (ep, health) in &c.members {
            let ejected = ep.is_ejected(now);
            let ejected_for_ms = ep
                .outlier
                .ejected_until()
                .filter(|_| ejected)
                .map_or(0, |t| t.saturating_sub(now));
            let endpoint_stats = [
                ("zone", ep.zone.to_string()),
                ("outlier_ejected", ejected.to_string()),
                ("outlier_ejected_for_ms", ejected_for_ms.to_string()),
                ("outlier_times_ejected", ep.outlier.times_ejected().to_string()),
                ("health_flags", health.as_str().to_string()),
                ("rq_active", load(&ep.active_rq)),
                ("rq_total", load(&ep.total_rq)),
                ("rq_error", load(&ep.failed_rq)),
                ("cx_total", load(&ep.pool.opened)),
                ("cx_connect_fail", load(&ep.pool.connect_failures)),
                ("cx_idle", ep.pool.idle_count().to_string()),
            ];
            for (stat, value) in endpoint_stats {
                let _ = writeln!(out, "{name}::{}::{stat}::{value}", ep.addr);
            }
        }
    }
    out
}

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

fn config_dump(state: &AdminState) -> Value {
    let Ok(store) = state.store.lock() else {
        return json!({"error": "store unavailable"});
    };
    let version = |t: &str| store.system_versions.get(t).cloned().unwrap_or_default();
    let listeners: Vec<Value> = store
        .listeners
        .iter()
        .map(|(name, e)| json!({"name": name, "active_state": active_state(e, "listener")}))
        .collect();
    let clusters: Vec<Value> = store
        .clusters
        .values()
        .map(|e| dynamic(e, "cluster"))
        .collect();
    let routes: Vec<Value> = store
        .routes
        .values()
        .map(|e| dynamic(e, "route_config"))
        .collect();
    let endpoints: Vec<Value> = store
        .endpoints
        .values()
        .map(|e| dynamic(e, "endpoint_config"))
        .collect();
    json!({
        "configs": [
            {"@type": format!("{ADMIN}BootstrapConfigDump"), "bootstrap": state.bootstrap, "last_updated": now()},
            {"@type": format!("{ADMIN}ListenersConfigDump"), "version_info": version(corridor_proto::type_url::LISTENER), "dynamic_listeners": listeners},
            {"@type": format!("{ADMIN}ClustersConfigDump"), "version_info": version(corridor_proto::type_url::CLUSTER), "dynamic_active_clusters": clusters},
            {"@type": format!("{ADMIN}RoutesConfigDump"), "dynamic_route_configs": routes},
            {"@type": format!("{ADMIN}EndpointsConfigDump"), "dynamic_endpoint_configs": endpoints},
        ]
    })
}

fn rendered<M>(e: &Entry<M>) -> Value {
    let mut v = corridor_proto::json::any_to_json(&e.resource)
        .unwrap_or_else(|err| json!({"error": err.to_string()}));
    redact(&mut v);
    v
}

/// Fields holding credentials (Redis passwords and usernames, downstream and upstream),
/// in proto and JSON spelling: shown as `[redacted]`, as Envoy marks them sensitive.
const SENSITIVE: [&str; 10] = [
    "downstream_auth_passwords",
    "downstreamAuthPasswords",
    "downstream_auth_password",
    "downstreamAuthPassword",
    "downstream_auth_username",
    "downstreamAuthUsername",
    "auth_password",
    "authPassword",
    "auth_username",
    "authUsername",
];

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if SENSITIVE.contains(&k.as_str()) {
                    *child = json!("[redacted]");
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn active_state<M>(e: &Entry<M>, key: &str) -> Value {
    json!({"version_info": e.version, key: rendered(e), "last_updated": rfc3339(e.last_updated)})
}

fn dynamic<M>(e: &Entry<M>, key: &str) -> Value {
    active_state(e, key)
}

fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_the_config_dump() {
        let mut v = json!({"typed_config": {"downstream_auth_passwords": [{"inline_string": "s3cret"}], "stat_prefix": "x"},
            "typed_extension_protocol_options": {"r": {"authPassword": {"inlineString": "p"}, "authUsername": {"inlineString": "u"}}}});
        redact(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("\"p\"") && !text.contains("\"u\""),
            "{text}"
        );
        assert!(text.contains("stat_prefix"), "{text}");
    }
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }
}
