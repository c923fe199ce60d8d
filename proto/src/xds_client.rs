//! What every ADS client of the controller shares (the gateway and corridor-dns): opening
//! the channel, and the jittered exponential backoff between streams.

use std::time::Duration;

use rand::Rng;

use crate::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Bound on connecting to the control plane.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response accepted (a whole mesh's listeners can be large).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The ADS client type.
pub type AdsClient = AggregatedDiscoveryServiceClient<tonic::transport::Channel>;

/// Opens a channel to the control plane at `address` (`host:port`, or a URL). The error
/// is the whole cause chain, for a log line an operator can act on.
pub async fn connect(address: &str) -> Result<AdsClient, String> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| error_chain(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
    Ok(AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE))
}

/// Jittered exponential backoff between streams; reset once a stream made progress.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// Starts again from the shortest delay (the last stream got somewhere).
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// The delay before the next attempt: half to all of the current step, which then
    /// doubles up to [`BACKOFF_MAX`]. The jitter keeps a fleet of replicas from
    /// reconnecting in lock-step after a control-plane restart.
    pub fn next_delay(&mut self) -> Duration {
        let jittered = self.next.mul_f64(rand::rng().random_range(0.5..1.0));
        self.next = (self.next * 2).min(BACKOFF_MAX);
        jittered
    }
}

/// An error and its sources, joined with `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN);
        for _ in 0..20 {
            assert!(b.next_delay() <= BACKOFF_MAX);
        }
        assert!(b.next_delay() >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_MIN);
    }
}
