//! Responses the gateway writes itself: local errors and heartbeat answers.

use bytes::{Bytes, BytesMut};

use super::header::{FLAG_EVENT, HEADER_LEN, HESSIAN2, Header};
use super::write::{NULL, write_string};
use crate::policy::reject::RejectKind;

/// Dubbo2 response statuses (`org.apache.dubbo.remoting.exchange.Response`).
pub mod status {
    /// The call succeeded.
    pub const OK: u8 = 20;
    /// The client gave up waiting (written by clients, seen only in their logs).
    pub const CLIENT_TIMEOUT: u8 = 30;
    /// The server did not answer in time (the client raises a `TimeoutException`
    /// marked server-side).
    pub const SERVER_TIMEOUT: u8 = 31;
    /// The request could not be read or is refused.
    pub const BAD_REQUEST: u8 = 40;
    /// The response could not be read.
    pub const BAD_RESPONSE: u8 = 50;
    /// No provider of the service.
    pub const SERVICE_NOT_FOUND: u8 = 60;
    /// The service's own code failed (what a provider answers when its method throws
    /// and the exception cannot travel as a value).
    pub const SERVICE_ERROR: u8 = 70;
    /// The server side (here: the gateway or its upstream link) failed.
    pub const SERVER_ERROR: u8 = 80;
    /// The client side failed.
    pub const CLIENT_ERROR: u8 = 90;
    /// The server is shedding load.
    pub const SERVER_THREADPOOL_EXHAUSTED: u8 = 100;
}

/// A response status in HTTP's terms (see `Codec::http_status`): timeouts are a gateway
/// timeout (504), a provider without the service or out of threads is unavailable (503,
/// another provider may serve it), a bad response a bad gateway (502), the caller's own
/// errors 400, the service's or server's failures 500. Status 20 carrying an exception
/// (the service threw) is a 500 too, as an HTTP service that fails answers one.
pub(crate) fn http_status(status: u8, outcome: crate::codec::ResponseStatus) -> u16 {
    match status {
        status::OK if outcome == crate::codec::ResponseStatus::Ok => 200,
        status::CLIENT_TIMEOUT | status::SERVER_TIMEOUT => 504,
        status::BAD_REQUEST | status::CLIENT_ERROR => 400,
        status::BAD_RESPONSE => 502,
        status::SERVICE_NOT_FOUND | status::SERVER_THREADPOOL_EXHAUSTED => 503,
        _ => 500,
    }
}

/// The status a refusal is reported with. Dubbo clients raise a `RemotingException`
/// for every non-OK status except 30/31 (a `TimeoutException`), and their failover
/// cluster retries both, so the choice mostly decides what the caller's log says:
/// - no route: the service is not found here (60);
/// - no cluster or healthy endpoint, broken upstream connection, rate limit service
///   failure, internal failure: a server error (80), since the service itself never ran
///   — 70 (service error) would blame the service's code;
/// - authorization denial: a refused request (40); Dubbo has no dedicated status;
/// - rate limit or open circuit breaker: the thread-pool-exhausted status (100), which
///   is how a Dubbo provider sheds load;
/// - a fault abort: the status nearest its HTTP status.
pub(crate) fn status_of(kind: RejectKind) -> u8 {
    match kind {
        RejectKind::NoRoute => status::SERVICE_NOT_FOUND,
        RejectKind::Timeout => status::SERVER_TIMEOUT,
        RejectKind::NoCluster
        | RejectKind::NoHealthyUpstream
        | RejectKind::ConnectFailure
        | RejectKind::UpstreamReset
        | RejectKind::RateLimitServiceError
        | RejectKind::Internal => status::SERVER_ERROR,
        RejectKind::Overflow | RejectKind::RateLimited => status::SERVER_THREADPOOL_EXHAUSTED,
        RejectKind::Unauthorized | RejectKind::BadRequest => status::BAD_REQUEST,
        RejectKind::FaultAbort { http, .. } => status_of_http(http),
    }
}

/// The Dubbo status nearest an HTTP status (fault aborts name an HTTP status).
fn status_of_http(http: u16) -> u8 {
    match http {
        400 | 401 | 403 => status::BAD_REQUEST,
        404 => status::SERVICE_NOT_FOUND,
        429 => status::SERVER_THREADPOOL_EXHAUSTED,
        504 => status::SERVER_TIMEOUT,
        _ => status::SERVER_ERROR,
    }
}

/// A response with `status` to request `request_id`. Non-OK bodies carry the message as
/// a string, as Dubbo providers write them. The gateway writes Hessian2 only, so the
/// header always says Hessian2: Dubbo clients decode a response by the serialization id
/// in its header, whatever they sent.
pub fn error_response(request_id: u64, status: u8, message: &str) -> Bytes {
    let mut body = BytesMut::new();
    write_string(&mut body, message);
    response(request_id, HESSIAN2, status, &body)
}

/// The answer to a heartbeat: an OK event response with a (Hessian2) null body.
pub(crate) fn heartbeat_response(request_id: u64) -> Bytes {
    response(request_id, FLAG_EVENT | HESSIAN2, status::OK, &[NULL])
}

pub(super) fn response(request_id: u64, flags: u8, status: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    Header {
        flags,
        status,
        request_id,
        body_len: body.len(),
    }
    .write(&mut out);
    out.extend_from_slice(body);
    out.freeze()
}
