//! Gateway-pool availability as the ADS streams show it (file mode): the pool can take
//! traffic while at least one gateway stream serves listeners it has acknowledged.
//!
//! Per stream, only listener responses count, so a DNS replica's stream (which never asks
//! for listeners) never makes the pool available. A stream serves from its first ACK of
//! a listener response; a newer response still unanswered leaves it serving (the gateway
//! keeps the previous good set meanwhile); a NACK stops it until a later ACK; its end
//! removes it.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use corridor_proto::type_url;
use tokio::sync::watch;

/// Unanswered listener responses remembered per stream. A client that never answers
/// must not grow the list forever; an answer to a nonce forgotten this way is ignored,
/// and a conforming client answers the latest one eventually anyway.
const MAX_OUTSTANDING: usize = 16;

/// The streams' shared view: how many serve, published as "available".
#[derive(Debug, Clone)]
pub struct GatewayPool(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    serving: Mutex<usize>,
    available: watch::Sender<bool>,
}

impl Default for GatewayPool {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayPool {
    /// A pool with no stream: unavailable.
    pub fn new() -> Self {
        Self(Arc::new(Shared {
            serving: Mutex::new(0),
            available: watch::channel(false).0,
        }))
    }

    /// True while at least one gateway stream serves acknowledged listeners.
    pub fn available(&self) -> watch::Receiver<bool> {
        self.0.available.subscribe()
    }

    /// One more (`true`) or one fewer serving stream.
    fn count(&self, serving: bool) {
        // The count is only ever changed by whole steps under the lock, so a panic
        // elsewhere cannot leave it half-updated: a poisoned lock is safe to use.
        let mut n = self
            .0
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *n = if serving { *n + 1 } else { n.saturating_sub(1) };
        let available = *n > 0;
        self.0
            .available
            .send_if_modified(|v| std::mem::replace(v, available) != available);
    }

    /// The tracker of one new stream.
    pub(crate) fn stream(&self) -> StreamAcks {
        StreamAcks {
            pool: self.clone(),
            outstanding: VecDeque::new(),
            serving: false,
        }
    }
}

/// One stream's listener responses and its answers to them. Dropping it (the stream
/// ended) takes the stream out of the pool.
#[derive(Debug)]
pub(crate) struct StreamAcks {
    pool: GatewayPool,
    /// Nonces of listener responses sent and not answered yet, oldest first.
    outstanding: VecDeque<String>,
    serving: bool,
}

impl StreamAcks {
    /// A response of `type_url` went out with `nonce`.
    pub fn sent(&mut self, type_url: &str, nonce: &str) {
        if type_url != type_url::LISTENER {
            return;
        }
        if self.outstanding.len() == MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(nonce.to_string());
    }

    /// The client answered the response `nonce` of `type_url`: an ACK, or a NACK when
    /// `rejected`. Answers to anything but a listener response this stream sent (a first
    /// request, a nonce from an earlier stream) change nothing.
    pub fn answered(&mut self, type_url: &str, nonce: &str, rejected: bool) {
        if type_url != type_url::LISTENER || nonce.is_empty() {
            return;
        }
        let Some(at) = self.outstanding.iter().position(|n| n == nonce) else {
            return;
        };
        // Clients answer in order: what was sent before this response is settled too.
        self.outstanding.drain(..=at);
        self.set_serving(!rejected);
    }

    fn set_serving(&mut self, serving: bool) {
        if self.serving != serving {
            self.serving = serving;
            tracing::debug!(serving, "gateway stream's listener state changed");
            self.pool.count(serving);
        }
    }
}

impl Drop for StreamAcks {
    fn drop(&mut self) {
        self.set_serving(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDS: &str = type_url::LISTENER;
    const ACK: bool = false;
    const NACK: bool = true;

    /// A response of `type_url` sent and answered at once.
    fn exchange(stream: &mut StreamAcks, type_url: &str, nonce: &str, rejected: bool) {
        stream.sent(type_url, nonce);
        stream.answered(type_url, nonce, rejected);
    }

    #[test]
    fn an_ack_makes_the_pool_available_and_the_stream_end_takes_it_away() {
        let pool = GatewayPool::new();
        let available = pool.available();
        assert!(!*available.borrow(), "no gateway yet");
        let mut gw = pool.stream();
        gw.answered(LDS, "", ACK); // the first request is no answer
        gw.sent(LDS, "1");
        assert!(!*available.borrow(), "sent is not acknowledged");
        gw.answered(LDS, "1", ACK);
        assert!(*available.borrow());
        drop(gw);
        assert!(!*available.borrow());
    }

    #[test]
    fn a_nack_stops_serving_until_a_later_ack() {
        let pool = GatewayPool::new();
        let available = pool.available();
        let mut gw = pool.stream();
        exchange(&mut gw, LDS, "1", ACK);
        exchange(&mut gw, LDS, "2", NACK);
        assert!(!*available.borrow());
        exchange(&mut gw, LDS, "3", ACK);
        assert!(*available.borrow());
    }

    #[test]
    fn a_newer_push_not_yet_answered_keeps_the_stream_serving() {
        let pool = GatewayPool::new();
        let available = pool.available();
        let mut gw = pool.stream();
        exchange(&mut gw, LDS, "1", ACK);
        gw.sent(LDS, "2");
        assert!(
            *available.borrow(),
            "still serving the previous good listeners"
        );
        // An answer to an unknown (or already settled) nonce changes nothing.
        gw.answered(LDS, "1", NACK);
        gw.answered(LDS, "from-an-earlier-stream", NACK);
        assert!(*available.borrow());
    }

    #[test]
    fn only_listener_answers_count() {
        let pool = GatewayPool::new();
        let available = pool.available();
        let mut dns = pool.stream();
        exchange(&mut dns, type_url::NAME_TABLE, "1", ACK);
        let mut gw = pool.stream();
        exchange(&mut gw, type_url::CLUSTER, "2", ACK);
        assert!(
            !*available.borrow(),
            "neither stream acknowledged listeners"
        );
        // A nonce of another type is no listener answer, even if the numbers collide.
        gw.sent(LDS, "3");
        gw.answered(type_url::CLUSTER, "3", ACK);
        assert!(!*available.borrow());
    }

    #[test]
    fn available_while_any_stream_serves() {
        let pool = GatewayPool::new();
        let available = pool.available();
        let (mut a, mut b) = (pool.stream(), pool.stream());
        exchange(&mut a, LDS, "1", ACK);
        exchange(&mut b, LDS, "2", ACK);
        drop(a);
        assert!(*available.borrow(), "b still serves");
        exchange(&mut b, LDS, "3", NACK);
        assert!(!*available.borrow());
    }
}
