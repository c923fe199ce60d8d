//! Replies the gateway makes itself, and the response flags that explain them.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use super::body::ResponseBody;
use super::exchange::Exchange;
use crate::policy::reject::Reject;

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
    /// Refused by a rate limit.
    pub const RL: u16 = 1 << 9;
    /// The rate limit service failed (and the filter fails closed).
    pub const RLSE: u16 = 1 << 10;
    /// Aborted by fault injection.
    pub const FI: u16 = 1 << 11;
    /// Delayed by fault injection.
    pub const DI: u16 = 1 << 12;

    const NAMES: [(u16, &'static str); 13] = [
        (Self::NR, "NR"),
        (Self::UH, "UH"),
        (Self::UF, "UF"),
        (Self::UT, "UT"),
        (Self::UO, "UO"),
        (Self::NC, "NC"),
        (Self::UC, "UC"),
        (Self::URX, "URX"),
        (Self::DC, "DC"),
        (Self::RL, "RL"),
        (Self::RLSE, "RLSE"),
        (Self::FI, "FI"),
        (Self::DI, "DI"),
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

/// Builds the local reply for `reject`, recording status and flags on the exchange.
/// gRPC requests get a trailers-only gRPC error with HTTP 200, as Envoy sends.
pub fn reply(mut ex: Exchange, reject: &Reject) -> Response<ResponseBody> {
    let outline = reject.outline();
    ex.flags |= outline.flag;
    if ex.grpc {
        ex.status = 200;
        ex.grpc_status = Some(outline.grpc);
        let mut resp = Response::new(ResponseBody::Local(None, Some(ex)));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(outline.grpc));
        let message = match &reject.message {
            Cow::Borrowed(text) => HeaderValue::from_static(text),
            // A message that is not a valid header value (it is the gateway's own text,
            // but may quote a peer's words) falls back to the kind's text.
            Cow::Owned(text) => HeaderValue::from_str(text)
                .unwrap_or_else(|_| HeaderValue::from_static(outline.text)),
        };
        h.insert("grpc-message", message);
        return resp;
    }
    ex.status = outline.http;
    let body = match &reject.message {
        Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
        Cow::Owned(text) => Bytes::from(text.clone()),
    };
    let len = body.len();
    let mut resp = Response::new(ResponseBody::Local(Some(body), Some(ex)));
    // A status outside 100..=999 (a fault rule's typo) cannot reach the wire: 500.
    *resp.status_mut() =
        StatusCode::from_u16(outline.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
