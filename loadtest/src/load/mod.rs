//! The load driver every protocol shares: open loop at a fixed rate or closed loop as
//! fast as the connections go, over `--connections` connections with `--concurrency`
//! calls in flight on each.
//!
//! Open loop: call `i` is due at `start + i / rate` and is timed from then, so a server
//! that stalls is charged for the queue it causes (no coordinated omission). The calls
//! are dealt to lanes (one per call in flight: connections × concurrency): lane `l` takes
//! calls `l, l + L, l + 2L, ...`, and lane `l` uses connection `l mod connections`.
//! Closed loop: each lane sends its next call when the last one is answered.

pub mod dubbo;
pub mod http;
pub mod html;
mod mux;
pub mod report;
pub mod thrift;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{sync::Mutex, time::Instant};

pub use self::report::{Answer, Outcome, RunResult, Status};

/// Time between setting up the lanes and the first call, so every lane starts on time.
const START_DELAY: Duration = Duration::from_millis(20);
/// How long calls still in flight at the end of the run may take before they count as
/// errors (a call the server never answers must not hold the run forever).
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Pause of a closed-loop lane after a failed call, so a dead target is not hammered in
/// a busy loop (open-loop lanes keep their schedule).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The string argument Dubbo and Thrift calls carry unless told otherwise.
pub const DEFAULT_ARG: &str = "hello";

/// The argument a Dubbo or Thrift load sends: `arg`, else `payload_size` bytes, else
/// [`DEFAULT_ARG`].
pub fn argument(arg: Option<&str>, payload_size: Option<usize>) -> String {
    match (arg, payload_size) {
        (Some(arg), _) => arg.to_owned(),
        (None, Some(n)) => "x".repeat(n),
        (None, None) => DEFAULT_ARG.to_owned(),
    }
}

/// Flags every load command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Calls per second across all connections; 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// How long to send for.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when any call failed.
    #[arg(long)]
    pub fail_on_error: bool,
}

/// Why a call failed without an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The target refused or could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The target.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection ended with the call in flight.
    #[error("connection closed before the answer")]
    Closed,
    /// The answer (or the call) could not be encoded or read.
    #[error(transparent)]
    Codec(#[from] corridor_gateway::codec::CodecError),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target's host does not resolve.
    #[error("cannot resolve {target}: {reason} (is it host:port?)")]
    Resolve {
        /// The target as given.
        target: String,
        /// Why.
        reason: String,
    },
    /// The request could not be built from the flags.
    #[error("bad request: {0}")]
    Request(String),
}

/// Resolves `host:port` to its first address.
pub async fn resolve(target: &str) -> Result<SocketAddr, LoadError> {
    let fail = |reason: String| LoadError::Resolve {
        target: target.to_owned(),
        reason,
    };
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))
}

/// What the driver calls: a protocol client with its call fixed by the flags.
pub trait Target: Send + Sync + 'static {
    /// The protocol's name in the report (`http`, `dubbo`, `thrift`).
    const PROTOCOL: &'static str;
    /// One connection, shared by the calls in flight on it.
    type Conn: Send + Sync + 'static;
    /// Opens a connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, CallError>> + Send;
    /// Makes one call on `conn` and reads its answer.
    fn call(&self, conn: &Self::Conn) -> impl Future<Output = Result<Answer, CallError>> + Send;
}

/// Runs the load of `args` against `target` with `concurrency` calls in flight per
/// connection, and gathers every lane's outcome.
pub async fn run<T: Target>(target: Arc<T>, args: &LoadArgs, concurrency: usize) -> RunResult {
    let n = args.connections.max(1);
    let lanes = n * concurrency.max(1);
    let start = Instant::now() + START_DELAY;
    let deadline = start + args.duration;
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(lanes as f64 / args.rate as f64));
    let slots: Vec<Arc<Slot<T::Conn>>> = (0..n).map(|_| Arc::new(Slot::default())).collect();
    let mut tasks = Vec::with_capacity(lanes);
    for l in 0..lanes {
        let first = interval.map(|_| start + Duration::from_secs_f64(l as f64 / args.rate as f64));
        let lane = Lane {
            target: target.clone(),
            slot: slots[l % n].clone(),
            first,
            interval,
            deadline,
        };
        tasks.push(tokio::spawn(lane.drive()));
    }
    let mut result = RunResult::new(T::PROTOCOL, args.rate, n, concurrency.max(1));
    for t in tasks {
        match t.await {
            Ok(outcome) => result.merge(outcome),
            // A lane that panicked lost its counts; say so rather than under-report.
            Err(e) => result.merge(Outcome::lost(&e.to_string())),
        }
    }
    result.elapsed = start.elapsed();
    result
}

/// A connection shared by the lanes of one slot, opened on first use and again after
/// a failure.
struct Slot<C> {
    conn: Mutex<Option<Arc<C>>>,
}

impl<C> Default for Slot<C> {
    fn default() -> Self {
        Self {
            conn: Mutex::new(None),
        }
    }
}

impl<C> Slot<C> {
    async fn get<T: Target<Conn = C>>(&self, target: &T) -> Result<Arc<C>, CallError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(target.connect().await?);
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Drops `failed` unless another lane replaced it already.
    async fn discard(&self, failed: &Arc<C>) {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *conn = None;
        }
    }
}

struct Lane<T: Target> {
    target: Arc<T>,
    slot: Arc<Slot<T::Conn>>,
    first: Option<Instant>,
    interval: Option<Duration>,
    deadline: Instant,
}

impl<T: Target> Lane<T> {
    async fn drive(self) -> Outcome {
        let mut out = Outcome::new();
        let give_up = self.deadline + DRAIN_GRACE;
        let mut due = self.first;
        loop {
            let now = Instant::now();
            if let Some(d) = due {
                if d >= self.deadline {
                    break;
                }
                if d > now {
                    tokio::time::sleep_until(d).await;
                }
            } else if now >= self.deadline {
                break;
            }
            let intended = due.unwrap_or_else(Instant::now);
            match tokio::time::timeout_at(give_up, self.one()).await {
                Ok(Ok(answer)) => out.record(&answer, intended.elapsed()),
                Ok(Err(e)) => {
                    out.fail(&e);
                    if due.is_none() {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
                Err(_) => {
                    out.fail(&"no answer by the end of the run");
                    break;
                }
            }
            due = match (due, self.interval) {
                (Some(d), Some(i)) => Some(d + i),
                _ => None,
            };
        }
        out
    }

    async fn one(&self) -> Result<Answer, CallError> {
        let conn = self.slot.get(&*self.target).await?;
        let answer = self.target.call(&conn).await;
        if answer.is_err() {
            self.slot.discard(&conn).await;
        }
        answer
    }
}
