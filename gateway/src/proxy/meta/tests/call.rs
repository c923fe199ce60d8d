//! The call path: retries on connect failures, resets and per-try timeouts, the policy's
//! limits, mirrors — against real upstream sockets speaking the toy codec.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{PATIENCE, REQUEST, RESPONSE, Toy, frame, request};
use crate::codec::{Codec, Edit, Metadata};
use crate::model::route::{RetryPolicy, retry_on};
use crate::policy::reject::{Reject, RejectKind};
use crate::proxy::meta::call::{
    Backend, CallOutcome, CallRecord, Decision, Lease, Unreachable, call,
};
use crate::proxy::meta::upstream::Multiplexed;

/// Cluster `main` is `endpoints` (tried in order, skipping those already tried); cluster
/// `mirror` is `mirror`.
struct Fake {
    endpoints: Vec<SocketAddr>,
    mirror: Option<SocketAddr>,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    connects: AtomicUsize,
}

impl Fake {
    fn new(endpoints: Vec<SocketAddr>, retry: Option<RetryPolicy>) -> Fake {
        Fake {
            endpoints,
            mirror: None,
            retry,
            timeout: Some(PATIENCE),
            connects: AtomicUsize::new(0),
        }
    }
}

impl Backend for Fake {
    fn route(&self, _: &Metadata) -> Result<Decision, Reject> {
        Ok(Decision {
            route: Arc::from("r"),
            cluster: Arc::from("main"),
            request_edit: Edit::default(),
            response_edit: Edit::default(),
            timeout: self.timeout,
            retry: self.retry.clone(),
            mirrors: self.mirror.iter().map(|_| Arc::from("mirror")).collect(),
            policy: Default::default(),
        })
    }

    async fn connection(
        &self,
        cluster: &str,
        avoid: &[SocketAddr],
        _key: Option<u64>,
    ) -> Result<Lease, Unreachable> {
        let addr = match cluster {
            "mirror" => self.mirror.unwrap(),
            _ => *self
                .endpoints
                .iter()
                .find(|a| !avoid.contains(a))
                .unwrap_or(&self.endpoints[0]),
        };
        self.connects.fetch_add(1, Ordering::Relaxed);
        Multiplexed::connect(addr, Arc::new(Toy), Duration::from_secs(2))
            .await
            .map(Lease::from)
            .map_err(|e| Unreachable::Connect(addr, e.to_string()))
    }
}

fn policy(on: u16, retries: u32, per_try: Option<Duration>) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        on,
        num_retries: retries,
        per_try_timeout: per_try,
        retriable_status_codes: Vec::new(),
    })
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// An upstream that reads each request and then does what `answer` says: `Some(payload)`
/// answers, `None` closes the connection without answering. Every request's payload is
/// also sent to the returned channel.
async fn upstream(
    answer: fn(&str) -> Option<String>,
) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                loop {
                    while let Ok(Some(f)) = Toy.decode(&mut buf) {
                        let payload = f.metadata.get("payload").unwrap_or_default().to_string();
                        let _ = seen.send(payload.clone());
                        match answer(&payload) {
                            Some(a) => {
                                let _ = s
                                    .write_all(&frame(
                                        f.metadata.request_id,
                                        RESPONSE,
                                        a.as_bytes(),
                                    ))
                                    .await;
                            }
                            None => return,
                        }
                    }
                    if !matches!(s.read_buf(&mut buf).await, Ok(n) if n > 0) {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn run(backend: Fake, payload: &str) -> (String, CallRecord) {
    let backend = Arc::new(backend);
    let mut record = CallRecord::new(0);
    let bytes = tokio::time::timeout(
        PATIENCE,
        call(
            &Toy,
            &backend,
            &super::source(),
            &request(5, REQUEST, payload),
            &mut record,
        ),
    )
    .await
    .expect("the call ended")
    .expect("an answer");
    let mut buf = BytesMut::from(&bytes[..]);
    let f = Toy.decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.metadata.request_id, 5, "answered under the caller's id");
    (
        f.metadata.get("payload").unwrap_or_default().to_string(),
        record,
    )
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_endpoint() {
    let (good, _) = upstream(|p| Some(format!("ok:{p}"))).await;
    let dead = closed_port().await;
    let (answer, record) = run(
        Fake::new(vec![dead, good], policy(retry_on::CONNECT_FAILURE, 2, None)),
        "a",
    )
    .await;
    assert_eq!(answer, "ok:a");
    assert_eq!(
        (record.retries, record.upstream, record.outcome),
        (1, Some(good), CallOutcome::Answered(200))
    );
}

#[tokio::test]
async fn without_a_policy_a_connect_failure_is_answered_locally() {
    let (good, _) = upstream(|p| Some(format!("ok:{p}"))).await;
    let dead = closed_port().await;
    let (answer, record) = run(Fake::new(vec![dead, good], None), "a").await;
    assert!(answer.contains("connect"), "{answer}");
    assert_eq!(
        (record.retries, record.outcome),
        (0, CallOutcome::Local(RejectKind::ConnectFailure))
    );
}

#[tokio::test]
async fn a_reset_mid_call_is_retried_only_when_the_policy_says_reset() {
    let (dying, _) = upstream(|_| None).await;
    let (good, _) = upstream(|p| Some(format!("ok:{p}"))).await;
    let (answer, record) = run(
        Fake::new(vec![dying, good], policy(retry_on::RESET, 1, None)),
        "b",
    )
    .await;
    assert_eq!((answer.as_str(), record.retries), ("ok:b", 1));

    let (answer, record) = run(
        Fake::new(
            vec![dying, good],
            policy(retry_on::CONNECT_FAILURE, 1, None),
        ),
        "b",
    )
    .await;
    assert!(answer.contains("went away"), "{answer}");
    assert_eq!(
        record.outcome,
        CallOutcome::Local(RejectKind::UpstreamReset)
    );
}

#[tokio::test]
async fn retries_stop_at_the_policys_count() {
    let (dying, mut seen) = upstream(|_| None).await;
    let backend = Fake::new(vec![dying], policy(retry_on::RESET, 2, None));
    let (_, record) = run(backend, "c").await;
    assert_eq!(record.retries, 2);
    let mut tries = 0;
    while seen.try_recv().is_ok() {
        tries += 1;
    }
    assert_eq!(tries, 3, "one try and two retries");
}

#[tokio::test]
async fn a_per_try_timeout_moves_on_to_the_next_endpoint() {
    let hung = upstream_that_never_answers().await;
    let (good, _) = upstream(|p| Some(format!("ok:{p}"))).await;
    let backend = Fake::new(
        vec![hung, good],
        policy(retry_on::FIVE_XX, 1, Some(Duration::from_millis(100))),
    );
    let (answer, record) = run(backend, "d").await;
    assert_eq!(
        (answer.as_str(), record.retries, record.upstream),
        ("ok:d", 1, Some(good))
    );
}

/// An upstream that reads and never answers.
async fn upstream_that_never_answers() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test]
async fn mirrors_get_a_copy_and_their_failures_never_reach_the_caller() {
    let (good, _) = upstream(|p| Some(format!("ok:{p}"))).await;
    let (mirror, mut seen) = upstream(|_| None).await;
    let mut backend = Fake::new(vec![good], None);
    backend.mirror = Some(mirror);
    let (answer, record) = run(backend, "m").await;
    assert_eq!(
        (answer.as_str(), record.outcome),
        ("ok:m", CallOutcome::Answered(200))
    );
    let copy = tokio::time::timeout(PATIENCE, seen.recv()).await.unwrap();
    assert_eq!(copy.as_deref(), Some("m"));
}
