//! The one vocabulary of refusals: why the gateway answers a request itself, whatever
//! the protocol. [`RejectKind::outline`] is the single table from a kind to its HTTP
//! status, gRPC code and Envoy response flag; exactly two functions render a
//! [`Reject`]: `proxy::local_reply::reply` (HTTP, or a trailers-only gRPC error) and
//! `Codec::local_reply` (the Dubbo status or Thrift `TApplicationException` its codec
//! picks for the kind).

use std::borrow::Cow;

use crate::proxy::local_reply::ResponseFlags as F;

/// gRPC status codes used in local replies.
pub mod grpc_code {
    /// CANCELLED.
    pub const CANCELLED: u16 = 1;
    /// UNKNOWN.
    pub const UNKNOWN: u16 = 2;
    /// DEADLINE_EXCEEDED.
    pub const DEADLINE_EXCEEDED: u16 = 4;
    /// PERMISSION_DENIED.
    pub const PERMISSION_DENIED: u16 = 7;
    /// RESOURCE_EXHAUSTED.
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    /// UNIMPLEMENTED.
    pub const UNIMPLEMENTED: u16 = 12;
    /// INTERNAL.
    pub const INTERNAL: u16 = 13;
    /// UNAVAILABLE.
    pub const UNAVAILABLE: u16 = 14;
    /// UNAUTHENTICATED.
    pub const UNAUTHENTICATED: u16 = 16;
}

/// Why the gateway answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// No route matched.
    NoRoute,
    /// The route's cluster is unknown.
    NoCluster,
    /// The route's cluster has no healthy endpoint.
    NoHealthyUpstream,
    /// Connecting to the picked endpoint failed or timed out.
    ConnectFailure,
    /// The upstream connection broke before the answer came.
    UpstreamReset,
    /// The upstream did not answer within the route's timeout.
    Timeout,
    /// The cluster's circuit breaker is open.
    Overflow,
    /// Over a rate limit.
    RateLimited,
    /// The rate limit service failed and the filter fails closed.
    RateLimitServiceError,
    /// Denied by an authorization policy.
    Unauthorized,
    /// Aborted by a fault injection rule, with the rule's HTTP status and, when it names
    /// one, its gRPC status.
    FaultAbort {
        /// The HTTP status to answer.
        http: u16,
        /// The gRPC status to answer gRPC calls with; else derived from `http`.
        grpc: Option<u16>,
    },
    /// The request could not be read.
    BadRequest,
    /// Anything else on the gateway's side.
    Internal,
}

/// How a kind reads in HTTP's terms: the status, the gRPC code, the response flag and a
/// default message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outline {
    /// HTTP status (also Istio's `response_code` of a local reply).
    pub http: u16,
    /// gRPC status of a trailers-only reply to a gRPC call.
    pub grpc: u16,
    /// Envoy response flag bits (`ResponseFlags`).
    pub flag: u16,
    /// The reply's text when the refusal carries no message of its own.
    pub text: &'static str,
}

impl RejectKind {
    /// The table every protocol and telemetry read. Statuses and flags are Envoy's for
    /// the same cause, so dashboards built for Envoy read the same.
    pub const fn outline(self) -> Outline {
        use RejectKind::*;
        use grpc_code as g;
        let (http, grpc, flag, text) = match self {
            NoRoute => (404, g::UNIMPLEMENTED, F::NR, "no route"),
            NoCluster => (503, g::UNAVAILABLE, F::NC, "no cluster"),
            NoHealthyUpstream => (503, g::UNAVAILABLE, F::UH, "no healthy upstream"),
            ConnectFailure => (503, g::UNAVAILABLE, F::UF, "upstream connect error"),
            UpstreamReset => (503, g::UNAVAILABLE, F::UC, "upstream reset before response"),
            Timeout => (504, g::DEADLINE_EXCEEDED, F::UT, "upstream request timeout"),
            Overflow => (503, g::UNAVAILABLE, F::UO, "upstream overflow"),
            // Envoy's flag and text for a request refused by a rate limit, local or global.
            RateLimited => (429, g::RESOURCE_EXHAUSTED, F::RL, "rate_limited"),
            // Envoy's status for a failed rate limit service call that fails closed.
            RateLimitServiceError => (500, g::INTERNAL, F::RLSE, "rate limit service error"),
            Unauthorized => (403, g::PERMISSION_DENIED, 0, "RBAC: access denied"),
            FaultAbort { http, grpc } => (
                http,
                match grpc {
                    Some(code) => code,
                    None => grpc_of_http(http),
                },
                F::FI,
                "fault filter abort",
            ),
            BadRequest => (400, g::INTERNAL, 0, "bad request"),
            Internal => (500, g::INTERNAL, 0, "internal error"),
        };
        Outline {
            http,
            grpc,
            flag,
            text,
        }
    }
}

/// gRPC's documented mapping of an HTTP status to a status code, for refusals that name
/// only an HTTP status (a fault abort with `httpStatus`).
pub const fn grpc_of_http(status: u16) -> u16 {
    match status {
        400 => grpc_code::INTERNAL,
        401 => grpc_code::UNAUTHENTICATED,
        403 => grpc_code::PERMISSION_DENIED,
        404 => grpc_code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => grpc_code::UNAVAILABLE,
        _ => grpc_code::UNKNOWN,
    }
}

/// A refusal: its kind, which picks every protocol's status, and words for the caller's
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// What went wrong.
    pub kind: RejectKind,
    /// A readable message.
    pub message: Cow<'static, str>,
}

impl Reject {
    /// A refusal with its own message.
    pub fn new(kind: RejectKind, message: impl Into<Cow<'static, str>>) -> Reject {
        Reject {
            kind,
            message: message.into(),
        }
    }

    /// A refusal with the kind's default text (allocates nothing).
    pub fn of(kind: RejectKind) -> Reject {
        Reject {
            kind,
            message: Cow::Borrowed(kind.outline().text),
        }
    }

    /// The kind's table row.
    pub fn outline(&self) -> Outline {
        self.kind.outline()
    }
}

impl From<RejectKind> for Reject {
    fn from(kind: RejectKind) -> Reject {
        Reject::of(kind)
    }
}

#[cfg(test)]
mod tests;
