//! Echo backends for the MetaProtocol tests and benchmarks: a Dubbo2 provider and a
//! Thrift server that answer every call with its first string argument.
//!
//! Each call is answered from its own task after the configured delay (plus jitter), so
//! answers on one connection leave in the order their delays end, not the order the
//! calls came: the gateway must match them by id. A share of the calls can be answered
//! with the protocol's error instead. Bytes are read and written with the gateway's own
//! codecs ([`corridor_gateway::codec`]), so the backend and the proxy read the protocol
//! the same way, and the real client libraries in the end-to-end tests check both.

mod dubbo;
mod thrift;

use std::{io::Write, net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use corridor_gateway::codec::{Codec, CodecError, Frame, dubbo::DubboCodec, thrift::ThriftCodec};
use rand::Rng;
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::{mpsc, watch},
    task::{JoinHandle, JoinSet},
};
use tracing::{Instrument, debug, info_span};

/// Where the backend listens unless told: loopback, any free port (read it back from
/// [`Echo::addr`]).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The message of errors answered because of the error rate.
pub const INJECTED: &str = "injected error";

/// Bytes read from a socket at a time: most calls fit in one read.
const READ_CHUNK: usize = 16 * 1024;

/// Which protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Dubbo2 with Hessian2 bodies.
    Dubbo,
    /// Thrift, any transport and protocol the gateway's codec reads.
    Thrift,
}

impl Protocol {
    /// The protocol's name, as on the command line and in the bound line.
    pub fn name(self) -> &'static str {
        match self {
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
    /// Prefixes every answer (`"{name}: {arg}"`), so a test can tell backends apart.
    pub name: Option<String>,
    /// Delay before every answer.
    pub delay: Duration,
    /// Upper bound of a uniformly random extra delay per call.
    pub jitter: Duration,
    /// Share of calls (0.0 to 1.0) answered with the protocol's error.
    pub error_rate: f64,
    /// Print one line per received call on stdout.
    pub log_calls: bool,
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
    let task = tokio::spawn(accept_loop(listener, Arc::new(config), stopped));
    Ok(Echo { addr, stop, task })
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<EchoConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    // Dropping the set when the loop ends aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let span = info_span!("echo", protocol = config.protocol.name(), %peer);
                    connections.spawn(connection(stream, config.clone()).instrument(span));
                }
                // Out of file descriptors and the like: keep serving the others.
                Err(e) => debug!(error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What the backend does with one message it read.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    /// The `--log-calls` line, for calls.
    pub(crate) log: Option<String>,
    /// The answer, if the message gets one.
    pub(crate) answer: Option<Bytes>,
    /// Whether the answer waits for the call delay (calls do, heartbeats do not).
    pub(crate) delayed: bool,
}

/// A protocol's way of reading a message and writing its answer. `fail` says whether
/// this call is answered with the protocol's error.
fn read(config: &EchoConfig, frame: &Frame, fail: bool) -> Result<Incoming, CodecError> {
    let name = config.name.as_deref();
    match config.protocol {
        Protocol::Dubbo => dubbo::read(frame, name, fail),
        Protocol::Thrift => thrift::read(frame, name, fail),
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

async fn connection(stream: TcpStream, config: Arc<EchoConfig>) {
    let _ = stream.set_nodelay(true);
    let codec: Box<dyn Codec> = match config.protocol {
        Protocol::Dubbo => Box::new(DubboCodec::default()),
        Protocol::Thrift => Box::new(ThriftCodec::default()),
    };
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut writer = AbortOnDrop(tokio::spawn(write_loop(wr, rx)));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Err(e) = handle(&config, &frame, &tx) {
                        debug!(error = %e, "unreadable call, closing");
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "bad input, closing");
                    return;
                }
            }
        }
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            // The peer stopped reading answers (or the socket broke): nothing more to do.
            _ = &mut writer.0 => return,
        }
    }
    // The caller is done sending: the answers still waiting for their delay go out,
    // then the writer ends with the last sender.
    drop(tx);
    let _ = (&mut writer.0).await;
}

/// Aborts the writer when its connection ends (bad input, shutdown), which closes the
/// socket even while answers are still waiting for their delay.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn handle(
    config: &EchoConfig,
    frame: &Frame,
    tx: &mpsc::UnboundedSender<Bytes>,
) -> Result<(), CodecError> {
    let fail = config.error_rate > 0.0 && rand::rng().random::<f64>() < config.error_rate;
    let incoming = read(config, frame, fail)?;
    if let (true, Some(line)) = (config.log_calls, &incoming.log) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    let Some(answer) = incoming.answer else {
        return Ok(());
    };
    if !incoming.delayed {
        let _ = tx.send(answer);
        return Ok(());
    }
    let mut wait = config.delay;
    if !config.jitter.is_zero() {
        wait += config.jitter.mul_f64(rand::rng().random::<f64>());
    }
    let tx = tx.clone();
    tokio::spawn(async move {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let _ = tx.send(answer);
    });
    Ok(())
}

/// Writes answers as they come, several per write when they queue up.
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests;
