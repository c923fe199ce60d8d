//! Echo backends for the tests and benchmarks: an HTTP server (HTTP/1.1 and h2c), a
//! gRPC server, a Dubbo2 provider and a Thrift server, each answering every call with
//! what it carried (the HTTP body, the gRPC message, the first string argument).
//!
//! Every backend can be told to misbehave ([`faults`]): a fixed delay plus jitter, one
//! stall of the whole server after some calls, and a share of calls answered with the
//! protocol's error. Dubbo and Thrift calls are answered from their own tasks once their
//! wait is over, so answers on one connection leave in the order their waits end, not
//! the order the calls came: the gateway must match them by id. Dubbo and Thrift bytes
//! are read and written with the gateway's own codecs ([`corridor_gateway::codec`]), so
//! the backend and the proxy read the protocol the same way, and the real client
//! libraries in the end-to-end tests check both.

mod clock;
mod dubbo;
mod faults;
mod grpc;
mod http;
mod meta;
mod thrift;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tracing::{Instrument, debug, info_span};

use self::{faults::Faults, meta::Meta};
pub use self::{faults::Stall, http::BACKEND_HEADER};

/// Where the backend listens unless told: loopback, any free port (read it back from
/// [`Echo::addr`]).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The message of errors answered because of the error rate.
pub const INJECTED: &str = "injected error";

/// Which protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 over cleartext (prior knowledge), on one port.
    Http,
    /// gRPC over h2c: any unary method.
    Grpc,
    /// Dubbo2 with Hessian2 bodies.
    Dubbo,
    /// Thrift, any transport and protocol the gateway's codec reads.
    Thrift,
}

impl Protocol {
    /// The protocol's name, as on the command line and in the bound line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Grpc => "grpc",
            Self::Dubbo => "dubbo",
            Self::Thrift => "thrift",
        }
    }
}

/// How an echo backend behaves.
#[derive(Debug, Clone, Serialize)]
pub struct EchoConfig {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Names the backend, so a test can tell backends apart: Dubbo and Thrift answers
    /// are `"{name}: {arg}"`, HTTP answers carry it in `x-backend`.
    pub name: Option<String>,
    /// Delay before every answer.
    pub delay: Duration,
    /// Upper bound of a uniformly random extra delay per call.
    pub jitter: Duration,
    /// One stall of the whole backend after some calls.
    pub stall: Option<Stall>,
    /// Share of calls (0.0 to 1.0) answered with the protocol's error.
    pub error_rate: f64,
    /// Print one line per received call on stdout.
    pub log_calls: bool,
}

impl EchoConfig {
    /// A well-behaved backend for `protocol` on [`DEFAULT_LISTEN`]: no name, no delay,
    /// no stall, no errors, no call log.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            stall: None,
            error_rate: 0.0,
            log_calls: false,
        }
    }
}

/// What every connection of a backend shares.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) config: EchoConfig,
    pub(crate) faults: Faults,
}

impl Backend {
    /// Prints a `--log-calls` line, when asked to, flushed so a test reads it at once.
    pub(crate) fn log_call(&self, line: impl FnOnce() -> String) {
        if self.config.log_calls {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line());
            let _ = out.flush();
        }
    }
}

/// Why a backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The error rate is not a share.
    #[error("error rate {0} is outside 0.0 to 1.0")]
    ErrorRate(f64),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source} (is the port taken?)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running echo backend.
#[derive(Debug)]
pub struct Echo {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Echo {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection; calls still waiting for their delay
    /// are dropped unanswered.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds and starts serving in the background.
pub async fn start(config: EchoConfig) -> Result<Echo, ServeError> {
    if !(0.0..=1.0).contains(&config.error_rate) {
        return Err(ServeError::ErrorRate(config.error_rate));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let backend = Arc::new(Backend {
        faults: Faults::new(&config),
        config,
    });
    let task = tokio::spawn(accept_loop(listener, backend, stopped));
    Ok(Echo { addr, stop, task })
}

async fn accept_loop(
    listener: TcpListener,
    backend: Arc<Backend>,
    mut stopped: watch::Receiver<bool>,
) {
    // Dropping the set when the loop ends aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let span = info_span!("echo", protocol = backend.config.protocol.name(), %peer);
                    connections.spawn(connection(stream, backend.clone()).instrument(span));
                }
                // Out of file descriptors and the like: keep serving the others.
                Err(e) => debug!(error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The string every call is answered with.
pub(crate) fn echo_value(name: Option<&str>, arg: &str) -> String {
    match name {
        Some(name) => format!("{name}: {arg}"),
        None => arg.to_owned(),
    }
}

/// Renders key/values sorted by key as `k1=v1,k2=v2` (log lines).
pub(crate) fn sorted_pairs(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let rendered: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    rendered.join(",")
}

async fn connection(stream: TcpStream, backend: Arc<Backend>) {
    match backend.config.protocol {
        Protocol::Http => http::connection(stream, backend).await,
        Protocol::Grpc => grpc::connection(stream, backend).await,
        Protocol::Dubbo => meta::connection(stream, backend, Meta::Dubbo).await,
        Protocol::Thrift => meta::connection(stream, backend, Meta::Thrift).await,
    }
}

#[cfg(test)]
mod tests;
