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
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use crate::forward::{Forwarded, Forwarder};
use crate::metrics::Metrics;
use crate::zone::{Lookup, Zone};

mod capture;
mod stats;

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

    /// Decides the answer to one well-formed request.
    async fn answer(&self, request: &Request) -> (Reply, Source) {
        if request.metadata.op_code != OpCode::Query {
            return (Reply::error(ResponseCode::NotImp), Source::Server);
        }
        // Exactly one question: what every resolver sends, and what CoreDNS accepts.
        let Ok(info) = request.request_info() else {
            return (Reply::error(ResponseCode::FormErr), Source::Server);
        };
        let query = info.query.original();
        let qtype = query.query_type();
        if query.query_class() != DNSClass::IN {
            return (Reply::error(ResponseCode::NotImp), Source::Server);
        }
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of the cluster zone would hand out every service at once.
            return (Reply::error(ResponseCode::Refused), Source::Server);
        }
        let qname = query.name();
        let zone = self.zone.load();
        match zone.as_deref() {
            Some(zone) => match zone.lookup(qname, qtype) {
                Lookup::Answer(a) => {
                    let mut reply = Reply {
                        rcode: a.rcode,
                        authoritative: true,
                        answers: a.answers,
                        authorities: a.authorities,
                        additionals: a.additionals,
                    };
                    if let Some(target) = a.chase {
                        self.chase(&mut reply, &target, qtype).await;
                    }
                    (reply, Source::Kubernetes)
                }
                Lookup::NotOurs => self.forward(qname, qtype).await,
            },
            // No name table yet: we cannot tell whether a cluster name exists, and an
            // NXDOMAIN now would be cached by clients; SERVFAIL makes them retry.
            None if self.zone_name.zone_of(qname) => (Reply::error(ResponseCode::ServFail), Source::Server),
            None => self.forward(qname, qtype).await,
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

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.message_type = MessageType::Response;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.response_code = reply.rcode;
        // Answer EDNS with EDNS (RFC 6891 §6.1.1); a version we do not speak gets BADVERS.
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(0);
            if req.version() > 0 {
                metadata.response_code = ResponseCode::BADVERS;
            }
            e
        });
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            metadata.response_code = ResponseCode::BADVERS;
        }
        let ok = metadata.response_code != ResponseCode::BADVERS;
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let none: &[Record] = &[];
        let (answers, authorities, additionals) = if ok {
            (&reply.answers[..], &reply.authorities[..], &reply.additionals[..])
        } else {
            (none, none, none)
        };
        let response = builder.build(metadata, answers.iter(), authorities.iter(), [].iter(), additionals.iter());
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, src = %request.src(), "cannot send a response");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header { metadata: m, counts: Default::default() })
            }
        };
        self.stats.record(request, &info, source, started.elapsed());
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

/// Starts serving on both sockets.
pub fn serve(handler: Handler, udp: UdpSocket, tcp: TcpListener, tcp_idle: Duration) -> hickory_server::server::Server<Handler> {
    let mut server = hickory_server::server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, tcp_idle, TCP_RESPONSE_BUFFER);
    server
}

#[cfg(test)]
mod tests;
