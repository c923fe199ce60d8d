//! What the codec-based upstream connections (Dubbo/Thrift multiplexed, Redis pipelined)
//! share: why a call got no answer, and failing every waiting call at once when a
//! connection breaks.

use std::net::SocketAddr;

use tokio::sync::oneshot;

/// Why a call did not get its answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connecting (or the connection's setup, such as Redis AUTH) failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The upstream.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The connection broke (closed, reset, or sent bytes the codec cannot read) before the
    /// answer arrived.
    #[error("upstream connection to {addr} broke: {reason}")]
    Reset {
        /// The upstream.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The request could not be written in this protocol (an edit the codec refused).
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// Answers every waiter with [`UpstreamError::Reset`] (the connection to `addr` broke).
pub fn fail_all<T>(
    waiters: impl IntoIterator<Item = oneshot::Sender<Result<T, UpstreamError>>>,
    addr: SocketAddr,
    reason: &str,
) {
    for w in waiters {
        let _ = w.send(Err(UpstreamError::Reset {
            addr,
            reason: reason.to_string(),
        }));
    }
}
