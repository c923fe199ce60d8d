//! The access log: one line per request, on stderr via tracing (target `access_log`).
//!
//! HTTP fields, in order: `method`, `authority`, `path`, `protocol`, `code`, `flags`,
//! `route`, `cluster`, `upstream`, `duration_ms`, `bytes_in`, `bytes_out`, `request_id`,
//! and `grpc_status` for gRPC requests. Dubbo/Thrift calls: `listener`, `protocol`,
//! `interface` (Dubbo), `method`, `request_id`, `code`, `flags`, `route`, `cluster`,
//! `upstream`, `duration_ms`, `bytes_in`, `bytes_out`. Absent values are `-`. Turn it off
//! with the log filter `access_log=off`.

use std::time::Duration;

use crate::proxy::exchange::Exchange;
use crate::proxy::local_reply::ResponseFlags;

/// Writes the access log line of an exchange.
pub fn emit(ex: &Exchange, duration: Duration) {
    if !tracing::enabled!(target: "access_log", tracing::Level::INFO) {
        return;
    }
    let path = ex.uri.path_and_query().map_or("-", |p| p.as_str());
    let cluster: &str = ex.cluster.as_deref().unwrap_or("-");
    let upstream = match ex.upstream {
        Some(a) => a.to_string(),
        None => "-".to_string(),
    };
    let grpc_status = match ex.grpc_status {
        Some(s) => s.to_string(),
        None => "-".to_string(),
    };
    tracing::info!(
        target: "access_log",
        method = %ex.method,
        authority = ex.authority(),
        path,
        protocol = ?ex.version,
        code = ex.status,
        flags = %ResponseFlags(ex.flags),
        route = ex.route.as_deref().unwrap_or("-"),
        cluster,
        upstream = upstream.as_str(),
        duration_ms = duration.as_millis() as u64,
        bytes_in = ex.request_bytes(),
        bytes_out = ex.bytes_out,
        request_id = ex.request_id.to_str().unwrap_or("-"),
        grpc_status = grpc_status.as_str(),
    );
}

/// Writes the access log line of a Dubbo/Thrift call (`code` and `flags` in HTTP's terms,
/// as the request metrics).
pub fn emit_meta(
    listener: &str,
    protocol: &str,
    request: &crate::codec::Metadata,
    call: &crate::proxy::meta::call::CallRecord,
    code: u16,
    flags: u16,
) {
    if !tracing::enabled!(target: "access_log", tracing::Level::INFO) {
        return;
    }
    let upstream = call
        .upstream
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    tracing::info!(
        target: "access_log",
        listener,
        protocol,
        interface = request.get("interface").unwrap_or("-"),
        method = request.get("method").unwrap_or("-"),
        request_id = request.request_id,
        code,
        flags = %ResponseFlags(flags),
        route = call.route.as_deref().unwrap_or("-"),
        cluster = call.cluster.as_deref().unwrap_or("-"),
        upstream = upstream.as_str(),
        duration_ms = call.took.as_millis() as u64,
        bytes_in = call.request_bytes,
        bytes_out = call.response_bytes,
    );
}
