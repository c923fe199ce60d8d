//! gRPC load: unary calls of one method over h2c, the request message given as raw
//! protobuf bytes and sent as is (no schema needed), many calls in flight per
//! connection as HTTP/2 streams.

use std::{error::Error as _, net::SocketAddr, sync::Arc};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::http::uri::PathAndQuery;
use tonic::{
    Code, Status,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};

use super::{Answer, CallError, LoadArgs, LoadError, RunResult, Status as AnswerStatus, Target};

/// Flags of `corridor-load grpc`.
#[derive(Debug, Clone, clap::Args)]
pub struct GrpcArgs {
    /// Server or gateway address, host:port.
    #[arg(long)]
    pub target: String,
    /// The method's path, `/package.Service/Method`.
    #[arg(long, value_parser = parse_method)]
    pub method: String,
    /// The request message as hex (protobuf wire bytes, sent as is) [default: empty].
    #[arg(long, conflicts_with = "payload_size", value_parser = parse_hex)]
    pub payload_hex: Option<Bytes>,
    /// Send a message whose bytes field 1 holds this many bytes instead.
    #[arg(long)]
    pub payload_size: Option<usize>,
    /// Calls in flight per connection (HTTP/2 streams).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Checks that `s` is a gRPC method path, `/package.Service/Method`.
pub fn parse_method(s: &str) -> Result<String, String> {
    let mut parts = s.strip_prefix('/').map(|rest| rest.split('/'));
    match parts.as_mut().map(|p| (p.next(), p.next(), p.next())) {
        Some((Some(service), Some(method), None)) if !service.is_empty() && !method.is_empty() => {
            Ok(s.to_owned())
        }
        _ => Err(format!("{s:?} is not /package.Service/Method")),
    }
}

/// Reads hex digits (whitespace allowed between bytes) into bytes.
pub fn parse_hex(s: &str) -> Result<Bytes, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{s:?} has an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hex"))
        })
        .collect::<Result<Vec<u8>, String>>()
        .map(Bytes::from)
}

/// A protobuf message whose field 1 (bytes) holds `n` bytes of `x`: tag, varint
/// length, payload.
pub fn bytes_field_message(n: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(n + 11);
    // Field 1, wire type 2 (length-delimited).
    out.put_u8(0x0a);
    let mut len = n as u64;
    while len >= 0x80 {
        out.put_u8((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.put_u8(len as u8);
    out.put_bytes(b'x', n);
    out.freeze()
}

/// A codec that passes messages through as bytes: requests are sent as given, answers
/// read as they come. The echo backend answers with it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The canonical name of a gRPC status code, as the report counts it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Unary calls of one method with one message.
#[derive(Debug)]
pub struct GrpcTarget {
    endpoint: Endpoint,
    addr: SocketAddr,
    path: PathAndQuery,
    payload: Bytes,
}

impl GrpcTarget {
    /// A target calling `method` (`/package.Service/Method`) at `addr` with `payload`.
    pub fn new(addr: SocketAddr, method: &str, payload: Bytes) -> Result<Self, LoadError> {
        let path = method
            .parse()
            .map_err(|e| LoadError::Request(format!("method {method:?}: {e}")))?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| LoadError::Request(format!("address {addr}: {e}")))?
            .tcp_nodelay(true);
        Ok(Self {
            endpoint,
            addr,
            path,
            payload,
        })
    }

    /// Connections come from `source` (see `--source`).
    pub fn from_source(self, source: Option<std::net::IpAddr>) -> Self {
        Self {
            endpoint: self.endpoint.local_address(source),
            ..self
        }
    }

    /// Calls with `payload` instead of the target's own: the answer's message, or the
    /// status the server answered with (`Err(Ok(status))`), or why there was no answer.
    pub async fn call_with(
        &self,
        conn: &Channel,
        payload: Bytes,
    ) -> Result<Result<Bytes, Status>, CallError> {
        let mut grpc = Grpc::new(conn.clone());
        grpc.ready()
            .await
            .map_err(|e| CallError::Io(std::io::Error::other(e)))?;
        match grpc
            .unary(tonic::Request::new(payload), self.path.clone(), RawCodec)
            .await
        {
            Ok(resp) => Ok(Ok(resp.into_inner())),
            // A status with a source is tonic's account of a failed connection or
            // stream; the server's own statuses come from its trailers and have none.
            Err(status) if status.source().is_some() => {
                Err(CallError::Io(std::io::Error::other(status)))
            }
            Err(status) => Ok(Err(status)),
        }
    }
}

impl Target for GrpcTarget {
    const PROTOCOL: &'static str = "grpc";
    type Conn = Channel;

    async fn connect(&self) -> Result<Channel, CallError> {
        self.endpoint
            .connect()
            .await
            .map_err(|e| CallError::Connect {
                addr: self.addr,
                source: std::io::Error::other(e),
            })
    }

    async fn call(&self, conn: &Channel) -> Result<Answer, CallError> {
        let answer = match self.call_with(conn, self.payload.clone()).await? {
            Ok(_) => Answer {
                status: AnswerStatus::Name(code_name(Code::Ok)),
                failed: false,
            },
            Err(status) => Answer {
                status: AnswerStatus::Name(code_name(status.code())),
                failed: true,
            },
        };
        Ok(answer)
    }
}

/// Runs `corridor-load grpc`.
pub async fn run(args: &GrpcArgs) -> Result<RunResult, LoadError> {
    let addr = super::resolve(&args.target).await?;
    let payload = match (&args.payload_hex, args.payload_size) {
        (Some(hex), _) => hex.clone(),
        (None, Some(n)) => bytes_field_message(n),
        (None, None) => Bytes::new(),
    };
    let target = GrpcTarget::new(addr, &args.method, payload)?.from_source(args.load.source);
    Ok(super::run(Arc::new(target), &args.load, args.concurrency).await)
}

#[cfg(test)]
mod tests;
