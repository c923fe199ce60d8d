//! The DNS request handler (hickory-server's [`RequestHandler`]): the zone first, then the
//! upstreams; and the UDP and TCP sockets it serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::proto::serialize::binary::BinDecoder;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::net::{TcpListener, UdpSocket};

use crate::forward::{Forwarded, Forwarder};
use crate::metrics::Metrics;
use crate::zone::{Lookup, Zone};

mod capture;
#[cfg(any(test, feature = "testing"))]
pub mod sample;
mod stats;
mod udp;

pub use stats::ServerStats;

/// The EDNS UDP payload we advertise and honour at most: the DNS flag day 2020 value,
/// which avoids IP fragmentation on every common path.
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// Responses buffered per TCP connection before the writer waits.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Times to retry finding a port free for both UDP and TCP when asked for port 0.
const BIND_ATTEMPTS: usize = 16;

/// Who answered a query (CoreDNS's `plugin` label of `coredns_dns_responses_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The cluster zone.
    Kubernetes,
    /// An upstream (or the cache in front of it).
    Forward,
    /// The server itself (malformed or unsupported requests, not ready).
    Server,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Kubernetes => "kubernetes",
            Source::Forward => "forward",
            Source::Server => "",
        }
    }
}

/// The latest zone, swapped whole when a name table arrives.
pub type SharedZone = Arc<ArcSwapOption<Zone>>;

/// Answers DNS requests.
#[derive(Debug)]
pub struct Handler {
    zone: SharedZone,
    zone_name: Name,
    forwarder: Arc<Forwarder>,
    stats: ServerStats,
}

/// A response ready to encode.
#[derive(Debug, Default)]
struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Reply {
            rcode,
            ..Default::default()
        }
    }

    fn forwarded(f: Forwarded) -> Self {
        Reply {
            rcode: f.rcode,
            authoritative: false,
            answers: f.answers,
            authorities: f.authorities,
            additionals: f.additionals,
        }
    }
}

/// What an answer still waits for.
#[derive(Debug)]
enum Pending {
    /// The question goes upstream.
    Forward,
    /// A zone answer whose ExternalName target lies outside the zone.
    Chase(Box<(Reply, Name)>),
}

/// The header and EDNS record of a response.
#[derive(Debug)]
struct Head {
    metadata: Metadata,
    edns: Option<Edns>,
    /// Set when the request's question section must not be echoed (see [`plain_question`]):
    /// an empty one to answer with instead.
    no_question: Option<Queries>,
}

/// Whether a single question's wire form can be echoed as is. hickory echoes the question
/// bytes the client sent; a compression pointer in them pointed into the *request*
/// (a legitimate single question has nothing earlier to point to), so in the response it
/// would point at something else and the response would not parse (found by the
/// `dns_request` fuzz target).
fn plain_question(queries: &Queries) -> bool {
    let bytes = queries.as_bytes();
    if queries.len() != 1 {
        return false;
    }
    let mut i = 0;
    while let Some(&len) = bytes.get(i) {
        if len == 0 {
            return true;
        }
        if len & 0xc0 != 0 {
            return false;
        }
        i += 1 + usize::from(len);
    }
    false
}

/// An empty question section.
fn no_queries() -> Option<Queries> {
    Queries::read(&mut BinDecoder::new(&[]), 0).ok()
}

impl Head {
    /// Flags from the request and the reply; EDNS answered with EDNS (RFC 6891 §6.1.1),
    /// a version we do not speak with BADVERS and no records.
    fn of(request: &Request, reply: &Reply) -> Self {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.message_type = MessageType::Response;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.response_code = reply.rcode;
        let edns = request.edns.as_ref().map(|req| {
            if req.version() > 0 {
                metadata.response_code = ResponseCode::BADVERS;
                metadata.authoritative = false;
            }
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(0);
            e
        });
        let no_question = if plain_question(&request.queries) { None } else { no_queries() };
        Head { metadata, edns, no_question }
    }

    /// The response message, borrowing the request's question and the reply's records.
    fn message<'q>(
        &'q self,
        request: &'q Request,
        reply: &'q Reply,
    ) -> MessageResponse<'q, 'q, std::slice::Iter<'q, Record>, std::slice::Iter<'q, Record>, std::slice::Iter<'q, Record>, std::slice::Iter<'q, Record>> {
        let queries = self.no_question.as_ref().unwrap_or(&request.queries);
        let mut builder = MessageResponseBuilder::new(queries, None);
        if let Some(e) = &self.edns {
            builder.edns(e);
        }
        let sections = if self.metadata.response_code == ResponseCode::BADVERS {
            (&[][..], &[][..], &[][..])
        } else {
            (&reply.answers[..], &reply.authorities[..], &reply.additionals[..])
        };
        builder.build(self.metadata, sections.0.iter(), sections.1.iter(), [].iter(), sections.2.iter())
    }
}

impl Handler {
    /// A handler answering `zone_name` from `zone` and everything else through `forwarder`.
    pub fn new(zone: SharedZone, zone_name: Name, forwarder: Arc<Forwarder>, metrics: Arc<Metrics>, server_label: String) -> Self {
        Handler {
            zone,
            zone_name,
            forwarder,
            stats: ServerStats::new(metrics, server_label),
        }
    }

    /// The answer when no upstream is needed; `Err` says what remains to be asked.
    fn answer_now(&self, request: &Request) -> Result<(Reply, Source), Pending> {
        if request.metadata.op_code != OpCode::Query {
            return Ok((Reply::error(ResponseCode::NotImp), Source::Server));
        }
        // Exactly one question: what every resolver sends, and what CoreDNS accepts.
        let Ok(info) = request.request_info() else {
            return Ok((Reply::error(ResponseCode::FormErr), Source::Server));
        };
        if !plain_question(&request.queries) {
            return Ok((Reply::error(ResponseCode::FormErr), Source::Server));
        }
        let query = info.query.original();
        let qtype = query.query_type();
        if query.query_class() != DNSClass::IN {
            return Ok((Reply::error(ResponseCode::NotImp), Source::Server));
        }
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of the cluster zone would hand out every service at once.
            return Ok((Reply::error(ResponseCode::Refused), Source::Server));
        }
        let qname = query.name();
        let zone = self.zone.load();
        match zone.as_deref() {
            Some(zone) => match zone.lookup(qname, qtype) {
                Lookup::Answer(a) => {
                    let reply = Reply {
                        rcode: a.rcode,
                        authoritative: true,
                        answers: a.answers,
                        authorities: a.authorities,
                        additionals: a.additionals,
                    };
                    match a.chase {
                        Some(target) => Err(Pending::Chase(Box::new((reply, target)))),
                        None => Ok((reply, Source::Kubernetes)),
                    }
                }
                Lookup::NotOurs => Err(Pending::Forward),
            },
            // No name table yet: we cannot tell whether a cluster name exists, and an
            // NXDOMAIN now would be cached by clients; SERVFAIL makes them retry.
            None if self.zone_name.zone_of(qname) => Ok((Reply::error(ResponseCode::ServFail), Source::Server)),
            None => Err(Pending::Forward),
        }
    }

    /// Decides the answer to one well-formed request, asking upstreams when needed.
    async fn answer(&self, request: &Request) -> (Reply, Source) {
        match self.answer_now(request) {
            Ok(done) => done,
            Err(pending) => self.finish(request, pending).await,
        }
    }

    /// Completes an answer that needs an upstream.
    async fn finish(&self, request: &Request, pending: Pending) -> (Reply, Source) {
        let Ok(info) = request.request_info() else {
            return (Reply::error(ResponseCode::FormErr), Source::Server);
        };
        let query = info.query.original();
        match pending {
            Pending::Chase(chase) => {
                let (mut reply, target) = *chase;
                self.chase(&mut reply, &target, query.query_type()).await;
                (reply, Source::Kubernetes)
            }
            Pending::Forward => self.forward(query.name(), query.query_type()).await,
        }
    }

    async fn forward(&self, qname: &Name, qtype: RecordType) -> (Reply, Source) {
        match self.forwarder.resolve(qname, qtype).await {
            Ok(f) => (Reply::forwarded(f), Source::Forward),
            Err(e) => {
                tracing::debug!(name = %qname, %qtype, error = %e, "forwarding failed");
                (Reply::error(ResponseCode::ServFail), Source::Forward)
            }
        }
    }

    /// Resolves an ExternalName's outside target upstream and appends what it says.
    async fn chase(&self, reply: &mut Reply, target: &Name, qtype: RecordType) {
        match self.forwarder.resolve(target, qtype).await {
            Ok(f) => {
                reply.rcode = f.rcode;
                reply.answers.extend(f.answers);
                if reply.answers.iter().all(|r| r.record_type() == RecordType::CNAME) {
                    reply.authorities.extend(f.authorities);
                }
            }
            Err(e) => {
                tracing::debug!(name = %target, error = %e, "cannot resolve an ExternalName target");
                reply.rcode = ResponseCode::ServFail;
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let (reply, source) = self.answer(request).await;
        let head = Head::of(request, &reply);
        let response = head.message(request, &reply);
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, src = %request.src(), "cannot send a response");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header { metadata: m, counts: Default::default() })
            }
        };
        self.stats.record(request, &info, source, started.elapsed(), stats::estimated_size(&info));
        info
    }
}

/// Binds UDP and TCP on the same address. Port 0 picks a port free for both.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // With an explicit port there is nothing to retry.
            Err(e) if addr.port() != 0 => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for both UDP and TCP")))
}

/// Serves TCP through hickory-server (framing, idle timeouts, per-connection tasks).
#[derive(Debug)]
pub struct TcpHandler(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response_handle: R) -> ResponseInfo {
        self.0.handle_request::<R, T>(request, response_handle).await
    }
}

/// Starts serving: TCP through hickory-server, UDP through [`udp::serve`] (one receive
/// loop per `udp_loops`, all on the same socket), until `stop` turns true.
pub fn serve(
    handler: Arc<Handler>,
    udp: UdpSocket,
    tcp: TcpListener,
    tcp_idle: Duration,
    udp_loops: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> hickory_server::server::Server<TcpHandler> {
    let udp = Arc::new(udp);
    for _ in 0..udp_loops.max(1) {
        tokio::spawn(udp::serve(udp.clone(), handler.clone(), stop.clone()));
    }
    let mut server = hickory_server::server::Server::new(TcpHandler(handler));
    server.register_listener(tcp, tcp_idle, TCP_RESPONSE_BUFFER);
    server
}

#[cfg(test)]
mod tests;
