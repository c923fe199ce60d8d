//! Istio's TCP metrics (`istio_tcp_*`) for every downstream connection that is not HTTP:
//! opaque TCP, Redis, Dubbo and Thrift. A served stream is wrapped in [`Counted`], which
//! counts the connection when made and closed and adds bytes as they pass (one atomic
//! add per read or write, no lock).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::metrics::{
    Metrics, ServiceMetrics, TCP_CONNECTIONS_CLOSED, TCP_CONNECTIONS_OPENED, TCP_RECEIVED_BYTES,
    TCP_SENT_BYTES,
};

/// The `istio_tcp_*` counters of one listener's service.
#[derive(Debug, Clone)]
pub struct TcpMetrics {
    /// `istio_tcp_connections_opened_total`.
    pub opened: Counter,
    /// `istio_tcp_connections_closed_total`.
    pub closed: Counter,
    /// `istio_tcp_sent_bytes_total`: bytes from downstream, on their way to the service.
    pub sent: Counter,
    /// `istio_tcp_received_bytes_total`: bytes written back to downstream.
    pub received: Counter,
}

impl TcpMetrics {
    /// The counters for `service`'s labels (registered once per listener).
    pub fn new(registry: &Metrics, service: &ServiceMetrics) -> TcpMetrics {
        let labels = service.base_labels();
        TcpMetrics {
            opened: registry.counter(TCP_CONNECTIONS_OPENED, labels.clone()),
            closed: registry.counter(TCP_CONNECTIONS_CLOSED, labels.clone()),
            sent: registry.counter(TCP_SENT_BYTES, labels.clone()),
            received: registry.counter(TCP_RECEIVED_BYTES, labels),
        }
    }

    /// Wraps a downstream stream, counting it as opened now and closed when dropped.
    pub fn count<S>(&self, stream: S) -> Counted<S> {
        Counted::new(stream, Some(self.clone()))
    }
}

pin_project_lite::pin_project! {
    /// A downstream stream whose bytes and lifetime go into `istio_tcp_*`.
    #[derive(Debug)]
    pub struct Counted<S> {
        #[pin]
        inner: S,
        metrics: Option<TcpMetrics>,
    }

    impl<S> PinnedDrop for Counted<S> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(m) = &this.metrics {
                m.closed.increment(1);
            }
        }
    }
}

impl<S> Counted<S> {
    /// Wraps `stream`, counting into `metrics` if any (tests' backends have none).
    pub fn new(stream: S, metrics: Option<TcpMetrics>) -> Counted<S> {
        if let Some(m) = &metrics {
            m.opened.increment(1);
        }
        Counted {
            inner: stream,
            metrics,
        }
    }
}

impl<S: AsyncRead> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let poll = this.inner.poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0
            && let Some(m) = this.metrics
        {
            m.sent.increment(n as u64);
        }
        poll
    }
}

impl<S: AsyncWrite> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(m)) = (&poll, this.metrics) {
            m.received.increment(*n as u64);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(m)) = (&poll, this.metrics) {
            m.received.increment(*n as u64);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::model::listener::ServiceLabels;

    #[tokio::test]
    async fn a_counted_stream_reports_its_bytes_and_its_life() {
        let registry = Metrics::new();
        let svc = ServiceMetrics::new(
            registry.clone(),
            &ServiceLabels {
                service: "redis.ns.svc.cluster.local".into(),
                ..Default::default()
            },
        );
        let tcp = TcpMetrics::new(&registry, &svc);
        let (client, server) = tokio::io::duplex(64);
        let mut counted = tcp.count(server);
        let mut client = client;
        client.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 6];
        counted.read_exact(&mut buf).await.unwrap();
        counted.write_all(b"+PONG\r\n").await.unwrap();
        drop(counted);
        let text = registry.render();
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("redis.ns.svc.cluster.local"))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(
            value(TCP_CONNECTIONS_OPENED).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            value(TCP_CONNECTIONS_CLOSED).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(value(TCP_SENT_BYTES).as_deref(), Some("6"), "{text}");
        assert_eq!(value(TCP_RECEIVED_BYTES).as_deref(), Some("7"), "{text}");
    }
}
