//! A steady-load driver: N concurrent keep-alive clients sending requests back to back until
//! stopped, recording the outcome of every request with its timing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;

use crate::client::HttpClient;

/// Pause after a transport error so a dead address does not turn into a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which client sent it.
    pub client: usize,
    /// The request target sent: the load's path plus a unique `n=<client>.<seq>` query
    /// parameter, so a backend can tell which requests reached it.
    pub target: String,
    /// When it was sent.
    pub start: Instant,
    /// When its response (or error) arrived.
    pub end: Instant,
    /// Status and `x-backend` of the response, or the transport error.
    pub result: Result<(u16, String), String>,
}

impl Outcome {
    /// A 2xx response.
    pub fn ok(&self) -> bool {
        matches!(&self.result, Ok((status, _)) if (200..300).contains(status))
    }

    /// The backend that served it, if any.
    pub fn backend(&self) -> Option<&str> {
        match &self.result {
            Ok((_, backend)) if !backend.is_empty() => Some(backend),
            _ => None,
        }
    }
}

/// A running steady load.
pub struct Load {
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<Outcome>>>,
    /// When the load started.
    pub started: Instant,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("completed", &self.completed())
            .finish()
    }
}

impl Load {
    /// Starts `clients` HTTP/1.1 keep-alive clients sending `GET path` to `addr`.
    pub fn start(addr: SocketAddr, path: &str, clients: usize) -> Load {
        Self::start_with(addr, path, clients, HttpClient::http1)
    }

    /// Like [`Load::start`] with clients made by `make_client` (e.g. [`HttpClient::h2c`]).
    pub fn start_with(
        addr: SocketAddr,
        path: &str,
        clients: usize,
        make_client: fn() -> HttpClient,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|client| {
                let (stop, completed) = (stop.clone(), completed.clone());
                let path = path.to_string();
                let http = make_client();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let separator = if path.contains('?') { '&' } else { '?' };
                    let mut seq = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        seq += 1;
                        let target = format!("{path}{separator}n={client}.{seq}");
                        let start = Instant::now();
                        let result = match http.get(addr, &target).await {
                            Ok(reply) => Ok((reply.status.as_u16(), reply.backend().to_string())),
                            Err(err) => Err(format!("{err:#}")),
                        };
                        let failed = result.is_err();
                        outcomes.push(Outcome {
                            client,
                            target,
                            start,
                            end: Instant::now(),
                            result,
                        });
                        completed.fetch_add(1, Ordering::SeqCst);
                        if failed {
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        Load {
            stop,
            completed,
            tasks,
            started: Instant::now(),
        }
    }

    /// Runs `clients` HTTP/1.1 keep-alive clients against `addr` for `duration`, then stops.
    pub async fn run_for(
        addr: SocketAddr,
        path: &str,
        clients: usize,
        duration: Duration,
    ) -> LoadReport {
        let load = Load::start(addr, path, clients);
        tokio::time::sleep(duration).await;
        load.stop().await
    }

    /// Requests completed so far (successful or not).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `patience`) until `more` further requests have completed.
    pub async fn wait_for_more(&self, more: u64, patience: Duration) -> anyhow::Result<()> {
        let target = self.completed() + more;
        let deadline = Instant::now() + patience;
        while self.completed() < target {
            if Instant::now() >= deadline {
                bail!(
                    "load completed {} of {target} requests within {patience:?}",
                    self.completed()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Stops every client after its current request and returns all outcomes.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for task in self.tasks {
            if let Ok(mut done) = task.await {
                outcomes.append(&mut done);
            }
        }
        outcomes.sort_by_key(|o| o.start);
        LoadReport { outcomes }
    }
}

/// Everything a [`Load`] saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Every request, in order of sending.
    pub outcomes: Vec<Outcome>,
}

impl LoadReport {
    /// Requests that got a 2xx.
    pub fn successes(&self) -> usize {
        self.outcomes.iter().filter(|o| o.ok()).count()
    }

    /// Requests that did not get a 2xx.
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.ok()).collect()
    }

    /// Successful responses per backend.
    pub fn by_backend(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for outcome in self.outcomes.iter().filter(|o| o.ok()) {
            *counts
                .entry(outcome.backend().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        counts
    }

    /// Panics listing (up to 20) failures, if there are any.
    pub fn assert_no_failures(&self, during: &str) {
        let failures = self.failures();
        if failures.is_empty() {
            return;
        }
        let t0 = self
            .outcomes
            .first()
            .map(|o| o.start)
            .unwrap_or_else(Instant::now);
        let listed: Vec<String> = failures
            .iter()
            .take(20)
            .map(|o| {
                format!(
                    "  client {} at +{:?} (took {:?}): {:?}",
                    o.client,
                    o.start.duration_since(t0),
                    o.end.duration_since(o.start),
                    o.result
                )
            })
            .collect();
        panic!(
            "{} of {} requests failed {during}:\n{}",
            failures.len(),
            self.outcomes.len(),
            listed.join("\n")
        );
    }
}
