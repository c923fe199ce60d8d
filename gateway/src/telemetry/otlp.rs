//! OTLP/gRPC span export (`--otlp-endpoint`): finished sampled spans go into a bounded
//! queue that one background task drains in batches to the collector's `TraceService`.
//! The request path only ever `try_send`s: a full queue or a dead collector drops spans
//! (counted), never delays a request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corridor_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use corridor_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use corridor_proto::opentelemetry::proto::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value,
};
use corridor_proto::opentelemetry::proto::resource::v1::Resource;
use corridor_proto::opentelemetry::proto::trace::v1 as otlp;
use metrics::Counter;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::metrics::{Metrics, SPANS_DROPPED, SPANS_EXPORTED};
use super::trace::Span;

/// Spans waiting for export at most; beyond, new spans are dropped. Enough for a few
/// seconds of a busy gateway at full sampling while the collector is slow.
pub const QUEUE: usize = 8192;
/// Spans per export request at most (OpenTelemetry SDKs' default batch size).
pub const BATCH: usize = 512;
/// How long a span may wait for its batch to fill before the batch goes anyway.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long one export may take; a slower collector loses that batch.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `service.name` resource attribute of the gateway's spans.
pub const SERVICE_NAME: &str = "corridor-gateway";

/// Why the exporter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The endpoint is not a URI.
    #[error("invalid --otlp-endpoint {0:?}: {1}; use host:port or http://host:port")]
    Endpoint(String, String),
}

/// A finished span, ready to encode.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The span as started.
    pub span: Span,
    /// When the request ended.
    pub end: SystemTime,
    /// The span's name (protocol and operation).
    pub name: String,
    /// Whether the request failed (the span's status is then ERROR).
    pub error: bool,
    /// Attributes (string values).
    pub attributes: Vec<(&'static str, String)>,
}

/// The request path's end of the export queue.
#[derive(Debug, Clone)]
pub struct Exporter {
    queue: mpsc::Sender<Finished>,
    dropped: Counter,
}

impl Exporter {
    /// Starts the export task towards `endpoint` (the collector is dialled lazily, and
    /// again after failures). Must run inside a tokio runtime.
    pub fn spawn(endpoint: &str, metrics: &Metrics) -> Result<Exporter, OtlpError> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| OtlpError::Endpoint(endpoint.into(), e.to_string()))?
            .connect_timeout(EXPORT_TIMEOUT)
            .timeout(EXPORT_TIMEOUT)
            .connect_lazy();
        let (queue, rx) = mpsc::channel(QUEUE);
        let exported = metrics.counter(SPANS_EXPORTED, vec![]);
        let dropped = metrics.counter(SPANS_DROPPED, vec![]);
        tokio::spawn(run(channel, rx, exported, dropped.clone()));
        Ok(Exporter { queue, dropped })
    }

    /// Queues a span; drops it (counted) when the queue is full.
    pub fn export(&self, span: Finished) {
        if self.queue.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Drains the queue in batches until every sender is gone, then sends what is left.
async fn run(
    channel: Channel,
    mut rx: mpsc::Receiver<Finished>,
    exported: Counter,
    dropped: Counter,
) {
    let mut client = TraceServiceClient::new(channel);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        send(&mut client, &mut batch, &exported, &dropped).await;
    }
    if !batch.is_empty() {
        send(&mut client, &mut batch, &exported, &dropped).await;
    }
}

async fn send(
    client: &mut TraceServiceClient<Channel>,
    batch: &mut Vec<Finished>,
    exported: &Counter,
    dropped: &Counter,
) {
    let n = batch.len() as u64;
    let request = request(batch.drain(..));
    match client.export(request).await {
        Ok(_) => exported.increment(n),
        Err(status) => {
            dropped.increment(n);
            tracing::debug!(error = %status, spans = n, "OTLP export failed; spans dropped");
        }
    }
}

/// One export request for `spans`, under the gateway's resource.
pub fn request(spans: impl Iterator<Item = Finished>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", SERVICE_NAME.into())],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SERVICE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.map(encode).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn encode(f: Finished) -> otlp::Span {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    };
    let code = if f.error {
        otlp::status::StatusCode::Error
    } else {
        otlp::status::StatusCode::Unset
    };
    otlp::Span {
        trace_id: f.span.trace_id.to_vec(),
        span_id: f.span.span_id.to_vec(),
        parent_span_id: f.span.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags: u32::from(f.span.sampled),
        name: f.name,
        kind: otlp::span::SpanKind::Client as i32,
        start_time_unix_nano: nanos(f.span.start),
        end_time_unix_nano: nanos(f.end),
        attributes: f
            .attributes
            .into_iter()
            .map(|(k, v)| string(k, v))
            .collect(),
        status: Some(otlp::Status {
            message: String::new(),
            code: code as i32,
        }),
        ..Default::default()
    }
}

fn string(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_span_becomes_an_otlp_span_with_its_ids() {
        let span = crate::telemetry::trace::Tracer::new(100.0, None)
            .start(Some(
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ))
            .unwrap();
        let finished = Finished {
            span: span.clone(),
            end: span.start + Duration::from_millis(3),
            name: "http GET /".into(),
            error: true,
            attributes: vec![("response_code", "503".into())],
        };
        let req = request(std::iter::once(finished));
        let out = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(out.trace_id, span.trace_id);
        assert_eq!(out.span_id, span.span_id);
        assert_eq!(
            out.parent_span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(out.end_time_unix_nano - out.start_time_unix_nano, 3_000_000);
        assert_eq!(
            out.status.as_ref().unwrap().code,
            otlp::status::StatusCode::Error as i32
        );
        assert_eq!(out.attributes[0].key, "response_code");
    }
}
