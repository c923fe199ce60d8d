//! DNS load: queries for a list of names, asked in turn, over UDP (many in flight per
//! socket, answers matched by id) or TCP. Messages are written and read with
//! hickory-proto. NOERROR and NXDOMAIN are answers; SERVFAIL, REFUSED and the other
//! rcodes are status errors.

mod conn;

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use corridor_gateway::codec::CodecError;
use hickory_server::proto::{
    op::{Edns, Message, MessageType, Query, ResponseCode},
    rr::{Name, RecordType},
};

pub use self::conn::DnsConn;
use super::{Answer, CallError, LoadArgs, LoadError, RunResult, Status, Target};

/// The UDP payload size queries advertise (EDNS0): the DNS Flag Day 2020 value, which
/// avoids fragmentation and is what resolvers send.
pub const EDNS_PAYLOAD: u16 = 1232;

/// Record types a load asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Qtype {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Services (`_port._proto.name`).
    Srv,
    /// Reverse names; a name that is an IP address is asked as its reverse name.
    Ptr,
    /// Text.
    Txt,
}

impl Qtype {
    fn record_type(self) -> RecordType {
        match self {
            Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
            Self::Srv => RecordType::SRV,
            Self::Ptr => RecordType::PTR,
            Self::Txt => RecordType::TXT,
        }
    }
}

/// Flags of `corridor-load dns`.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsArgs {
    /// Server address, host:port.
    #[arg(long)]
    pub target: String,
    /// Names asked in turn: `a,b,c`, or `@FILE` with one name per line (`#` comments).
    #[arg(long)]
    pub names: String,
    /// Record type asked (any case).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Qtype::A)]
    pub qtype: Qtype,
    /// Ask over TCP instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Queries in flight per socket.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How much load.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Reads `--names`: a comma-separated list, or `@FILE` with one name per line (blank
/// lines and `#` comments skipped).
pub fn read_names(spec: &str) -> Result<Vec<String>, LoadError> {
    let names: Vec<String> = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .map_err(|e| LoadError::Request(format!("cannot read names from {path}: {e}")))?
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
        None => spec
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if names.is_empty() {
        return Err(LoadError::Request(format!("no names in {spec:?}")));
    }
    Ok(names)
}

/// A query for one name: its question, and its wire bytes (the id filled in per query).
#[derive(Debug, Clone)]
pub struct Question {
    /// What is asked.
    pub query: Query,
    /// The message.
    pub bytes: Bytes,
}

/// The query for `name` (fully qualified whether or not it ends in a dot) with
/// recursion desired and EDNS0.
pub fn question(name: &str, qtype: Qtype) -> Result<Question, LoadError> {
    let bad = |e: &dyn std::fmt::Display| LoadError::Request(format!("name {name:?}: {e}"));
    let name = match (qtype, name.parse::<IpAddr>()) {
        (Qtype::Ptr, Ok(ip)) => Name::from(ip),
        _ => {
            let mut n = Name::from_utf8(name).map_err(|e| bad(&e))?;
            n.set_fqdn(true);
            n
        }
    };
    let query = Query::query(name, qtype.record_type());
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    let bytes = Bytes::from(message.to_vec().map_err(|e| bad(&e))?);
    Ok(Question { query, bytes })
}

/// How the report counts an answer: by its rcode.
pub fn rcode_answer(rcode: ResponseCode) -> Answer {
    let (status, failed) = match rcode {
        ResponseCode::NoError => ("NOERROR", false),
        ResponseCode::NXDomain => ("NXDOMAIN", false),
        ResponseCode::ServFail => ("SERVFAIL", true),
        ResponseCode::Refused => ("REFUSED", true),
        ResponseCode::FormErr => ("FORMERR", true),
        ResponseCode::NotImp => ("NOTIMP", true),
        _ => ("OTHER", true),
    };
    Answer {
        status: Status::Name(status),
        failed,
    }
}

/// Queries for a list of names, asked in turn.
#[derive(Debug)]
pub struct DnsTarget {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    tcp: bool,
    questions: Vec<Question>,
    next: AtomicUsize,
}

impl DnsTarget {
    /// Queries come from `source` (see `--source`).
    pub fn from_source(self, source: Option<std::net::IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// A target asking `addr` for `names` (in turn) of `qtype`, over TCP if `tcp`.
    pub fn new(
        addr: SocketAddr,
        names: &[String],
        qtype: Qtype,
        tcp: bool,
    ) -> Result<Self, LoadError> {
        let questions = names
            .iter()
            .map(|n| question(n, qtype))
            .collect::<Result<Vec<_>, _>>()?;
        if questions.is_empty() {
            return Err(LoadError::Request("no names to ask".into()));
        }
        Ok(Self {
            addr,
            source: None,
            tcp,
            questions,
            next: AtomicUsize::new(0),
        })
    }

    /// Asks the next name and reads the answer.
    pub async fn ask(&self, conn: &DnsConn) -> Result<Message, CallError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.questions.len();
        let asked = &self.questions[i];
        let bytes = conn.ask(&asked.bytes).await?;
        let corrupt = |reason: String| {
            CallError::Codec(CodecError::Corrupt {
                protocol: "dns",
                reason,
            })
        };
        let answer = Message::from_vec(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if answer.metadata.message_type != MessageType::Response {
            return Err(corrupt("a query came back instead of a response".into()));
        }
        // An answer echoes the question (names compare without case: a server may
        // change it, RFC 4343); some error answers leave it out.
        if let Some(echoed) = answer.queries.first()
            && *echoed != asked.query
        {
            return Err(corrupt(format!(
                "answer for {echoed} to a query for {}",
                asked.query
            )));
        }
        Ok(answer)
    }
}

impl Target for DnsTarget {
    const PROTOCOL: &'static str = "dns";
    type Conn = DnsConn;

    async fn connect(&self) -> Result<DnsConn, CallError> {
        if self.tcp {
            DnsConn::tcp(self.addr, self.source).await
        } else {
            DnsConn::udp(self.addr, self.source).await
        }
    }

    async fn call(&self, conn: &DnsConn) -> Result<Answer, CallError> {
        let answer = self.ask(conn).await?;
        Ok(rcode_answer(answer.metadata.response_code))
    }
}

/// Runs `corridor-load dns`.
pub async fn run(args: &DnsArgs) -> Result<RunResult, LoadError> {
    let addr = super::resolve(&args.target).await?;
    let names = read_names(&args.names)?;
    let target = DnsTarget::new(addr, &names, args.qtype, args.tcp)?.from_source(args.load.source);
    Ok(super::run(Arc::new(target), &args.load, args.concurrency).await)
}

#[cfg(test)]
mod tests;
