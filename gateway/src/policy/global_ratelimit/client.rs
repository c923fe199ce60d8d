//! Channels to rate limit services, one per service cluster, kept for the life of the
//! gateway: a new channel (and connection) only when the cluster's endpoints change, so
//! thousands of calls share one HTTP/2 connection instead of paying a handshake each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use corridor_proto::envoy::service::ratelimit::v3::RateLimitRequest;
use corridor_proto::envoy::service::ratelimit::v3::rate_limit_response::Code;
use corridor_proto::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::{ClusterState, Snapshot};

/// Endpoints one channel balances over at most (tonic's balancer queues its endpoint
/// list in a bounded buffer; a rate limit service has a handful of replicas).
const MAX_ENDPOINTS: usize = 64;

/// Why a call to a rate limit service gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RlsError {
    /// The configuration has no such cluster.
    #[error("no cluster {0:?} (is the rate limit service's Service known to the mesh?)")]
    NoCluster(String),
    /// The cluster has no healthy endpoint.
    #[error("cluster {0:?} has no healthy endpoint")]
    NoEndpoint(String),
    /// An endpoint's address does not make a URI.
    #[error("bad endpoint address {0}")]
    Address(String),
    /// The deadline passed first.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The service (or the connection to it) failed the call.
    #[error("call failed: {0}")]
    Status(tonic::Status),
    /// The answer's overall code is neither OK nor OVER_LIMIT.
    #[error("answer with overall code {0}")]
    Unknown(i32),
    /// The registry's lock is poisoned (a panic elsewhere).
    #[error("channel registry unavailable")]
    Poisoned,
}

/// The channels, by cluster name. Shared by every listener's filters.
#[derive(Debug, Default)]
pub struct RlsClients {
    channels: Mutex<HashMap<String, Client>>,
}

#[derive(Debug)]
struct Client {
    /// The cluster state the channel was last checked against: while the snapshot holds
    /// the same state, the endpoints cannot have changed. Weak, so an old state's pools
    /// are not kept alive (its allocation is, so the address is never reused meanwhile).
    checked: Weak<ClusterState>,
    /// The healthy endpoints the channel connects to, sorted.
    addrs: Vec<SocketAddr>,
    channel: Channel,
}

impl RlsClients {
    /// The channel to `cluster`'s endpoints in `snapshot`: the kept one while they are
    /// the same, else a new one (connecting on first use).
    pub(super) fn channel(&self, snapshot: &Snapshot, cluster: &str) -> Result<Channel, RlsError> {
        let state = snapshot
            .clusters
            .get(cluster)
            .ok_or_else(|| RlsError::NoCluster(cluster.to_owned()))?;
        let mut channels = self.channels.lock().map_err(|_| RlsError::Poisoned)?;
        if let Some(c) = channels.get(cluster)
            && std::ptr::eq(c.checked.as_ptr(), Arc::as_ptr(state))
        {
            return Ok(c.channel.clone());
        }
        let mut addrs: Vec<SocketAddr> = state.healthy.iter().map(|e| e.addr).collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(RlsError::NoEndpoint(cluster.to_owned()));
        }
        if let Some(c) = channels.get_mut(cluster)
            && c.addrs == addrs
        {
            c.checked = Arc::downgrade(state);
            return Ok(c.channel.clone());
        }
        let channel = connect(&addrs, state.config.connect_timeout)?;
        tracing::debug!(cluster, endpoints = ?addrs, "new rate limit service channel");
        channels.insert(
            cluster.to_owned(),
            Client {
                checked: Arc::downgrade(state),
                addrs,
                channel: channel.clone(),
            },
        );
        Ok(channel)
    }
}

/// A lazily connecting channel to `addrs` (plain HTTP/2).
fn connect(addrs: &[SocketAddr], connect_timeout: Duration) -> Result<Channel, RlsError> {
    let endpoint = |a: &SocketAddr| {
        Endpoint::from_shared(format!("http://{a}"))
            .map(|e| e.connect_timeout(connect_timeout).tcp_nodelay(true))
            .map_err(|_| RlsError::Address(a.to_string()))
    };
    match addrs {
        [one] => Ok(endpoint(one)?.connect_lazy()),
        many => {
            let list = many
                .iter()
                .take(MAX_ENDPOINTS)
                .map(endpoint)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Channel::balance_list(list.into_iter()))
        }
    }
}

/// Asks the service about `request`, within `timeout` (also sent as `grpc-timeout`, so
/// the service can give up too).
pub(super) async fn ask(
    channel: Channel,
    request: RateLimitRequest,
    timeout: Duration,
) -> Result<Code, RlsError> {
    let mut client = RateLimitServiceClient::new(channel);
    let mut call = tonic::Request::new(request);
    call.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.should_rate_limit(call)).await {
        Err(_) => Err(RlsError::Timeout(timeout)),
        Ok(Err(status)) => Err(RlsError::Status(status)),
        Ok(Ok(answer)) => {
            let code = answer.into_inner().overall_code;
            match Code::try_from(code) {
                Ok(Code::Ok) => Ok(Code::Ok),
                Ok(Code::OverLimit) => Ok(Code::OverLimit),
                _ => Err(RlsError::Unknown(code)),
            }
        }
    }
}
