//! The access log: one line per request, on stderr via tracing (target `access_log`).
//!
//! HTTP fields, in order: `method`, `authority`, `path`, `protocol`, `code`, `flags`,
//! `route`, `cluster`, `upstream`, `duration_ms`, `bytes_in`, `bytes_out`, `request_id`,
//! `grpc_status`, `source_workload`, `trace_id`. Dubbo/Thrift calls: `listener`,
//! `protocol`, `interface` (Dubbo), `method`, `request_id`, `code`, `response_code`,
//! `flags`, `route`, `cluster`, `upstream`, `duration_ms`, `bytes_in`, `bytes_out`,
//! `source_workload`, `trace_id`. `code` is the outcome in HTTP's terms for every
//! protocol (as retry conditions read it); `response_code` is Dubbo's status byte or
//! Thrift's exception type (0 for a reply), as in the metrics. Absent values are `-`.
//! Turn it off with the log filter `access_log=off`.

use crate::codec::Metadata;
use crate::proxy::exchange::Exchange;
use crate::proxy::local_reply::ResponseFlags;
use crate::telemetry::record::Record;
use crate::telemetry::trace::Hex;

/// What the line says about the request itself, per protocol.
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    /// An HTTP or gRPC request.
    Http(&'a Exchange),
    /// A Dubbo or Thrift call on `listener`.
    Meta {
        /// The listener's name.
        listener: &'a str,
        /// The request as decoded.
        request: &'a Metadata,
    },
}

impl Line<'_> {
    /// The operation, as a span's name: `GET /path` (HTTP), `/pkg.Service/Method` (gRPC),
    /// `interface/method` (Dubbo), `method` (Thrift).
    pub fn operation(&self) -> String {
        match self {
            Line::Http(ex) if ex.grpc => ex.uri.path().to_string(),
            Line::Http(ex) => format!("{} {}", ex.method, ex.uri.path()),
            Line::Meta { request, .. } => {
                let method = request.get("method").unwrap_or("-");
                match request.get("interface") {
                    Some(interface) => format!("{interface}/{method}"),
                    None => method.to_string(),
                }
            }
        }
    }
}

/// Writes the access log line of a finished request.
pub fn emit(r: &Record<'_>, line: Line<'_>) {
    if !tracing::enabled!(target: "access_log", tracing::Level::INFO) {
        return;
    }
    let upstream = r
        .upstream
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let trace_id = r
        .span
        .map_or_else(|| "-".to_string(), |s| Hex(&s.trace_id).to_string());
    let source_workload = &*r.source.get().workload;
    match line {
        Line::Http(ex) => {
            let grpc_status = r
                .grpc_status
                .map_or_else(|| "-".to_string(), |s| s.to_string());
            tracing::info!(
                target: "access_log",
                method = %ex.method,
                authority = ex.authority(),
                path = ex.uri.path_and_query().map_or("-", |p| p.as_str()),
                protocol = ?ex.version,
                code = r.http_code,
                flags = %ResponseFlags(r.flags),
                route = r.route.unwrap_or("-"),
                cluster = r.cluster.unwrap_or("-"),
                upstream = upstream.as_str(),
                duration_ms = r.duration.as_millis() as u64,
                bytes_in = r.request_bytes,
                bytes_out = r.response_bytes,
                request_id = ex.request_id.to_str().unwrap_or("-"),
                grpc_status = grpc_status.as_str(),
                source_workload,
                trace_id = trace_id.as_str(),
            );
        }
        Line::Meta { listener, request } => {
            tracing::info!(
                target: "access_log",
                listener,
                protocol = r.protocol.as_str(),
                interface = request.get("interface").unwrap_or("-"),
                method = request.get("method").unwrap_or("-"),
                request_id = request.request_id,
                code = r.http_code,
                response_code = r.response_code,
                flags = %ResponseFlags(r.flags),
                route = r.route.unwrap_or("-"),
                cluster = r.cluster.unwrap_or("-"),
                upstream = upstream.as_str(),
                duration_ms = r.duration.as_millis() as u64,
                bytes_in = r.request_bytes,
                bytes_out = r.response_bytes,
                source_workload,
                trace_id = trace_id.as_str(),
            );
        }
    }
}
