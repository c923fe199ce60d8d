//! Replies the gateway makes itself, and the response flags that explain them.

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use super::body::ResponseBody;
use super::exchange::Exchange;

/// Envoy-style response flags, a bit set (rendered as `NR`, `UH,URX`, or `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResponseFlags(pub u16);

impl ResponseFlags {
    /// No route matched.
    pub const NR: u16 = 1;
    /// No healthy upstream endpoint.
    pub const UH: u16 = 1 << 1;
    /// Upstream connection failure.
    pub const UF: u16 = 1 << 2;
    /// Upstream request timeout.
    pub const UT: u16 = 1 << 3;
    /// Upstream overflow (circuit breaker).
    pub const UO: u16 = 1 << 4;
    /// The route's cluster does not exist.
    pub const NC: u16 = 1 << 5;
    /// Upstream connection terminated (reset) mid-exchange.
    pub const UC: u16 = 1 << 6;
    /// Retries exhausted; the last upstream response was returned.
    pub const URX: u16 = 1 << 7;
    /// The downstream went away before the response completed.
    pub const DC: u16 = 1 << 8;

    const NAMES: [(u16, &'static str); 9] = [
        (Self::NR, "NR"),
        (Self::UH, "UH"),
        (Self::UF, "UF"),
        (Self::UT, "UT"),
        (Self::UO, "UO"),
        (Self::NC, "NC"),
        (Self::UC, "UC"),
        (Self::URX, "URX"),
        (Self::DC, "DC"),
    ];
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// gRPC status codes used in local replies.
pub mod grpc_code {
    /// CANCELLED.
    pub const CANCELLED: u16 = 1;
    /// DEADLINE_EXCEEDED.
    pub const DEADLINE_EXCEEDED: u16 = 4;
    /// RESOURCE_EXHAUSTED.
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    /// UNIMPLEMENTED.
    pub const UNIMPLEMENTED: u16 = 12;
    /// INTERNAL.
    pub const INTERNAL: u16 = 13;
    /// UNAVAILABLE.
    pub const UNAVAILABLE: u16 = 14;
}

/// Why the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// No route matched (404, NR; gRPC UNIMPLEMENTED).
    NoRoute,
    /// The route's cluster is unknown (503, NC; gRPC UNAVAILABLE).
    NoCluster,
    /// No healthy endpoint (503, UH; gRPC UNAVAILABLE).
    NoHealthyUpstream,
    /// Connecting failed (503, UF; gRPC UNAVAILABLE).
    ConnectFailure,
    /// The upstream reset before answering (503, UC; gRPC UNAVAILABLE).
    UpstreamReset,
    /// Timed out (504, UT; gRPC DEADLINE_EXCEEDED).
    Timeout,
    /// Circuit breaker open (503, UO; gRPC UNAVAILABLE).
    Overflow,
}

impl LocalReason {
    fn parts(self) -> (StatusCode, u16, u16, &'static str) {
        use LocalReason::*;
        match self {
            NoRoute => (
                StatusCode::NOT_FOUND,
                ResponseFlags::NR,
                grpc_code::UNIMPLEMENTED,
                "no route",
            ),
            NoCluster => (
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::NC,
                grpc_code::UNAVAILABLE,
                "no cluster",
            ),
            NoHealthyUpstream => (
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UH,
                grpc_code::UNAVAILABLE,
                "no healthy upstream",
            ),
            ConnectFailure => (
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UF,
                grpc_code::UNAVAILABLE,
                "upstream connect error",
            ),
            UpstreamReset => (
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UC,
                grpc_code::UNAVAILABLE,
                "upstream reset before response",
            ),
            Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                ResponseFlags::UT,
                grpc_code::DEADLINE_EXCEEDED,
                "upstream request timeout",
            ),
            Overflow => (
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UO,
                grpc_code::UNAVAILABLE,
                "upstream overflow",
            ),
        }
    }
}

/// Builds the local reply for `reason`, recording status and flags on the exchange.
/// gRPC requests get a trailers-only gRPC error with HTTP 200, as Envoy sends.
pub fn reply(mut ex: Exchange, reason: LocalReason) -> Response<ResponseBody> {
    let (status, flag, grpc, text) = reason.parts();
    ex.flags |= flag;
    if ex.grpc {
        ex.status = 200;
        ex.grpc_status = Some(grpc);
        let mut resp = Response::new(ResponseBody::Local(None, Some(ex)));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(grpc));
        h.insert("grpc-message", HeaderValue::from_static(text));
        return resp;
    }
    ex.status = status.as_u16();
    let body = Bytes::from_static(text.as_bytes());
    let len = body.len();
    let mut resp = Response::new(ResponseBody::Local(Some(body), Some(ex)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_like_envoy() {
        assert_eq!(ResponseFlags(0).to_string(), "-");
        assert_eq!(ResponseFlags(ResponseFlags::NR).to_string(), "NR");
        assert_eq!(
            ResponseFlags(ResponseFlags::UF | ResponseFlags::URX).to_string(),
            "UF,URX"
        );
    }
}
