//! A listener's request filters, in order, run after routing and before the router
//! sends upstream. Built once per listener, off the hot path, from the listener's
//! filter list (HCM `http_filters` for HTTP, `meta_protocol_filters` for Dubbo and
//! Thrift): the same filters, under the same names, for every protocol. The controller
//! emits them as rbac (DENY), rbac (ALLOW), fault, local rate limit, rate limit, router.
//!
//! Checking is synchronous while no filter has to wait (a rate limit bucket, a denial);
//! only a filter that waits (a fault delay, a rate limit service call) hands back a
//! future. A listener without filters has an empty chain: one branch per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::fault::FaultFilter;
use super::global_ratelimit::{GlobalRateLimit, RateLimitSettings, RlsClients};
use super::local_ratelimit::LocalRateLimiter;
use super::rbac::Rbac;
use super::reject::{Reject, RejectKind};
use super::request::Request;
use super::route::RoutePolicy;
use crate::cluster::Snapshot;
use crate::model::ModelError;
use crate::model::listener::FilterConfig;

/// One request filter, ready to run.
#[derive(Debug)]
pub enum Filter {
    /// A local rate limit (token buckets of this gateway replica).
    LocalRateLimit(LocalRateLimiter),
    /// An authorization filter (ALLOW or DENY policies).
    Rbac(Rbac),
    /// Fault injection: delays and aborts (the route's rule, else the listener's).
    Fault(FaultFilter),
    /// A global rate limit (a rate limit service decides).
    RateLimit(GlobalRateLimit),
}

/// What filters use besides their own configuration: state that outlives a listener.
#[derive(Debug, Clone)]
pub struct Env {
    /// The current configuration (a rate limit service's cluster and endpoints).
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Channels to rate limit services, kept across pushes.
    pub rls: Arc<RlsClients>,
}

/// The filters of one listener, in order.
#[derive(Debug, Default)]
pub struct Chain {
    /// The listener's name, for refusal messages.
    listener: String,
    filters: Box<[Filter]>,
}

/// A future a waiting filter returns; it ends with the chain's verdict.
pub type Pending = Pin<Box<dyn Future<Output = Result<(), Reject>> + Send>>;

/// What checking a request gave.
#[must_use]
pub enum Check {
    /// Decided without waiting: go on, or refuse.
    Done(Result<(), Reject>),
    /// A filter must wait; the future decides.
    Wait(Pending),
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Done(r) => f.debug_tuple("Done").field(r).finish(),
            Check::Wait(_) => f.write_str("Wait(..)"),
        }
    }
}

impl Chain {
    /// Builds the chain of listener `listener` from its validated filter list.
    pub fn build(listener: &str, configs: &[FilterConfig], env: &Env) -> Result<Chain, ModelError> {
        let filters = configs
            .iter()
            .map(|c| {
                Ok(match c {
                    FilterConfig::MetaLocalRateLimit(c) => {
                        Filter::LocalRateLimit(LocalRateLimiter::from_aeraki(c)?)
                    }
                    FilterConfig::HttpLocalRateLimit(c) => {
                        Filter::LocalRateLimit(LocalRateLimiter::from_envoy(c)?)
                    }
                    FilterConfig::Rbac { config, mode } => {
                        Filter::Rbac(Rbac::from_filter(config, *mode)?)
                    }
                    FilterConfig::Fault(c) => Filter::Fault(FaultFilter::new(c)?),
                    FilterConfig::MetaRateLimit(c) => Filter::RateLimit(GlobalRateLimit::new(
                        RateLimitSettings::from_aeraki(c)?,
                        env.snapshot.clone(),
                        env.rls.clone(),
                    )),
                    FilterConfig::HttpRateLimit(c) => Filter::RateLimit(GlobalRateLimit::new(
                        RateLimitSettings::from_envoy(c)?,
                        env.snapshot.clone(),
                        env.rls.clone(),
                    )),
                })
            })
            .collect::<Result<Box<[Filter]>, ModelError>>()?;
        Ok(Chain {
            listener: listener.to_owned(),
            filters,
        })
    }

    /// Whether the chain has no filter (requests skip it).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Runs the filters on `req`, in order, until one refuses. `route` is the request's
    /// route when it has one (its per-route settings, such as rate limit rules or a
    /// fault, apply). Every filter decides what it can at once (a denial, a bucket, an
    /// abort), so a refusal never waits; filters that must wait (a fault delay, a rate
    /// limit service call) hand back futures, awaited one after the other in the
    /// chain's order. Filters mark `flags` (Envoy response flags, such as `DI` for an
    /// injected delay) for the request's telemetry.
    pub fn check(&self, req: &Request<'_>, route: Option<&RoutePolicy>, flags: &mut u16) -> Check {
        let mut waits: Vec<Pending> = Vec::new();
        for filter in &self.filters {
            match filter.check(&self.listener, req, route, flags) {
                Step::Go => {}
                Step::Refuse(reject) => return Check::Done(Err(reject)),
                Step::Wait(pending) => waits.push(pending),
            }
        }
        let mut waits = waits.into_iter();
        match (waits.next(), waits.len()) {
            (None, _) => Check::Done(Ok(())),
            (Some(only), 0) => Check::Wait(only),
            (Some(first), _) => Check::Wait(Box::pin(async move {
                first.await?;
                for pending in waits {
                    pending.await?;
                }
                Ok(())
            })),
        }
    }
}

/// What one filter decided for a request.
pub enum Step {
    /// Pass it on to the next filter.
    Go,
    /// Refuse it.
    Refuse(Reject),
    /// Pass it on once this future ends well; it owns whatever it needs of the request.
    Wait(Pending),
}

impl Filter {
    /// This filter's decision on `req` (of listener `listener`, for messages); it may
    /// mark `flags` for telemetry.
    fn check(
        &self,
        listener: &str,
        req: &Request<'_>,
        route: Option<&RoutePolicy>,
        flags: &mut u16,
    ) -> Step {
        match self {
            Filter::Fault(fault) => fault.check(route, flags),
            Filter::Rbac(rbac) => rbac.check(listener, req),
            Filter::RateLimit(limit) => limit.check(listener, req, route),
            Filter::LocalRateLimit(limit) => {
                let rules = route.map_or(&[][..], |r| &r.rate_limits[..]);
                if limit.admit(req.attrs, rules) {
                    Step::Go
                } else {
                    Step::Refuse(Reject::new(
                        RejectKind::RateLimited,
                        format!("rate limited by {listener}'s local rate limit"),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
