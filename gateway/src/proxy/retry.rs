//! Retry decisions: which outcomes a policy retries, the cluster's retry budget, backoff.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use rand::Rng;

use crate::cluster::ClusterState;
use crate::model::cluster::Cluster;
use crate::model::route::{RetryPolicy, retry_on};
use crate::telemetry::metrics::{Metrics, UPSTREAM_RETRIES, UPSTREAM_RETRY_OVERFLOW};

/// How a try failed before a response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFailure {
    /// The TCP connect failed or timed out.
    Connect,
    /// HTTP/2 REFUSED_STREAM: the upstream never processed the request.
    RefusedStream,
    /// The connection or stream broke before the response headers.
    Reset,
    /// The per-try timeout fired.
    PerTryTimeout,
}

impl TryFailure {
    /// How an HTTP exchange that got no response failed. The upstream promises it never
    /// processed a stream it refused (RST_STREAM REFUSED_STREAM) or one a GOAWAY left out
    /// (above its last stream id, or opened after it; RFC 9113 section 6.8): h2 fails
    /// exactly those with the peer's GOAWAY, while a stream the peer may have started
    /// sees the connection's end as an I/O error. Both are refused streams, safe to
    /// retry, as Envoy reads them; anything else broke mid-way.
    pub fn of_http(e: &hyper::Error) -> TryFailure {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(h2) = err.downcast_ref::<h2::Error>() {
                return TryFailure::of_h2(h2);
            }
            source = err.source();
        }
        TryFailure::Reset
    }

    fn of_h2(e: &h2::Error) -> TryFailure {
        let refused =
            e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote());
        if refused {
            TryFailure::RefusedStream
        } else {
            TryFailure::Reset
        }
    }
}

pin_project_lite::pin_project! {
    /// A try bounded by an optional time budget. Unlike a `match` between
    /// `tokio::time::timeout(t, f)` and `f`, it holds the try's future once, and
    /// registers no timer when there is no budget.
    pub struct Budgeted<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl<F> Budgeted<F> {
    /// Bounds `inner` by `budget`, if any.
    pub fn new(inner: F, budget: Option<Duration>) -> Self {
        Budgeted {
            inner,
            sleep: budget.map(tokio::time::sleep),
        }
    }
}

impl<F: Future> Future for Budgeted<F> {
    /// `None` when the budget ran out first.
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Some(v));
        }
        match this.sleep.as_pin_mut() {
            Some(s) => s.poll(cx).map(|()| None),
            None => Poll::Pending,
        }
    }
}

/// Whether the policy retries a failure.
pub fn retries_failure(p: &RetryPolicy, f: TryFailure) -> bool {
    use retry_on::*;
    let on = p.on;
    match f {
        TryFailure::Connect => on & (CONNECT_FAILURE | FIVE_XX | GATEWAY_ERROR | RESET) != 0,
        TryFailure::RefusedStream => on & (REFUSED_STREAM | RESET | FIVE_XX) != 0,
        TryFailure::Reset => on & (RESET | FIVE_XX | GATEWAY_ERROR) != 0,
        TryFailure::PerTryTimeout => on & (FIVE_XX | GATEWAY_ERROR | RESET) != 0,
    }
}

/// Whether the policy retries a response (status, and `grpc-status` of a trailers-only
/// gRPC response).
pub fn retries_response(p: &RetryPolicy, status: u16, headers: &HeaderMap) -> bool {
    use retry_on::*;
    let on = p.on;
    if on & FIVE_XX != 0 && (500..600).contains(&status) {
        return true;
    }
    if on & GATEWAY_ERROR != 0 && matches!(status, 502..=504) {
        return true;
    }
    if on & RETRIABLE_STATUS_CODES != 0 && p.retriable_status_codes.contains(&status) {
        return true;
    }
    let grpc_bits = UNAVAILABLE | CANCELLED | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | INTERNAL;
    if on & grpc_bits != 0
        && let Some(code) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u16>().ok())
    {
        let bit = match code {
            1 => CANCELLED,
            4 => DEADLINE_EXCEEDED,
            8 => RESOURCE_EXHAUSTED,
            13 => INTERNAL,
            14 => UNAVAILABLE,
            _ => 0,
        };
        return on & bit != 0;
    }
    false
}

/// Whether the cluster's budget admits one more concurrent retry.
///
/// With a retry budget: retries in flight must stay below `percent` of the requests in
/// flight, but `min_concurrency` retries are always allowed. Without one, the
/// `max_retries` circuit breaker applies.
pub fn budget_allows(c: &Cluster, active_requests: u64, active_retries: u64) -> bool {
    match c.retry_budget {
        Some(b) => {
            let by_percent = (active_requests as f64 * b.percent / 100.0).floor() as u64;
            active_retries < by_percent.max(u64::from(b.min_concurrency))
        }
        None => active_retries < u64::from(c.max_retries),
    }
}

/// A retry counted as in flight on its cluster until dropped.
#[derive(Debug)]
pub struct RetryActive(Option<Arc<ClusterState>>);

impl RetryActive {
    /// Counts one more retry on `cluster` if its budget (or `max_retries` breaker)
    /// admits it; else counts the overflow and says no. Both land in the cluster's
    /// counters and metrics.
    pub fn admit(cluster: &Arc<ClusterState>, metrics: &Metrics) -> Option<RetryActive> {
        let c = &cluster.counters;
        let active = c.active_rq.load(Ordering::Relaxed);
        let active_retries = c.active_retries.load(Ordering::Relaxed);
        if !budget_allows(&cluster.config, active, active_retries) {
            c.retry_overflow.fetch_add(1, Ordering::Relaxed);
            metrics
                .cluster_counter(UPSTREAM_RETRY_OVERFLOW, &cluster.config.name)
                .increment(1);
            return None;
        }
        c.active_retries.fetch_add(1, Ordering::Relaxed);
        c.retries.fetch_add(1, Ordering::Relaxed);
        metrics
            .cluster_counter(UPSTREAM_RETRIES, &cluster.config.name)
            .increment(1);
        Some(RetryActive(Some(cluster.clone())))
    }

    /// A retry no cluster accounts for (tests of the proxy paths).
    pub fn untracked() -> RetryActive {
        RetryActive(None)
    }
}

impl Drop for RetryActive {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.counters.active_retries.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Base of the exponential backoff between tries (Envoy's default).
const BACKOFF_BASE: Duration = Duration::from_millis(25);
/// Cap of the backoff (Envoy's default: ten times the base).
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Full-jitter exponential backoff before retry number `n` (1-based).
pub fn backoff<R: Rng + ?Sized>(n: u32, rng: &mut R) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << n.saturating_sub(1).min(8))
        .min(BACKOFF_MAX);
    Duration::from_micros(rng.random_range(0..=ceiling.as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::cluster;
    use crate::model::cluster::{LbPolicy, RetryBudget};
    use rand::SeedableRng;

    fn policy(on: u16) -> RetryPolicy {
        RetryPolicy {
            on,
            num_retries: 2,
            per_try_timeout: None,
            retriable_status_codes: vec![409],
        }
    }

    #[test]
    fn budget_is_a_percentage_of_active_requests_with_a_floor() {
        let mut c = cluster(LbPolicy::RoundRobin);
        c.retry_budget = Some(RetryBudget {
            percent: 20.0,
            min_concurrency: 3,
        });
        // 100 active requests: 20 concurrent retries.
        assert!(budget_allows(&c, 100, 19));
        assert!(!budget_allows(&c, 100, 20));
        // Few requests: the floor of 3 applies.
        assert!(budget_allows(&c, 1, 2));
        assert!(!budget_allows(&c, 1, 3));
        // Without a budget, max_retries (3 by default).
        c.retry_budget = None;
        assert!(budget_allows(&c, 1000, 2));
        assert!(!budget_allows(&c, 1000, 3));
    }

    #[test]
    fn response_conditions() {
        let none = HeaderMap::new();
        assert!(retries_response(&policy(retry_on::FIVE_XX), 503, &none));
        assert!(!retries_response(&policy(retry_on::FIVE_XX), 404, &none));
        assert!(retries_response(
            &policy(retry_on::GATEWAY_ERROR),
            502,
            &none
        ));
        assert!(!retries_response(
            &policy(retry_on::GATEWAY_ERROR),
            500,
            &none
        ));
        assert!(retries_response(
            &policy(retry_on::RETRIABLE_STATUS_CODES),
            409,
            &none
        ));
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", "14".parse().unwrap());
        assert!(retries_response(&policy(retry_on::UNAVAILABLE), 200, &grpc));
        assert!(!retries_response(&policy(retry_on::CANCELLED), 200, &grpc));
    }

    #[test]
    fn failure_conditions() {
        assert!(retries_failure(
            &policy(retry_on::CONNECT_FAILURE),
            TryFailure::Connect
        ));
        assert!(!retries_failure(
            &policy(retry_on::CONNECT_FAILURE),
            TryFailure::Reset
        ));
        assert!(retries_failure(
            &policy(retry_on::REFUSED_STREAM),
            TryFailure::RefusedStream
        ));
        assert!(retries_failure(
            &policy(retry_on::FIVE_XX),
            TryFailure::PerTryTimeout
        ));
    }

    #[test]
    fn backoff_is_bounded() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in 1..20 {
            assert!(backoff(n, &mut rng) <= BACKOFF_MAX);
        }
    }
}
