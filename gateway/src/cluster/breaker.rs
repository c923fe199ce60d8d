//! The connection circuit breakers: `max_connections` and `max_pending_requests`.
//!
//! A request to an HTTP/1.1 cluster holds a connection of its own for its tries, and so
//! does a Dubbo or Thrift call (Aeraki's MetaProtocol proxy leases one upstream
//! connection per call); a cluster lets at most `max_connections` such requests hold
//! one. The next `max_pending_requests` wait for one to come free (bounded by the
//! route's timeout); any more are refused at once as an overflow. HTTP/2 clusters
//! (gRPC) multiplex every request on one connection per endpoint: for them
//! `max_requests` is the limit, as in Envoy.
//!
//! Corridor multiplexes Dubbo/Thrift calls on one connection per endpoint all the same;
//! the limit is on calls in flight, which is what a caller of a connection-per-call
//! proxy observes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The connection slots of one cluster name (kept across pushes).
#[derive(Debug, Default)]
pub struct Slots {
    in_use: AtomicU32,
    pending: AtomicU32,
    freed: Notify,
    /// Requests refused because `max_pending_requests` were already waiting
    /// (`upstream_rq_pending_overflow`).
    pub pending_overflow: AtomicU64,
    /// Requests that had to wait for a connection (`upstream_rq_pending_total`).
    pub pending_total: AtomicU64,
}

/// A connection slot held while alive.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

/// Counts a waiting request while alive (also when its wait is cancelled).
struct Waiting<'a>(&'a Slots);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// No slot and the queue is full: the request overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's max_connections are in use and max_pending_requests are waiting")]
pub struct Overflow;

impl Slots {
    /// Slots in use right now.
    pub fn in_use(&self) -> u32 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Requests waiting right now.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    fn try_take(self: &Arc<Self>, max: u32) -> Option<Slot> {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// A slot under `max_connections`, waiting as one of at most `max_pending` when none
    /// is free. Cancel-safe: dropping the future leaves the queue.
    pub async fn acquire(
        self: &Arc<Self>,
        max_connections: u32,
        max_pending: u32,
    ) -> Result<Slot, Overflow> {
        if let Some(slot) = self.try_take(max_connections) {
            return Ok(slot);
        }
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max_pending).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.pending_overflow.fetch_add(1, Ordering::Relaxed);
            return Err(Overflow);
        }
        self.pending_total.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(self);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between still wakes us.
            freed.as_mut().enable();
            if let Some(slot) = self.try_take(max_connections) {
                return Ok(slot);
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_connection_one_waiting_the_rest_overflow() {
        let slots = Arc::new(Slots::default());
        let first = slots.acquire(1, 1).await.unwrap();
        let mut second = Box::pin(slots.acquire(1, 1));
        // The second waits...
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert_eq!(slots.pending(), 1);
        // ...the third is refused...
        assert_eq!(slots.acquire(1, 1).await.unwrap_err(), Overflow);
        assert_eq!(slots.pending_overflow.load(Ordering::Relaxed), 1);
        // ...and the second gets the slot once the first lets go.
        drop(first);
        let held = second.await.unwrap();
        assert_eq!(slots.in_use(), 1);
        assert_eq!(slots.pending(), 0);
        drop(held);
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_queue() {
        let slots = Arc::new(Slots::default());
        let _first = slots.acquire(1, 1).await.unwrap();
        {
            let mut waiting = Box::pin(slots.acquire(1, 1));
            assert!(futures::poll!(waiting.as_mut()).is_pending());
        }
        assert_eq!(slots.pending(), 0);
        let mut again = Box::pin(slots.acquire(1, 1));
        assert!(futures::poll!(again.as_mut()).is_pending());
    }
}
