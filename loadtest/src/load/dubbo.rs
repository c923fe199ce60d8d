//! Dubbo2 load: calls of one method with string arguments, many in flight per
//! connection (matched by request id).

use std::{net::SocketAddr, sync::Arc};

use corridor_gateway::codec::dubbo::{DubboCodec, peer};

use super::{
    Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target, argument, mux::Mux,
};

/// The Dubbo protocol version the client announces: what current Dubbo consumers send,
/// so providers answer with the value-with-attachments body.
pub const DUBBO_VERSION: &str = "2.0.2";

/// Flags of `corridor-load dubbo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DubboArgs {
    /// Provider or gateway address, host:port.
    #[arg(long)]
    pub target: String,
    /// Interface (service path) called.
    #[arg(long)]
    pub interface: String,
    /// Method called.
    #[arg(long)]
    pub method: String,
    /// The one string argument [default: hello].
    #[arg(long, conflicts_with = "payload_size")]
    pub arg: Option<String>,
    /// Send a string argument of this many bytes instead.
    #[arg(long)]
    pub payload_size: Option<usize>,
    /// An attachment, key=value (repeatable): group, version, anything routed on.
    #[arg(long = "attachment", value_parser = parse_pair)]
    pub attachments: Vec<(String, String)>,
    /// Calls in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Parses `key=value`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Calls of one method with one string argument.
#[derive(Debug)]
pub struct DubboTarget {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    interface: String,
    method: String,
    arg: String,
    attachments: Vec<(String, String)>,
    codec: Arc<DubboCodec>,
}

impl DubboTarget {
    /// Connections come from `source` (see `--source`).
    pub fn from_source(self, source: Option<std::net::IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// A target calling `interface.method(arg)` at `addr` with `attachments`.
    pub fn new(
        addr: SocketAddr,
        interface: String,
        method: String,
        arg: String,
        attachments: Vec<(String, String)>,
    ) -> Self {
        Self {
            addr,
            source: None,
            interface,
            method,
            arg,
            attachments,
            codec: Arc::new(DubboCodec::default()),
        }
    }

    /// Calls with `arg` instead of the target's own and returns the whole answer.
    pub async fn call_with(&self, conn: &DubboConn, arg: &str) -> Result<peer::Answer, CallError> {
        let call = peer::Call {
            dubbo_version: DUBBO_VERSION,
            path: &self.interface,
            version: "",
            method: &self.method,
            args: &[arg],
            attachments: &self.attachments,
        };
        let frame = conn
            .0
            .call(|id| Ok(peer::request(id, true, &call)?))
            .await?;
        Ok(peer::read_answer(&frame)?)
    }
}

/// A Dubbo connection.
pub struct DubboConn(Mux);

impl Target for DubboTarget {
    const PROTOCOL: &'static str = "dubbo";
    type Conn = DubboConn;

    async fn connect(&self) -> Result<DubboConn, CallError> {
        Ok(DubboConn(
            Mux::connect(self.addr, self.source, self.codec.clone(), u64::MAX).await?,
        ))
    }

    async fn call(&self, conn: &DubboConn) -> Result<Answer, CallError> {
        let answer = self.call_with(conn, &self.arg).await?;
        Ok(Answer {
            status: Status::Code(u16::from(answer.status)),
            failed: !answer.is_ok(),
        })
    }
}

/// Runs `corridor-load dubbo`.
pub async fn run(args: &DubboArgs) -> Result<RunResult, LoadError> {
    let addr = super::resolve(&args.target).await?;
    let target = DubboTarget::new(
        addr,
        args.interface.clone(),
        args.method.clone(),
        argument(args.arg.as_deref(), args.payload_size),
        args.attachments.clone(),
    )
    .from_source(args.load.source);
    Ok(super::run(Arc::new(target), &args.load, args.concurrency).await)
}

#[cfg(test)]
mod tests;
