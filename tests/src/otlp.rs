//! An OTLP trace collector for the telemetry tests: OpenTelemetry's
//! `opentelemetry.proto.collector.trace.v1.TraceService` over gRPC, keeping every span it
//! receives (ids as hex, name, attributes) so a test can match them with the
//! `traceparent`s its backends saw.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use corridor_proto::opentelemetry::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use corridor_proto::opentelemetry::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use corridor_proto::opentelemetry::proto::common::v1::any_value::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// One span as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// The span id, 16 hex digits.
    pub span_id: String,
    /// The parent span id, 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// String attributes.
    pub attributes: BTreeMap<String, String>,
    /// The `service.name` of its resource.
    pub service: String,
}

/// A running collector on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct Collector {
    /// Where it listens.
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    server: JoinHandle<()>,
}

impl Collector {
    /// Starts a collector accepting every export.
    pub async fn start() -> anyhow::Result<Collector> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(Service(spans.clone()));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Ok(Collector {
            addr,
            spans,
            server,
        })
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct Service(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for rs in request.into_inner().resource_spans {
            let attrs = |kvs: Vec<corridor_proto::opentelemetry::proto::common::v1::KeyValue>| {
                kvs.into_iter()
                    .filter_map(|kv| match kv.value?.value? {
                        Value::StringValue(s) => Some((kv.key, s)),
                        _ => None,
                    })
                    .collect::<BTreeMap<_, _>>()
            };
            let resource = attrs(rs.resource.map(|r| r.attributes).unwrap_or_default());
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes: attrs(span.attributes),
                    service: service.clone(),
                });
            }
        }
        if let Ok(mut spans) = self.0.lock() {
            spans.extend(received);
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}
