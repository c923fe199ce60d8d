//! Thrift load: calls of one method whose args struct holds one string (field 1), in the
//! transport and protocol asked for, one in flight per connection as plain Thrift
//! clients do.

use std::{net::SocketAddr, sync::Arc};

use corridor_gateway::codec::{
    ResponseStatus,
    thrift::{
        Protocol, ThriftCodec, Transport,
        peer::{self, ClientDialect},
    },
};

use super::{
    Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target, argument, mux::Mux,
};

/// How calls are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// A 4-byte length before each message (TFramedTransport).
    Framed,
    /// Messages back to back (TBufferedTransport).
    Unframed,
    /// THeader (THeaderTransport).
    Header,
}

/// How calls are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// TBinaryProtocol, strict.
    Binary,
    /// TCompactProtocol.
    Compact,
}

/// Flags of `corridor-load thrift`.
#[derive(Debug, Clone, clap::Args)]
pub struct ThriftArgs {
    /// Server or gateway address, host:port.
    #[arg(long)]
    pub target: String,
    /// Method called.
    #[arg(long)]
    pub method: String,
    /// Transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Framed)]
    pub transport: TransportArg,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Binary)]
    pub protocol: ProtocolArg,
    /// Send a string argument of this many bytes [default: the string "hello"].
    #[arg(long)]
    pub payload_size: Option<usize>,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Calls of one method with one string argument.
#[derive(Debug)]
pub struct ThriftTarget {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    dialect: ClientDialect,
    method: String,
    arg: String,
    codec: Arc<ThriftCodec>,
}

/// A Thrift answer as a caller reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThriftAnswer {
    /// A REPLY with field 0 (not an exception).
    pub ok: bool,
    /// The reply's string field 0, or an exception's message (field 1).
    pub value: Option<String>,
}

impl ThriftTarget {
    /// Connections come from `source` (see `--source`).
    pub fn from_source(self, source: Option<std::net::IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// A target calling `method(arg)` at `addr` in `transport` and `protocol`.
    pub fn new(
        addr: SocketAddr,
        transport: Transport,
        protocol: Protocol,
        method: String,
        arg: String,
    ) -> Self {
        let dialect = ClientDialect {
            transport,
            protocol,
        };
        Self {
            addr,
            source: None,
            dialect,
            method,
            arg,
            codec: Arc::new(ThriftCodec::default()),
        }
    }

    /// Calls with `arg` instead of the target's own and reads the answer.
    pub async fn call_with(&self, conn: &ThriftConn, arg: &str) -> Result<ThriftAnswer, CallError> {
        let frame = conn
            .0
            .call(|id| {
                Ok(peer::call(
                    self.dialect,
                    &self.method,
                    id as u32 as i32,
                    false,
                    arg,
                    &[],
                )?)
            })
            .await?;
        let ok = frame.metadata.response_status == ResponseStatus::Ok;
        let value = peer::string_field(&frame, if ok { 0 } else { 1 })?;
        Ok(ThriftAnswer { ok, value })
    }
}

/// A Thrift connection.
pub struct ThriftConn(Mux);

impl Target for ThriftTarget {
    const PROTOCOL: &'static str = "thrift";
    type Conn = ThriftConn;

    async fn connect(&self) -> Result<ThriftConn, CallError> {
        Ok(ThriftConn(
            Mux::connect(
                self.addr,
                self.source,
                self.codec.clone(),
                u64::from(u32::MAX),
            )
            .await?,
        ))
    }

    async fn call(&self, conn: &ThriftConn) -> Result<Answer, CallError> {
        let answer = self.call_with(conn, &self.arg).await?;
        let status = Status::Name(if answer.ok { "reply" } else { "exception" });
        Ok(Answer {
            status,
            failed: !answer.ok,
        })
    }
}

/// Runs `corridor-load thrift`.
pub async fn run(args: &ThriftArgs) -> Result<RunResult, LoadError> {
    let addr = super::resolve(&args.target).await?;
    let transport = match args.transport {
        TransportArg::Framed => Transport::Framed,
        TransportArg::Unframed => Transport::Unframed,
        TransportArg::Header => Transport::Header,
    };
    let protocol = match args.protocol {
        ProtocolArg::Binary => Protocol::Binary,
        ProtocolArg::Compact => Protocol::Compact,
    };
    let arg = argument(None, args.payload_size);
    let target = ThriftTarget::new(addr, transport, protocol, args.method.clone(), arg)
        .from_source(args.load.source);
    // Plain Thrift clients keep one call in flight per connection.
    Ok(super::run(Arc::new(target), &args.load, 1).await)
}

#[cfg(test)]
mod tests;
