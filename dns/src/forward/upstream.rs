//! The upstream pool: which upstream to ask next, how much of the budget each attempt may
//! spend, and the per-upstream health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use metrics::{Counter, Histogram, Label};
use tokio::time::Instant;

use super::exchange::{self, AttemptError, Question};
use super::{ForwardError, Forwarded};
use crate::metrics::{FORWARD_DURATION, FORWARD_REQUESTS, FORWARD_RESPONSES, Metrics};

/// Each upstream is tried at most this many times per query: a second pass recovers from
/// one lost datagram (there is no other retransmission) when the budget allows.
const PASSES: usize = 2;
/// The least time an attempt is given, whatever the share of the budget: a healthy
/// upstream on a busy node can take this long, and many upstreams must not shrink every
/// attempt to nothing. The overall budget still caps it.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
/// How long an upstream that failed goes to the back of the order, unless it answers
/// again. Long enough that a dead resolver does not cost every query an attempt, short
/// enough that a restarted one is back in use soon.
const FAILED_PENALTY: Duration = Duration::from_secs(10);

/// Every attempt of one query failed.
#[derive(Debug)]
pub(super) struct Failure {
    attempts: usize,
    last: Option<AttemptError>,
    budget_spent: bool,
}

impl Failure {
    /// The error the server sees.
    pub(super) fn into_error(self, budget: Duration) -> ForwardError {
        match self.last {
            Some(last) if !self.budget_spent => ForwardError::Unavailable {
                attempts: self.attempts,
                last: last.to_string(),
            },
            _ => ForwardError::Timeout(budget),
        }
    }
}

/// The upstreams with their health.
#[derive(Debug)]
pub(super) struct Pool {
    upstreams: Vec<Upstream>,
    /// Reference point of the health timestamps.
    epoch: Instant,
}

impl Pool {
    pub(super) fn new(addrs: &[SocketAddr], metrics: &Arc<Metrics>) -> Self {
        let mut seen = Vec::new();
        let upstreams = addrs
            .iter()
            .filter(|addr| {
                // The same resolver twice would only cost a duplicate attempt.
                let fresh = !seen.contains(*addr);
                seen.push(**addr);
                fresh
            })
            .map(|&addr| Upstream::new(addr, metrics))
            .collect();
        Pool {
            upstreams,
            epoch: Instant::now(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Asks the upstreams in health order until one answers or `deadline` passes. Any
    /// answer counts, whatever its rcode: NXDOMAIN or SERVFAIL from a resolver is its
    /// verdict, not a transport failure.
    pub(super) async fn exchange(
        &self,
        question: &Question,
        deadline: Instant,
    ) -> Result<Forwarded, Failure> {
        let order = self.order(Instant::now());
        let attempts = order.len() * PASSES;
        let mut failure = Failure {
            attempts: 0,
            last: None,
            budget_spent: false,
        };
        for (i, &index) in order.iter().cycle().take(attempts).enumerate() {
            let now = Instant::now();
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                failure.budget_spent = true;
                break;
            }
            let left = u32::try_from(attempts - i).unwrap_or(u32::MAX);
            let share = (remaining / left).max(MIN_ATTEMPT).min(remaining);
            let upstream = &self.upstreams[index];
            failure.attempts += 1;
            match upstream.attempt(question, share, deadline).await {
                Ok(answer) => {
                    upstream.mark_healthy();
                    return Ok(answer);
                }
                Err(error) => {
                    tracing::debug!(upstream = %upstream.addr, %question, %error, "upstream attempt failed");
                    upstream.mark_failed(self.since_epoch(Instant::now() + FAILED_PENALTY));
                    failure.budget_spent = Instant::now() >= deadline;
                    failure.last = Some(error);
                }
            }
        }
        Err(failure)
    }

    /// Indexes of the upstreams, healthy ones first in configured order, then those that
    /// failed recently, the one whose penalty ends first leading.
    fn order(&self, now: Instant) -> Vec<usize> {
        let now = self.since_epoch(now);
        let mut order: Vec<(u64, usize)> = self
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, up)| {
                let until = up.failed_until.load(Ordering::Relaxed);
                (if until > now { until } else { 0 }, i)
            })
            .collect();
        // The index breaks ties, so healthy upstreams keep the configured order.
        order.sort_unstable();
        order.into_iter().map(|(_, i)| i).collect()
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        let millis = at.saturating_duration_since(self.epoch).as_millis();
        // Zero means healthy, so a stamp is never zero.
        u64::try_from(millis).unwrap_or(u64::MAX).max(1)
    }
}

/// One upstream resolver.
#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    /// The `to` label (`ip:port`).
    label: String,
    /// Milliseconds since the pool's epoch until which it sits at the back; 0 = healthy.
    failed_until: AtomicU64,
    requests: Counter,
    /// Response metrics of the common rcodes (NOERROR..REFUSED), registered once.
    common: Vec<(Counter, Histogram)>,
    metrics: Arc<Metrics>,
}

impl Upstream {
    fn new(addr: SocketAddr, metrics: &Arc<Metrics>) -> Self {
        let label = addr.to_string();
        let to = || Label::new("to", label.clone());
        let common = (0..=5u16)
            .map(|code| {
                let labels = || vec![to(), Label::new("rcode", rcode_label(code.into()))];
                (
                    metrics.counter(FORWARD_RESPONSES, labels()),
                    metrics.histogram(FORWARD_DURATION, labels()),
                )
            })
            .collect();
        Upstream {
            addr,
            requests: metrics.counter(FORWARD_REQUESTS, vec![to()]),
            label,
            failed_until: AtomicU64::new(0),
            common,
            metrics: Arc::clone(metrics),
        }
    }

    /// One attempt: UDP within `share`, then TCP within a fresh `share` when the UDP
    /// answer was truncated; never past `deadline`.
    async fn attempt(
        &self,
        question: &Question,
        share: Duration,
        deadline: Instant,
    ) -> Result<Forwarded, AttemptError> {
        self.requests.increment(1);
        let started = Instant::now();
        let mut response =
            exchange::udp(self.addr, question, (started + share).min(deadline)).await?;
        if response.truncation {
            let tcp_deadline = (Instant::now() + share).min(deadline);
            response = exchange::tcp(self.addr, question, tcp_deadline).await?;
        }
        let rcode = response.response_code;
        self.observe(rcode, started.elapsed());
        Ok(Forwarded {
            rcode,
            answers: response.answers,
            authorities: response.authorities,
            additionals: response.additionals,
        })
    }

    fn observe(&self, rcode: ResponseCode, took: Duration) {
        let code = u16::from(rcode);
        if let Some((count, duration)) = self.common.get(usize::from(code)) {
            count.increment(1);
            duration.record(took.as_secs_f64());
            return;
        }
        let labels = || {
            vec![
                Label::new("to", self.label.clone()),
                Label::new("rcode", rcode_label(rcode)),
            ]
        };
        self.metrics
            .counter(FORWARD_RESPONSES, labels())
            .increment(1);
        self.metrics
            .histogram(FORWARD_DURATION, labels())
            .record(took.as_secs_f64());
    }

    fn mark_healthy(&self) {
        self.failed_until.store(0, Ordering::Relaxed);
    }

    fn mark_failed(&self, until: u64) {
        self.failed_until.store(until, Ordering::Relaxed);
    }
}

/// The `rcode` label as CoreDNS writes it (miekg/dns's names, the number when unnamed).
pub(super) fn rcode_label(rcode: ResponseCode) -> String {
    let name = match u16::from(rcode) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        other => return other.to_string(),
    };
    name.to_string()
}
