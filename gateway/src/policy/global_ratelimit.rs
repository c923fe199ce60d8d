//! Global rate limits: a rate limit service (Envoy's `envoy.service.ratelimit.v3`
//! protocol) decides, per request, whether the mesh-wide limit of its descriptors is
//! spent. The same filter serves every protocol; two configurations build it:
//!
//! - Envoy's HTTP filter `envoy.filters.http.ratelimit`: descriptors come from
//!   `rate_limits[]` rules, the filter's own when it has some, else the route's (or its
//!   virtual host's) of the filter's `stage`;
//! - Aeraki's MetaProtocol filter `aeraki.meta_protocol.filters.ratelimit` (Dubbo,
//!   Thrift): one descriptor of `(descriptor_key, attribute value)` entries for the
//!   requests its `match` selects.
//!
//! The call to the service is the only waiting a request does here: the descriptor and
//! the channel are decided at once, and the answer is awaited within the filter's
//! `timeout` (Envoy's 20 ms by default), also sent as `grpc-timeout`. `OVER_LIMIT`
//! refuses the request as rate limited; an error, a missing service or the deadline
//! refuses it as a rate limit service error when the filter fails closed
//! (`failure_mode_deny`), and lets it pass otherwise. Channels live in [`RlsClients`],
//! which outlives listeners and pushes: one long-lived HTTP/2 connection per service
//! endpoint.

mod client;
mod descriptor;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use corridor_proto::aeraki::meta_protocol_proxy::filters::ratelimit::v1alpha::RateLimit as AerakiRateLimit;
use corridor_proto::envoy::config::core::v3::{ApiVersion, grpc_service::TargetSpecifier};
use corridor_proto::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use corridor_proto::envoy::extensions::filters::http::ratelimit::v3::RateLimit as EnvoyRateLimit;
use corridor_proto::envoy::service::ratelimit::v3::RateLimitRequest;
use corridor_proto::envoy::service::ratelimit::v3::rate_limit_response::Code;
use rand::Rng;

pub use self::client::{RlsClients, RlsError};
use self::descriptor::{AttributeDescriptor, to_proto};
use super::chain::Step;
use super::local_ratelimit::envoy::{RateLimitRule, share};
use super::reject::{Reject, RejectKind};
use super::request::Request;
use super::route::RoutePolicy;
use crate::cluster::Snapshot;
use crate::model::{ModelError, duration};

/// Deadline of a rate limit service call when the filter sets none (Envoy's default: the
/// call sits on every request's path, so it must stay short).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
/// The status Corridor answers a rate limited request with (Envoy's default; the refusal
/// table holds one status per kind, shared by every protocol).
const TOO_MANY_REQUESTS: u32 = 429;
/// Envoy's status for a failed call that fails closed (the refusal table's).
const INTERNAL_SERVER_ERROR: u32 = 500;

/// A validated global rate limit configuration, of either form.
#[derive(Debug)]
pub struct RateLimitSettings {
    /// The service's domain.
    domain: String,
    /// The cluster of the rate limit service.
    cluster: String,
    /// Deadline of one call.
    timeout: Duration,
    /// Share of requests refused when the call fails (1.0: fail closed).
    deny_on_error: f64,
    /// Share of requests checked at all (Envoy's `filter_enabled`; Aeraki: all).
    enabled: f64,
    /// Share of over-limit requests refused (Envoy's `filter_enforced`; Aeraki: all).
    enforced: f64,
    /// Where descriptors come from.
    descriptors: Descriptors,
}

/// Where a filter's descriptors come from.
#[derive(Debug)]
enum Descriptors {
    /// Aeraki's: request attributes, for the requests a match selects.
    Attributes(AttributeDescriptor),
    /// The filter's own `rate_limits` rules (Envoy's HTTP filter).
    Own(Box<[RateLimitRule]>),
    /// The route's rules of this stage (Envoy's HTTP filter without rules of its own).
    Route { stage: u32 },
}

impl RateLimitSettings {
    /// Validates Aeraki's MetaProtocol `RateLimit` (Dubbo, Thrift).
    pub fn from_aeraki(config: &AerakiRateLimit) -> Result<RateLimitSettings, ModelError> {
        Ok(RateLimitSettings {
            domain: domain(&config.domain)?,
            cluster: service_cluster(config.rate_limit_service.as_ref())?,
            timeout: timeout(config.timeout.as_ref())?,
            deny_on_error: if config.failure_mode_deny { 1.0 } else { 0.0 },
            enabled: 1.0,
            enforced: 1.0,
            descriptors: Descriptors::Attributes(AttributeDescriptor::new(config)?),
        })
    }

    /// Validates Envoy's HTTP `RateLimit` filter. As in Envoy, `filter_enabled` and
    /// `filter_enforced` default to 100 %. Statuses other than Envoy's defaults (429
    /// over the limit, 500 on a failed call that fails closed) are refused: one refusal
    /// table serves every protocol. gRPC callers always get `RESOURCE_EXHAUSTED`.
    pub fn from_envoy(config: &EnvoyRateLimit) -> Result<RateLimitSettings, ModelError> {
        if let Some(s) = &config.rate_limited_status
            && s.code != 0
            && s.code as u32 != TOO_MANY_REQUESTS
        {
            return Err(ModelError::Unsupported(format!(
                "ratelimit.rate_limited_status {} (only 429)",
                s.code
            )));
        }
        if let Some(s) = &config.status_on_error
            && s.code != 0
            && s.code as u32 != INTERNAL_SERVER_ERROR
        {
            return Err(ModelError::Unsupported(format!(
                "ratelimit.status_on_error {} (only 500)",
                s.code
            )));
        }
        let descriptors = if config.rate_limits.is_empty() {
            Descriptors::Route {
                stage: config.stage,
            }
        } else {
            // The filter's own rules are its whole configuration: every action must be
            // one the gateway evaluates.
            let rules = config
                .rate_limits
                .iter()
                .map(|r| RateLimitRule::parse(r, false))
                .collect::<Result<Box<[_]>, _>>()?;
            if rules.iter().any(RateLimitRule::has_unsupported_action) {
                return Err(ModelError::Unsupported(
                    "ratelimit.rate_limits action (the gateway evaluates generic_key, header_value_match, request_headers and remote_address)".into(),
                ));
            }
            Descriptors::Own(rules)
        };
        let deny_on_error = match &config.failure_mode_deny_percent {
            Some(p) => share(Some(p), 0.0),
            None if config.failure_mode_deny => 1.0,
            None => 0.0,
        };
        Ok(RateLimitSettings {
            domain: domain(&config.domain)?,
            cluster: service_cluster(config.rate_limit_service.as_ref())?,
            timeout: timeout(config.timeout.as_ref())?,
            deny_on_error,
            enabled: share(config.filter_enabled.as_ref(), 1.0),
            enforced: share(config.filter_enforced.as_ref(), 1.0),
            descriptors,
        })
    }
}

fn domain(d: &str) -> Result<String, ModelError> {
    if d.is_empty() {
        return Err(ModelError::Missing("ratelimit.domain"));
    }
    Ok(d.to_owned())
}

/// The cluster a `rate_limit_service` names (Envoy's gRPC client only, API v3).
fn service_cluster(s: Option<&RateLimitServiceConfig>) -> Result<String, ModelError> {
    let s = s.ok_or(ModelError::Missing("ratelimit.rate_limit_service"))?;
    if s.transport_api_version != ApiVersion::V3 as i32 {
        return Err(ModelError::invalid(
            "ratelimit.rate_limit_service.transport_api_version",
            "must be V3",
        ));
    }
    match s
        .grpc_service
        .as_ref()
        .and_then(|g| g.target_specifier.as_ref())
    {
        Some(TargetSpecifier::EnvoyGrpc(g)) if !g.cluster_name.is_empty() => {
            Ok(g.cluster_name.clone())
        }
        Some(TargetSpecifier::GoogleGrpc(_)) => Err(ModelError::Unsupported(
            "ratelimit.rate_limit_service.grpc_service.google_grpc (use envoy_grpc)".into(),
        )),
        _ => Err(ModelError::Missing(
            "ratelimit.rate_limit_service.grpc_service.envoy_grpc.cluster_name",
        )),
    }
}

fn timeout(t: Option<&corridor_proto::google::protobuf::Duration>) -> Result<Duration, ModelError> {
    match t {
        Some(t) => duration(t, "ratelimit.timeout"),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

/// A running global rate limit filter.
#[derive(Debug)]
pub struct GlobalRateLimit {
    settings: Arc<RateLimitSettings>,
    /// The current configuration: the service's cluster and its endpoints.
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The channels, shared by every listener and kept across pushes.
    clients: Arc<RlsClients>,
}

impl GlobalRateLimit {
    /// A filter with `settings`, finding the service's endpoints in `snapshot` and its
    /// channel in `clients`.
    pub fn new(
        settings: RateLimitSettings,
        snapshot: Arc<ArcSwap<Snapshot>>,
        clients: Arc<RlsClients>,
    ) -> GlobalRateLimit {
        GlobalRateLimit {
            settings: Arc::new(settings),
            snapshot,
            clients,
        }
    }

    /// This filter's decision on `req` (of listener `listener`, for messages): pass
    /// when no descriptor applies, else wait for the service's answer.
    pub(super) fn check(
        &self,
        listener: &str,
        req: &Request<'_>,
        route: Option<&RoutePolicy>,
    ) -> Step {
        let s = &self.settings;
        if s.enabled < 1.0 && !rand::rng().random_bool(s.enabled.max(0.0)) {
            return Step::Go;
        }
        let descriptors = match &s.descriptors {
            Descriptors::Attributes(d) => d.build(req.attrs).into_iter().collect(),
            Descriptors::Own(rules) => descriptor::from_rules(rules.iter(), req),
            Descriptors::Route { stage } => descriptor::from_rules(
                route
                    .map_or(&[][..], |r| &r.rate_limits[..])
                    .iter()
                    .filter(|r| r.stage == *stage),
                req,
            ),
        };
        if descriptors.is_empty() {
            return Step::Go;
        }
        let channel = match self.clients.channel(&self.snapshot.load(), &s.cluster) {
            Ok(c) => c,
            Err(e) => {
                return match failed(s, listener, &e) {
                    Ok(()) => Step::Go,
                    Err(reject) => Step::Refuse(reject),
                };
            }
        };
        let request = RateLimitRequest {
            domain: s.domain.clone(),
            descriptors: descriptors.into_iter().map(to_proto).collect(),
            hits_addend: 1,
        };
        let settings = self.settings.clone();
        let listener = listener.to_owned();
        Step::Wait(Box::pin(async move {
            match client::ask(channel, request, settings.timeout).await {
                Ok(Code::OverLimit) => {
                    if settings.enforced < 1.0 && !rand::rng().random_bool(settings.enforced) {
                        return Ok(());
                    }
                    Err(Reject::new(
                        RejectKind::RateLimited,
                        format!("rate limited by {listener}'s rate limit service"),
                    ))
                }
                Ok(_) => Ok(()),
                Err(e) => failed(&settings, &listener, &e),
            }
        }))
    }
}

/// A failed call's outcome: refused when the filter fails closed, else passed.
fn failed(s: &RateLimitSettings, listener: &str, e: &RlsError) -> Result<(), Reject> {
    let deny = s.deny_on_error >= 1.0
        || (s.deny_on_error > 0.0 && rand::rng().random_bool(s.deny_on_error));
    tracing::debug!(listener, cluster = %s.cluster, error = %e, deny, "rate limit service call failed");
    if deny {
        Err(Reject::new(
            RejectKind::RateLimitServiceError,
            format!("{listener}'s rate limit service failed: {e}"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
