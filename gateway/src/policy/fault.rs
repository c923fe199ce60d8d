//! Fault injection: delays and aborts a share of requests, for every protocol. The rule
//! comes in Envoy's `HTTPFault` terms: the HTTP fault filter's per-route configuration
//! (HTTP, gRPC) or the MetaProtocol route's Corridor extension field `fault` (Dubbo,
//! Thrift). The filter decides at once; an abort is the refusal
//! `RejectKind::FaultAbort`, which each protocol renders as its own error (HTTP status,
//! gRPC status, Dubbo status, Thrift `TApplicationException`); a delay is a wait before
//! the router, flagged `DI`.

use std::collections::HashMap;

use corridor_proto::envoy::config::route::v3::FilterConfig;
use corridor_proto::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use corridor_proto::envoy::extensions::filters::http::fault::v3::{
    HttpFault, fault_abort::ErrorType,
};
use corridor_proto::envoy::r#type::v3::FractionalPercent;
use corridor_proto::envoy::r#type::v3::fractional_percent::DenominatorType;
use corridor_proto::google::protobuf::Any;
use prost::Name;
use rand::Rng;

use super::chain::Step;
use super::reject::{Reject, RejectKind};
use super::route::{Fault, FaultAbort, FaultDelay, RoutePolicy};
use crate::model::listener::FAULT_FILTER;
use crate::model::{ModelError, decode_any, duration};
use crate::proxy::local_reply::ResponseFlags;

/// The fault filter of a listener: the listener-wide rule, if its configuration holds
/// one (Istio's is empty: rules come per route, and a route's rule replaces it).
#[derive(Debug)]
pub struct FaultFilter {
    default: Option<Fault>,
}

impl FaultFilter {
    /// The filter from its listener-level configuration.
    pub fn new(config: &HttpFault) -> Result<FaultFilter, ModelError> {
        Ok(FaultFilter {
            default: from_envoy(config)?,
        })
    }

    /// The decision on one request of `route` (none when it matched no route): abort,
    /// delay (then go on, or abort after the delay, as Envoy does), or go. A delay marks
    /// `flags` with `DI`.
    pub fn check(&self, route: Option<&RoutePolicy>, flags: &mut u16) -> Step {
        let rule = match route.and_then(|r| r.fault.as_ref()) {
            Some(own) => own,
            None => match &self.default {
                Some(rule) => rule,
                None => return Step::Go,
            },
        };
        decide(rule, &mut rand::rng(), flags)
    }
}

/// Draws the delay and the abort of `rule` independently, each with its own share.
fn decide(rule: &Fault, rng: &mut impl Rng, flags: &mut u16) -> Step {
    let delay = rule
        .delay
        .as_ref()
        .filter(|d| sampled(d.fraction, rng))
        .map(|d| d.duration);
    let abort = rule
        .abort
        .as_ref()
        .filter(|a| sampled(a.fraction, rng))
        .map(|a| {
            Reject::of(RejectKind::FaultAbort {
                http: a.http,
                grpc: a.grpc,
            })
        });
    match (delay, abort) {
        (None, None) => Step::Go,
        (None, Some(reject)) => Step::Refuse(reject),
        (Some(wait), verdict) => {
            *flags |= ResponseFlags::DI;
            Step::Wait(Box::pin(async move {
                tokio::time::sleep(wait).await;
                verdict.map_or(Ok(()), Err)
            }))
        }
    }
}

/// Whether a request falls in a share of `fraction` (0.0–1.0).
pub fn sampled(fraction: f64, rng: &mut impl Rng) -> bool {
    if fraction >= 1.0 {
        true
    } else if fraction <= 0.0 {
        false
    } else {
        rng.random_bool(fraction)
    }
}

/// An Envoy `FractionalPercent` as a share in 0.0–1.0 (absent: `absent`).
pub fn share(p: Option<&FractionalPercent>, absent: f64) -> f64 {
    let Some(p) = p else { return absent };
    let denominator = match DenominatorType::try_from(p.denominator) {
        Ok(DenominatorType::TenThousand) => 10_000.0,
        Ok(DenominatorType::Million) => 1_000_000.0,
        _ => 100.0,
    };
    (f64::from(p.numerator) / denominator).clamp(0.0, 1.0)
}

/// The rule of an Envoy `HTTPFault`; `None` when it holds neither a delay nor an abort
/// (the fault filter's usual listener-level configuration). Envoy's header-controlled
/// delays and aborts, header conditions and bandwidth limits are refused rather than
/// ignored: ignoring them would inject faults where the rule does not.
pub fn from_envoy(f: &HttpFault) -> Result<Option<Fault>, ModelError> {
    if !f.headers.is_empty() || !f.downstream_nodes.is_empty() || !f.upstream_cluster.is_empty() {
        return Err(ModelError::Unsupported(
            "fault conditions (headers, downstream_nodes, upstream_cluster)".into(),
        ));
    }
    if f.response_rate_limit.is_some() {
        return Err(ModelError::Unsupported("fault response_rate_limit".into()));
    }
    let delay = match &f.delay {
        None => None,
        Some(d) => match &d.fault_delay_secifier {
            Some(FaultDelaySecifier::FixedDelay(fixed)) => Some(FaultDelay {
                duration: duration(fixed, "fault.delay.fixed_delay")?,
                // Envoy's default share when none is given: every request.
                fraction: share(d.percentage.as_ref(), 1.0),
            }),
            Some(FaultDelaySecifier::HeaderDelay(_)) => {
                return Err(ModelError::Unsupported("fault header_delay".into()));
            }
            None => return Err(ModelError::Missing("fault.delay.fixed_delay")),
        },
    };
    let abort = match &f.abort {
        None => None,
        Some(a) => {
            let (http, grpc) = match a.error_type {
                Some(ErrorType::HttpStatus(s)) if (200..600).contains(&s) => (s as u16, None),
                Some(ErrorType::HttpStatus(s)) => {
                    return Err(ModelError::invalid(
                        "fault.abort.http_status",
                        format!("{s} is not in 200-599"),
                    ));
                }
                Some(ErrorType::GrpcStatus(code)) if code <= 16 => {
                    (http_of_grpc(code as u16), Some(code as u16))
                }
                Some(ErrorType::GrpcStatus(code)) => {
                    return Err(ModelError::invalid(
                        "fault.abort.grpc_status",
                        format!("{code} is not a gRPC status code (0-16)"),
                    ));
                }
                Some(ErrorType::HeaderAbort(_)) => {
                    return Err(ModelError::Unsupported("fault header_abort".into()));
                }
                None => return Err(ModelError::Missing("fault.abort.error_type")),
            };
            Some(FaultAbort {
                http,
                grpc,
                fraction: share(a.percentage.as_ref(), 1.0),
            })
        }
    };
    Ok((delay.is_some() || abort.is_some()).then_some(Fault { delay, abort }))
}

/// A route's own fault rule, from its `typed_per_filter_config` entry for the fault
/// filter (the `HTTPFault` itself, or wrapped in a `FilterConfig`). A `FilterConfig` that
/// disables the filter gives an empty rule, so the listener's rule does not apply either.
pub fn from_per_filter_config(configs: &HashMap<String, Any>) -> Result<Option<Fault>, ModelError> {
    let Some(any) = configs.get(FAULT_FILTER) else {
        return Ok(None);
    };
    if any.type_url != FilterConfig::type_url() {
        return from_envoy(&decode_any::<HttpFault>(any)?);
    }
    let wrapped: FilterConfig = decode_any(any)?;
    match wrapped.config {
        _ if wrapped.disabled => Ok(Some(Fault {
            delay: None,
            abort: None,
        })),
        Some(inner) => from_envoy(&decode_any::<HttpFault>(&inner)?),
        None => Ok(None),
    }
}

/// gRPC's documented HTTP equivalent of a status code: what an abort naming only a gRPC
/// status answers plain HTTP callers, and what Dubbo and Thrift map their error from.
pub const fn http_of_grpc(code: u16) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests;
