//! The data path: HTTP (HTTP/1.1 and h2c on one port) and opaque TCP proxying.

pub mod attempts;
pub mod body;
pub mod exchange;
pub mod http;
pub mod local_reply;
pub mod meta;
pub mod redis;
pub mod retry;
mod shadow;
pub mod tcp;
pub mod upstream;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cluster::Snapshot;
use crate::model::listener::{CodecKind, FilterConfig, Listener, ListenerKind};
use crate::policy::chain::{Chain, Env};
use crate::telemetry::metrics::{self, Metrics, ServiceMetrics};

/// Read buffer growth step of the codec-based connections (Dubbo, Thrift, Redis).
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// Bytes gathered into one write at most: frames queued while a write was under way go
/// out together, one syscall for many calls (each call otherwise costs one send per side).
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// HTTP/2 flow-control window of a connection, both directions (downstream and upstream),
/// fixed rather than adaptive. h2 lets a connection hold unread small DATA frames only up
/// to half its connection window (at least 100 frames' worth) and otherwise closes it
/// (GOAWAY ENHANCE_YOUR_CALM), failing every stream on it: with the adaptive window's
/// 64 KiB start, a connection multiplexing a few hundred small gRPC messages at once lost
/// about 4 % of its calls. 16 MiB holds tens of thousands; Envoy's default is 256 MiB.
pub(crate) const H2_CONNECTION_WINDOW: u32 = 16 << 20;
/// HTTP/2 flow-control window of one stream (Envoy's default is 256 MiB; 1 MiB keeps what
/// one slow reader can make the gateway buffer small).
pub(crate) const H2_STREAM_WINDOW: u32 = 1 << 20;

/// Reads more bytes into `buf`; `Err` with the reason the connection is over (closed by
/// the peer, or a read error).
pub(crate) async fn read_more<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut bytes::BytesMut,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    buf.reserve(READ_CHUNK);
    match reader.read_buf(buf).await {
        Ok(0) => Err("closed by the upstream".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read failed: {e}")),
    }
}

/// State shared by every listener: the current configuration and the metrics registry.
#[derive(Debug)]
pub struct Shared {
    /// The current configuration; requests load it once and keep that version.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Largest Dubbo/Thrift message accepted (`--max-rpc-message-bytes`).
    pub max_rpc_message_bytes: usize,
    /// Largest Redis command accepted (`--max-redis-request-bytes`).
    pub max_redis_request_bytes: usize,
    /// The gateway's zone (`--zone`; empty: unknown), for zone-aware picks.
    pub zone: Arc<str>,
    /// Channels to rate limit services, kept across pushes and listener changes.
    pub rls: Arc<crate::policy::global_ratelimit::RlsClients>,
    /// Starts the requests' spans and exports them (`--trace-sampling`,
    /// `--otlp-endpoint`).
    pub tracer: Arc<crate::telemetry::trace::Tracer>,
}

/// What an HTTP listener's connections need.
#[derive(Debug)]
pub struct HttpListener {
    /// Listener name.
    pub name: String,
    /// RDS name, looked up in the snapshot on each request.
    pub route_config: String,
    /// Request metrics with this service's labels.
    pub metrics: ServiceMetrics,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The request filters before the router.
    pub chain: Chain,
}

/// What a TCP proxy listener's connections need.
#[derive(Debug)]
pub struct TcpProxyListener {
    /// Listener name.
    pub name: String,
    /// Upstream cluster.
    pub cluster: String,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// `istio_tcp_connections_opened_total`.
    pub opened: ::metrics::Counter,
    /// `istio_tcp_connections_closed_total`.
    pub closed: ::metrics::Counter,
    /// `istio_tcp_sent_bytes_total`.
    pub sent: ::metrics::Counter,
    /// `istio_tcp_received_bytes_total`.
    pub received: ::metrics::Counter,
}

/// The per-listener handler, chosen by the listener's filter.
#[derive(Debug, Clone)]
pub enum ListenerCtx {
    /// HTTP connection manager.
    Http(Arc<HttpListener>),
    /// TCP proxy.
    Tcp(Arc<TcpProxyListener>),
    /// MetaProtocol proxy (Dubbo, Thrift).
    Meta(Arc<meta::backend::MetaListener>),
    /// Redis proxy.
    Redis(Arc<redis::RedisListener>),
}

impl ListenerCtx {
    /// Builds the handler of a listener (label sets are built here, once).
    pub fn new(l: &Listener, shared: &Arc<Shared>) -> Self {
        let svc = ServiceMetrics::new(shared.metrics.clone(), &l.service);
        match &l.kind {
            ListenerKind::Http {
                route_config,
                filters,
            } => ListenerCtx::Http(Arc::new(HttpListener {
                name: l.name.clone(),
                route_config: route_config.clone(),
                metrics: svc,
                shared: shared.clone(),
                chain: chain(&l.name, filters, shared),
            })),
            ListenerKind::Tcp { cluster } => {
                let labels = svc.base_labels();
                let m = &shared.metrics;
                ListenerCtx::Tcp(Arc::new(TcpProxyListener {
                    name: l.name.clone(),
                    cluster: cluster.clone(),
                    shared: shared.clone(),
                    opened: m.counter(metrics::TCP_CONNECTIONS_OPENED, labels.clone()),
                    closed: m.counter(metrics::TCP_CONNECTIONS_CLOSED, labels.clone()),
                    sent: m.counter(metrics::TCP_SENT_BYTES, labels.clone()),
                    received: m.counter(metrics::TCP_RECEIVED_BYTES, labels),
                }))
            }
            ListenerKind::Redis(config) => ListenerCtx::Redis(Arc::new(redis::RedisListener::new(
                l.name.clone(),
                config.clone(),
                shared.clone(),
                svc.tcp().clone(),
            ))),
            ListenerKind::Meta {
                route_config,
                codec,
                filters,
            } => {
                let (codec, protocol): (Arc<dyn crate::codec::Codec>, _) = match codec {
                    CodecKind::Dubbo => (
                        Arc::new(crate::codec::dubbo::DubboCodec::new(
                            shared.max_rpc_message_bytes,
                        )),
                        metrics::RequestProtocol::Dubbo,
                    ),
                    CodecKind::Thrift => (
                        Arc::new(crate::codec::thrift::ThriftCodec::new(
                            shared.max_rpc_message_bytes,
                        )),
                        metrics::RequestProtocol::Thrift,
                    ),
                };
                ListenerCtx::Meta(Arc::new(meta::backend::MetaListener {
                    name: l.name.clone(),
                    route_config: route_config.clone(),
                    codec,
                    shared: shared.clone(),
                    metrics: svc,
                    protocol,
                    chain: chain(&l.name, filters, shared),
                }))
            }
        }
    }
}

/// The listener's filter chain. Its filters were validated when the listener was
/// accepted, so building cannot fail; if it did, the listener would run without them,
/// hence the error log.
fn chain(listener: &str, filters: &[FilterConfig], shared: &Shared) -> Chain {
    let env = Env {
        snapshot: shared.snapshot.clone(),
        rls: shared.rls.clone(),
    };
    Chain::build(listener, filters, &env).unwrap_or_else(|e| {
        tracing::error!(listener, error = %e, "filters not built; the listener runs without them");
        Chain::default()
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod h2_upstream_tests;
