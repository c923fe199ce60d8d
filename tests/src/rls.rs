//! A rate limit service for the global rate limit tests: Envoy's
//! `envoy.service.ratelimit.v3.RateLimitService` over gRPC, answering by a rule the test
//! sets (and may change while it runs), counting the calls and the TCP connections they
//! came on (the gateway must keep one long-lived channel), and able to play dead: accept
//! calls and never answer, or answer every call with an error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corridor_proto::envoy::service::ratelimit::v3::rate_limit_response::Code;
use corridor_proto::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use corridor_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// How the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every call is `OK`.
    Allow,
    /// Every call is `OVER_LIMIT`.
    OverLimit,
    /// `n` calls per second for each distinct domain and descriptor list (fixed
    /// one-second windows, as the Envoy reference service counts), then `OVER_LIMIT`.
    PerSecond(u32),
    /// Calls are accepted and never answered (a hung service: the caller's deadline
    /// must end them).
    BlackHole,
    /// Every call fails with gRPC `UNAVAILABLE`.
    Fail,
}

/// One call as the service saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seen {
    /// The request's domain.
    pub domain: String,
    /// Each descriptor's entries as `(key, value)`.
    pub descriptors: Vec<Vec<(String, String)>>,
}

#[derive(Debug)]
struct State {
    rule: Mutex<Rule>,
    connections: AtomicUsize,
    calls: Mutex<Vec<Seen>>,
    /// Per domain and descriptor list: the window's start and the calls in it.
    windows: Mutex<HashMap<Seen, (Instant, u32)>>,
}

/// A running rate limit service on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct RateLimitServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl RateLimitServer {
    /// Starts a service answering by `rule`.
    pub async fn start(rule: Rule) -> anyhow::Result<RateLimitServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            rule: Mutex::new(rule),
            connections: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            windows: Mutex::new(HashMap::new()),
        });
        let counted = state.clone();
        let incoming = TcpListenerStream::new(listener).map(move |conn| {
            counted.connections.fetch_add(1, Ordering::SeqCst);
            conn
        });
        let service = RateLimitServiceServer::new(Service(state.clone()));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(RateLimitServer {
            addr,
            state,
            server,
        })
    }

    /// Answers by `rule` from now on.
    pub fn set_rule(&self, rule: Rule) {
        if let Ok(mut r) = self.state.rule.lock() {
            *r = rule;
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Seen> {
        self.state
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

impl Drop for RateLimitServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug)]
struct Service(Arc<State>);

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        let seen = Seen {
            domain: request.domain,
            descriptors: request
                .descriptors
                .into_iter()
                .map(|d| d.entries.into_iter().map(|e| (e.key, e.value)).collect())
                .collect(),
        };
        if let Ok(mut calls) = self.0.calls.lock() {
            calls.push(seen.clone());
        }
        let rule = self.0.rule.lock().map(|r| *r).unwrap_or(Rule::Fail);
        let code = match rule {
            Rule::Allow => Code::Ok,
            Rule::OverLimit => Code::OverLimit,
            Rule::PerSecond(n) => self.count(seen, n),
            Rule::BlackHole => std::future::pending().await,
            Rule::Fail => return Err(Status::unavailable("told to fail")),
        };
        Ok(Response::new(RateLimitResponse {
            overall_code: code as i32,
            ..Default::default()
        }))
    }
}

impl Service {
    fn count(&self, seen: Seen, per_second: u32) -> Code {
        let Ok(mut windows) = self.0.windows.lock() else {
            return Code::Unknown;
        };
        let now = Instant::now();
        let (start, used) = windows.entry(seen).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *used = 0;
        }
        *used += 1;
        if *used <= per_second {
            Code::Ok
        } else {
            Code::OverLimit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
    use corridor_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use corridor_proto::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
    use tonic::transport::Channel;

    fn request(value: &str) -> RateLimitRequest {
        RateLimitRequest {
            domain: "mesh".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "path".into(),
                    value: value.into(),
                }],
                ..Default::default()
            }],
            hits_addend: 1,
        }
    }

    async fn ask(client: &mut RateLimitServiceClient<Channel>, value: &str) -> Result<i32, Status> {
        client
            .should_rate_limit(request(value))
            .await
            .map(|r| r.into_inner().overall_code)
    }

    #[tokio::test]
    async fn answers_by_its_rule_and_counts_calls_and_connections() {
        let rls = RateLimitServer::start(Rule::PerSecond(2)).await.unwrap();
        let channel = Channel::from_shared(format!("http://{}", rls.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = RateLimitServiceClient::new(channel);
        let ok = Code::Ok as i32;
        let over = Code::OverLimit as i32;
        assert_eq!(ask(&mut client, "/a").await.unwrap(), ok);
        assert_eq!(ask(&mut client, "/a").await.unwrap(), ok);
        assert_eq!(ask(&mut client, "/a").await.unwrap(), over);
        assert_eq!(ask(&mut client, "/b").await.unwrap(), ok, "its own window");
        rls.set_rule(Rule::Fail);
        assert_eq!(
            ask(&mut client, "/a").await.unwrap_err().code(),
            tonic::Code::Unavailable
        );
        rls.set_rule(Rule::BlackHole);
        let hung = tokio::time::timeout(Duration::from_millis(200), ask(&mut client, "/a")).await;
        assert!(hung.is_err(), "a black hole never answers");
        assert_eq!(rls.connections(), 1, "one channel, one connection");
        let calls = rls.calls();
        assert_eq!(calls.len(), 6);
        assert_eq!(calls[0].domain, "mesh");
        assert_eq!(
            calls[3].descriptors,
            [[("path".to_string(), "/b".to_string())]]
        );
    }
}
