//! One question to one upstream on the wire: UDP on a fresh connected socket, or TCP with
//! the two-byte length framing, and the checks that keep spoofed or broken answers out.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

/// The EDNS0 UDP payload size advertised upstream: DNS Flag Day 2020's value, which avoids
/// IP fragmentation on any common path; larger answers come back truncated and go to TCP.
pub(super) const EDNS_PAYLOAD: u16 = 1232;
/// Receive buffer for UDP answers. Bigger than the payload we advertise, so a resolver that
/// ignores it a little still parses; an answer cut at this size fails to parse and the
/// attempt fails.
const UDP_BUFFER: usize = 4096;
/// A DNS header is 12 bytes; anything shorter is not an answer.
const HEADER_LEN: usize = 12;

/// Why one attempt at one upstream failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    /// Socket error: connection refused (ICMP port unreachable), reset, no route.
    #[error("upstream I/O error: {0}")]
    Io(#[from] io::Error),
    /// No matching answer before the attempt's deadline.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The upstream answered our ID with something that is not a usable answer.
    #[error("upstream sent a malformed answer: {0}")]
    Malformed(String),
}

/// What to make of one received message.
enum Verdict {
    /// The answer to our question.
    Accept(Message),
    /// Not ours (another ID or question): keep waiting.
    Ignore(&'static str),
    /// Ours but broken: the attempt fails.
    Reject(AttemptError),
}

/// Asks over UDP from a fresh socket (the OS picks a random source port) with a fresh
/// random ID, waiting for the matching answer until `deadline`.
pub(super) async fn udp(
    upstream: SocketAddr,
    question: &Question,
    deadline: Instant,
) -> Result<Message, AttemptError> {
    let (id, query) = question.with_fresh_id();
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected, so the kernel drops datagrams from other sources and an ICMP port
    // unreachable surfaces as ECONNREFUSED at once instead of a silent timeout.
    socket.connect(upstream).await?;
    match timeout_at(deadline, socket.send(&query)).await {
        Ok(sent) => sent?,
        Err(_) => return Err(AttemptError::Timeout),
    };
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let len = match timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(received) => received?,
            Err(_) => return Err(AttemptError::Timeout),
        };
        match question.check(&buf[..len], id) {
            Verdict::Accept(message) => return Ok(message),
            Verdict::Ignore(why) => tracing::debug!(%upstream, why, "ignored a UDP datagram"),
            Verdict::Reject(error) => return Err(error),
        }
    }
}

/// Asks over TCP (after a truncated UDP answer), reading length-prefixed messages until
/// the matching answer or `deadline`.
pub(super) async fn tcp(
    upstream: SocketAddr,
    question: &Question,
    deadline: Instant,
) -> Result<Message, AttemptError> {
    match timeout_at(deadline, tcp_exchange(upstream, question)).await {
        Ok(result) => result,
        Err(_) => Err(AttemptError::Timeout),
    }
}

async fn tcp_exchange(upstream: SocketAddr, question: &Question) -> Result<Message, AttemptError> {
    let (id, query) = question.with_fresh_id();
    // A single question with an OPT record is far below 64 KiB.
    let len = u16::try_from(query.len()).unwrap_or(u16::MAX);
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await?;
    loop {
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let len = usize::from(u16::from_be_bytes(prefix));
        if len < HEADER_LEN {
            return Err(AttemptError::Malformed(format!("{len}-byte TCP frame")));
        }
        // At most 64 KiB by construction; a peer announcing more than it sends runs into
        // EOF or the deadline.
        let mut message = vec![0u8; len];
        stream.read_exact(&mut message).await?;
        match question.check(&message, id) {
            Verdict::Accept(message) => return Ok(message),
            Verdict::Ignore(why) => tracing::debug!(%upstream, why, "ignored a TCP message"),
            Verdict::Reject(error) => return Err(error),
        }
    }
}

/// One question, encoded once and sent with a fresh ID per attempt.
#[derive(Debug)]
pub(super) struct Question {
    name: Name,
    qtype: RecordType,
    /// The encoded query, ID zero.
    wire: Vec<u8>,
}

impl std::fmt::Display for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.qtype)
    }
}

/// The question cannot be put on the wire (a name too long once made absolute).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the question: {0}")]
pub(super) struct EncodeError(String);

impl Question {
    /// A recursive query for `name`/`qtype` in class IN with EDNS0.
    pub(super) fn new(name: &Name, qtype: RecordType) -> Result<Self, EncodeError> {
        let mut name = name.clone();
        name.set_fqdn(true);
        let mut message = Message::new(0, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name.clone(), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        message.set_edns(edns);
        let wire = message
            .to_vec()
            .map_err(|error| EncodeError(error.to_string()))?;
        Ok(Question { name, qtype, wire })
    }

    /// A random ID and the query carrying it.
    fn with_fresh_id(&self) -> (u16, Vec<u8>) {
        let id = rand::random::<u16>();
        let mut wire = self.wire.clone();
        // The encoder always writes the 12-byte header first; the ID is its first field.
        if let Some(slot) = wire.get_mut(..2) {
            slot.copy_from_slice(&id.to_be_bytes());
        }
        (id, wire)
    }

    /// Whether `bytes` answer this question asked with `id`.
    fn check(&self, bytes: &[u8], id: u16) -> Verdict {
        // The ID is read before anything is parsed, so off-path noise costs no decoding.
        let Some(got) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return Verdict::Ignore("shorter than an ID");
        };
        if bytes.len() < HEADER_LEN {
            return Verdict::Ignore("shorter than a header");
        }
        if got != id {
            return Verdict::Ignore("another query ID");
        }
        let message = match Message::from_vec(bytes) {
            Ok(message) => message,
            Err(error) => return Verdict::Reject(AttemptError::Malformed(error.to_string())),
        };
        if message.message_type != MessageType::Response || message.op_code != OpCode::Query {
            return Verdict::Reject(AttemptError::Malformed("not a query response".into()));
        }
        match message.queries.as_slice() {
            [question]
                if question.name().eq_ignore_root(&self.name)
                    && question.query_type() == self.qtype
                    && question.query_class() == DNSClass::IN =>
            {
                Verdict::Accept(message)
            }
            // Some servers drop the question from error answers; the ID still ties them to
            // us.
            [] if message.response_code != ResponseCode::NoError => Verdict::Accept(message),
            _ => Verdict::Ignore("another question"),
        }
    }
}
