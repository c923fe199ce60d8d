//! The one try engine of every L7 protocol: tries a request on a cluster until an answer
//! the retry policy keeps, a failure it does not retry, or the route's deadline. Inside:
//! the per-try budget (the smaller of the per-try timeout and what is left of the
//! deadline), the retry decision (`retry.rs`), the cluster's retry budget, back-off, the
//! list of endpoints already tried, and a report after every try. What a try is (an HTTP
//! exchange on a pooled connection, a codec call on a multiplexed one) is the
//! [`Transport`]'s business.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::exchange::ClusterActive;
use super::retry::{self, Budgeted, RetryActive, TryFailure};
use crate::cluster::outlier::Event;
use crate::cluster::{ClusterState, Endpoint};
use crate::model::route::RetryPolicy;
use crate::policy::reject::{Reject, RejectKind};

/// Why a try failed without an answer.
#[derive(Debug)]
pub enum TryError {
    /// A failure the retry policy may retry on another endpoint.
    Failed(TryFailure, Reject),
    /// Not worth another try (no endpoint at all, a request that cannot be encoded).
    Final(Reject),
}

/// How one try went, for the endpoint's accounting and outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// The upstream answered; `retriable` when the route's policy would retry the answer.
    Answered {
        /// Whether the retry policy wanted another try for this answer.
        retriable: bool,
        /// The answer's status in HTTP's terms.
        status: u16,
    },
    /// No answer: the connection failed, broke, or the try timed out.
    Failed(TryFailure),
}

/// One protocol's way of making a try.
pub trait Transport {
    /// An upstream answer.
    type Answer;

    /// Makes one try, picking an endpoint not in `avoid` when there is one. `last` says
    /// no try follows, so the request may be consumed.
    fn try_once(
        &mut self,
        avoid: &[SocketAddr],
        last: bool,
    ) -> impl Future<Output = Result<Self::Answer, TryError>> + Send;

    /// The endpoint of the last try, if it got that far.
    fn endpoint(&self) -> Option<&Arc<Endpoint>>;

    /// The address of the last try's endpoint, if one was picked (it is avoided next).
    fn upstream(&self) -> Option<SocketAddr>;

    /// Whether `policy` retries `answer`.
    fn retries_answer(&self, policy: &RetryPolicy, answer: &Self::Answer) -> bool;

    /// The answer's status in HTTP's terms (Dubbo and Thrift: their codec's
    /// equivalent), for outlier detection.
    fn status(&self, answer: &Self::Answer) -> u16;

    /// The cluster the tries go to, when the transport knows it: its connection
    /// breakers (`max_connections`, `max_pending_requests`) apply to the request.
    fn cluster(&self) -> Option<&Arc<ClusterState>> {
        None
    }

    /// Admits one more try (the request can be sent again and the cluster's retry budget
    /// allows it); the guard counts the retry as active while held.
    fn admit_retry(&mut self) -> Option<RetryActive>;

    /// The refusal when time runs out: the route's deadline, or (`per_try`) one try's
    /// timeout.
    fn timed_out(&self, per_try: bool) -> Reject;
}

/// The time limits and retry policy of one request.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The route's retry policy, if any.
    pub retry: Option<&'a RetryPolicy>,
    /// When the whole request times out, across tries.
    pub deadline: Option<Instant>,
}

/// How the tries ended.
#[derive(Debug)]
pub struct Tries<A> {
    /// The answer kept, or the refusal to answer with.
    pub result: Result<A, Reject>,
    /// Tries after the first.
    pub retries: u32,
    /// Whether the answer kept is one the policy wanted to retry (retries exhausted on
    /// it: Envoy's `URX` when there was more than one try).
    pub retriable_answer: bool,
}

/// Runs the tries of one request.
pub async fn run<T: Transport>(t: &mut T, plan: Plan<'_>) -> Tries<T::Answer> {
    // The connection slot, held across tries (a retry reuses it, as it would a pooled
    // connection).
    let _slot = match connection_slot(t, plan.deadline).await {
        Ok(slot) => slot,
        Err(reject) => {
            return Tries {
                result: Err(reject),
                retries: 0,
                retriable_answer: false,
            };
        }
    };
    let max_tries = 1 + plan.retry.map_or(0, |p| p.num_retries);
    let per_try = plan.retry.and_then(|p| p.per_try_timeout);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut admitted: Vec<RetryActive> = Vec::new();
    let mut attempt = 0u32;
    let end = |result, retriable_answer, attempt: u32| Tries {
        result,
        retries: attempt.saturating_sub(1),
        retriable_answer,
    };
    loop {
        attempt += 1;
        let last = attempt >= max_tries;
        let remaining = plan
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let budget = match (remaining, per_try) {
            (Some(r), Some(p)) => Some(r.min(p)),
            (r, p) => r.or(p),
        };
        let outcome = Budgeted::new(t.try_once(&tried, last), budget).await;
        let expired = plan.deadline.is_some_and(|d| Instant::now() >= d);
        let (failure, reject) = match outcome {
            Some(Ok(answer)) => {
                let retriable = plan.retry.is_some_and(|p| t.retries_answer(p, &answer));
                let status = t.status(&answer);
                report(t.endpoint(), TryOutcome::Answered { retriable, status });
                if !retriable || last || expired || !admit(t, &mut admitted) {
                    return end(Ok(answer), retriable, attempt);
                }
                tracing::debug!(attempt, "retrying an answer the retry policy retries");
                tried.extend(t.upstream());
                if !backoff(attempt, plan.deadline).await {
                    return end(Err(t.timed_out(false)), false, attempt);
                }
                continue;
            }
            Some(Err(TryError::Final(reject))) => return end(Err(reject), false, attempt),
            Some(Err(TryError::Failed(failure, reject))) => {
                report(t.endpoint(), TryOutcome::Failed(failure));
                (failure, reject)
            }
            None => {
                report(t.endpoint(), TryOutcome::Failed(TryFailure::PerTryTimeout));
                (TryFailure::PerTryTimeout, t.timed_out(true))
            }
        };
        // Past the deadline, whatever failed, the request timed out.
        if expired {
            return end(Err(t.timed_out(false)), false, attempt);
        }
        let retriable = plan
            .retry
            .is_some_and(|p| retry::retries_failure(p, failure));
        if !retriable || last || !admit(t, &mut admitted) {
            return end(Err(reject), false, attempt);
        }
        tracing::debug!(attempt, error = %reject.message, "retrying a failed try");
        tried.extend(t.upstream());
        if !backoff(attempt, plan.deadline).await {
            return end(Err(t.timed_out(false)), false, attempt);
        }
    }
}

/// Admission of one more try, as a breaker and budget guard kept until the request ends.
fn admit<T: Transport>(t: &mut T, admitted: &mut Vec<RetryActive>) -> bool {
    match t.admit_retry() {
        Some(r) => {
            admitted.push(r);
            true
        }
        None => false,
    }
}

/// After every try: the endpoint's failure count (shown in `/clusters`) and outlier
/// detection. Failures without an answer count as the gateway errors Envoy maps them
/// to: 503 for connect failures and resets, 504 for timeouts.
fn report(ep: Option<&Arc<Endpoint>>, outcome: TryOutcome) {
    let Some(ep) = ep else { return };
    let (failed, event) = match outcome {
        TryOutcome::Answered { retriable, status } => {
            (retriable || status >= 500, Event::Answer(status))
        }
        TryOutcome::Failed(TryFailure::PerTryTimeout) => (true, Event::LocalFailure(504)),
        TryOutcome::Failed(_) => (true, Event::LocalFailure(503)),
    };
    if failed {
        ep.failed_rq.fetch_add(1, Ordering::Relaxed);
    }
    ep.report(event);
}

/// A connection slot on the transport's cluster when its breakers apply (HTTP/1.1 and
/// the codec protocols), waiting as a pending request up to the deadline; an overflow
/// when the pending queue is full too.
async fn connection_slot<T: Transport>(
    t: &T,
    deadline: Option<Instant>,
) -> Result<Option<crate::cluster::breaker::Slot>, Reject> {
    let Some(cluster) = t.cluster().filter(|c| !c.config.http2) else {
        return Ok(None);
    };
    let (max, pending) = (cluster.config.max_connections, cluster.config.max_pending);
    let slots = cluster.counters.slots.clone();
    let acquire = slots.acquire(max, pending);
    let waited = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), acquire).await,
        None => Ok(acquire.await),
    };
    match waited {
        Ok(Ok(slot)) => Ok(Some(slot)),
        Ok(Err(overflow)) => Err(Reject::new(
            RejectKind::Overflow,
            format!("{}: {overflow}", cluster.config.name),
        )),
        Err(_) => Err(t.timed_out(false)),
    }
}

/// An HTTP answer's status for outlier detection: a trailers-only gRPC error counts as
/// its HTTP equivalent (UNAVAILABLE as 503, ...), as Envoy reads it.
pub fn answer_status(status: u16, headers: &http::HeaderMap) -> u16 {
    match headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
    {
        Some(code) if status == 200 && code != 0 => crate::policy::fault::http_of_grpc(code),
        _ => status,
    }
}

/// Waits before the next try; false when the deadline passes meanwhile.
async fn backoff(attempt: u32, deadline: Option<Instant>) -> bool {
    let wait: Duration = retry::backoff(attempt, &mut rand::rng());
    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

/// Admits a request to `cluster` under its circuit breaker (`max_requests`), counting it
/// as active there while the guard lives; `None` (an overflow, counted) when the breaker
/// is open. Both HTTP and the codec protocols go through here.
pub fn admit_request(cluster: &Arc<ClusterState>) -> Option<ClusterActive> {
    if !cluster.admits_request() {
        cluster.counters.overflow_rq.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(ClusterActive::new(cluster.clone()))
}

#[cfg(test)]
mod tests;
