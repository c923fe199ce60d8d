//! VirtualService `http[].fault`: delays and aborts injected into matching requests, for
//! HTTP and gRPC and, when a VirtualService routes them, Dubbo and Thrift (the gateway
//! answers an abort in the protocol's own error form).

use serde::{Deserialize, Serialize};

use super::Percent;
use crate::resources::duration::parse_duration;

/// gRPC status names Istio accepts in `abort.grpcStatus`, indexed by their code.
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `HTTPFaultInjection`: a delay, an abort, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Wait before forwarding.
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    /// Answer with an error instead of forwarding.
    #[serde(default)]
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    /// How long (`5s`).
    #[serde(default)]
    pub fixed_delay: Option<String>,
    /// Share of requests delayed; absent: none (Istio's rule).
    #[serde(default)]
    pub percentage: Option<Percent>,
    /// Deprecated whole-number share, used when `percentage` is absent.
    #[serde(default)]
    pub percent: Option<i64>,
}

/// `fault.abort`: an HTTP status or a gRPC status name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    /// The HTTP status answered (200-599).
    #[serde(default)]
    pub http_status: Option<i64>,
    /// The gRPC status answered, by name (`UNAVAILABLE`).
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// Share of requests aborted; absent: none (Istio's rule).
    #[serde(default)]
    pub percentage: Option<Percent>,
}

impl FaultDelay {
    /// Percent of requests delayed (0 when neither `percentage` nor `percent` is set).
    pub fn percent_of_requests(&self) -> f64 {
        self.percentage
            .as_ref()
            .map_or_else(|| self.percent.unwrap_or(0) as f64, |p| p.value)
    }
}

impl FaultAbort {
    /// Percent of requests aborted (0 when `percentage` is not set).
    pub fn percent_of_requests(&self) -> f64 {
        self.percentage.as_ref().map_or(0.0, |p| p.value)
    }

    /// The gRPC code of `grpcStatus`, when it is set and a known name.
    pub fn grpc_code(&self) -> Option<u32> {
        let name = self.grpc_status.as_deref()?;
        GRPC_STATUS_NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u32::try_from(i).ok())
    }
}

impl HttpFaultInjection {
    /// Checks the fault on its own; the reason names the offending field under `path`.
    pub fn check(&self, path: &str) -> Result<(), String> {
        if self.delay.is_none() && self.abort.is_none() {
            return Err(format!("{path} sets neither delay nor abort"));
        }
        if let Some(d) = &self.delay {
            let at = format!("{path}.delay");
            let Some(text) = &d.fixed_delay else {
                return Err(format!("{at}.fixedDelay is missing"));
            };
            let delay = parse_duration(text).map_err(|e| format!("{at}.fixedDelay: {e}"))?;
            // Istio's rule: a delay under a millisecond is a mistake.
            if delay < std::time::Duration::from_millis(1) {
                return Err(format!("{at}.fixedDelay {text:?} is shorter than 1ms"));
            }
            check_percent(
                &format!("{at}.percentage.value"),
                d.percentage.as_ref().map(|p| p.value),
            )?;
            check_percent(&format!("{at}.percent"), d.percent.map(|p| p as f64))?;
        }
        if let Some(a) = &self.abort {
            let at = format!("{path}.abort");
            match (a.http_status, &a.grpc_status) {
                (Some(_), Some(_)) => {
                    return Err(format!("{at} sets both httpStatus and grpcStatus"));
                }
                (None, None) => return Err(format!("{at} sets neither httpStatus nor grpcStatus")),
                (Some(s), None) if !(200..=599).contains(&s) => {
                    return Err(format!("{at}.httpStatus {s} is not in 200-599"));
                }
                (None, Some(name)) if a.grpc_code().is_none() => {
                    return Err(format!(
                        "{at}.grpcStatus {name:?} is not a gRPC status name (UNAVAILABLE, INTERNAL, ...)"
                    ));
                }
                _ => {}
            }
            check_percent(
                &format!("{at}.percentage.value"),
                a.percentage.as_ref().map(|p| p.value),
            )?;
        }
        Ok(())
    }
}

/// A percentage must lie in [0, 100].
pub(super) fn check_percent(path: &str, value: Option<f64>) -> Result<(), String> {
    match value {
        Some(v) if !(0.0..=100.0).contains(&v) => Err(format!("{path} {v} is not in 0-100")),
        _ => Ok(()),
    }
}
