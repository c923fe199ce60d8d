//! The load driver every protocol shares: open loop at a fixed rate or closed loop as
//! fast as the connections go, over `--connections` connections with `--concurrency`
//! calls in flight on each; the report of a run, a comparison or a capacity search.
//!
//! Open loop: call `i` is due at `start + i / rate`; a [pacer](pacer) thread hands it
//! to a free lane when due, and its latency is timed from then, so a server that stalls
//! is charged for the queue it causes (no coordinated omission). Closed loop: each lane
//! sends its next call when the last one ended. See [`driver`].

pub mod capacity;
pub mod compare;
pub mod dns;
mod driver;
pub mod dubbo;
pub mod grpc;
pub mod html;
pub mod http;
mod mux;
mod pacer;
pub mod plan;
mod progress;
pub mod redis;
pub mod report;
pub mod summary;
mod tally;
pub mod thrift;
pub mod timeseries;

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use tokio::net::{TcpSocket, TcpStream};

pub use self::{
    plan::{Plan, Report},
    progress::ProgressMode,
    report::{Answer, ErrorKind, RunResult, Status},
};

/// Default of `--connections`.
pub const DEFAULT_CONNECTIONS: usize = 50;
/// Default of `--duration`: long enough for a steady state and a tail worth reading.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default of `--timeout`: far beyond any healthy answer, short enough that a lost call
/// does not hold the run's end for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `--rounds`: enough alternations that a drift of the machine shows up on
/// both sides of a comparison.
pub const DEFAULT_ROUNDS: usize = 3;

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
    /// Calls per second across all connections; 0 = closed loop, as fast as answers come.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = DEFAULT_CONNECTIONS)]
    pub connections: usize,
    /// How long to measure for (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How long to send before measuring: calls sent but not counted.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// A call unanswered this long after it was due (open loop) or sent (closed loop)
    /// is a timeout error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as a self-contained HTML page to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Exit non-zero when any call failed.
    #[arg(long)]
    pub fail_on_error: bool,
    /// Show a live progress line on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Run the same load against this address (host:port) too, straight at the
    /// backend, in alternating rounds with the target, and report both and the ratios.
    #[arg(long, value_name = "DIRECT_ADDR")]
    pub compare: Option<String>,
    /// Open every connection from this local IP address instead of the one the system
    /// picks: on a test host with pod IPs on loopback (127.x.y.z), the gateway sees the
    /// calls come from that pod (authorization by source, source workload metrics).
    #[arg(long, value_name = "IP")]
    pub source: Option<IpAddr>,
    /// Rounds per side of --compare.
    #[arg(long, default_value_t = DEFAULT_ROUNDS, requires = "compare", value_parser = parse_positive)]
    pub rounds: usize,
    /// What the progress line starts with (a comparison's side and round, a capacity
    /// step); set by the driver, not a flag.
    #[arg(skip)]
    pub label: Option<String>,
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Default for LoadArgs {
    /// The flags' defaults.
    fn default() -> Self {
        Self {
            rate: 0,
            connections: DEFAULT_CONNECTIONS,
            duration: DEFAULT_DURATION,
            warmup: Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            threads: 1,
            json: false,
            html: None,
            fail_on_error: false,
            progress: ProgressMode::Auto,
            compare: None,
            source: None,
            rounds: DEFAULT_ROUNDS,
            label: None,
        }
    }
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

impl CallError {
    /// How the report counts it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Connect,
            Self::Io(_) | Self::Closed | Self::Codec(_) | Self::Http(_) => ErrorKind::Protocol,
        }
    }
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

/// Opens a TCP connection to `addr` (no Nagle delay), from `source` when one is given.
pub(crate) async fn dial(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, CallError> {
    let connect = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    };
    let stream = connect
        .await
        .map_err(|source| CallError::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    Ok(stream)
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
/// connection. The result's `settings.target` is left empty: [`plan::run_once`] names it.
pub async fn run<T: Target>(target: Arc<T>, args: &LoadArgs, concurrency: usize) -> RunResult {
    driver::run(target, args, concurrency).await
}

#[cfg(test)]
mod tests;
