//! Per-request metrics under CoreDNS's names, with the handles cached per label set so a
//! query only bumps atomics.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use hickory_server::server::{Request, ResponseInfo};
use metrics::{Counter, Histogram, Label};

use super::{MAX_UDP_PAYLOAD, Source};
use crate::metrics::{
    DNS_REQUEST_DURATION, DNS_REQUEST_SIZE, DNS_REQUESTS, DNS_RESPONSE_SIZE, DNS_RESPONSES,
    Metrics,
};

/// The `zone` label: CoreDNS labels by server block, and the stock Corefile has one
/// server block for the root.
const ZONE_LABEL: &str = ".";

#[derive(Debug, Clone)]
struct RequestHandles {
    requests: Counter,
    duration: Histogram,
    request_size: Histogram,
}

/// The handles the server bumps per request.
#[derive(Debug)]
pub struct ServerStats {
    metrics: Arc<Metrics>,
    server: String,
    requests: DashMap<(bool, bool, RecordType), RequestHandles>,
    responses: DashMap<(u16, Source, bool), (Counter, Histogram)>,
}

impl ServerStats {
    /// Handles labelled with `server` (`dns://:53`).
    pub fn new(metrics: Arc<Metrics>, server: String) -> Self {
        ServerStats {
            metrics,
            server,
            requests: DashMap::new(),
            responses: DashMap::new(),
        }
    }

    /// Counts one answered request whose response was `size` bytes.
    pub fn record(&self, request: &Request, info: &ResponseInfo, source: Source, took: Duration, size: usize) {
        let tcp = request.protocol() == Protocol::Tcp;
        let v6 = request.src().is_ipv6();
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(RecordType::Unknown(0), |q| q.query_type());
        let key = (tcp, v6, type_key(qtype));
        let handles = match self.requests.get(&key) {
            Some(h) => h.clone(),
            None => {
                let h = self.request_handles(tcp, v6, key.2);
                self.requests.insert(key, h.clone());
                h
            }
        };
        handles.requests.increment(1);
        handles.duration.record(took.as_secs_f64());
        let advertised = if tcp {
            f64::from(u16::MAX)
        } else {
            f64::from(request.edns.as_ref().map_or(512, |e| e.max_payload().min(MAX_UDP_PAYLOAD)))
        };
        handles.request_size.record(advertised);

        let rkey = (u16::from(info.response_code), source, tcp);
        let (counter, size_histogram) = match self.responses.get(&rkey) {
            Some(h) => h.clone(),
            None => {
                let h = self.response_handles(info.response_code, source, tcp);
                self.responses.insert(rkey, h.clone());
                h
            }
        };
        counter.increment(1);
        size_histogram.record(size as f64);
    }

    fn base(&self) -> Vec<Label> {
        vec![
            Label::new("server", self.server.clone()),
            Label::new("zone", ZONE_LABEL),
            Label::new("view", ""),
        ]
    }

    fn request_handles(&self, tcp: bool, v6: bool, qtype: RecordType) -> RequestHandles {
        let proto = if tcp { "tcp" } else { "udp" };
        let mut labels = self.base();
        labels.push(Label::new("proto", proto));
        labels.push(Label::new("family", if v6 { "2" } else { "1" }));
        labels.push(Label::new("type", type_label(qtype)));
        let requests = self.metrics.counter(DNS_REQUESTS, labels);
        let mut labels = self.base();
        labels.push(Label::new("type", type_label(qtype)));
        let duration = self.metrics.histogram(DNS_REQUEST_DURATION, labels);
        let mut labels = self.base();
        labels.push(Label::new("proto", proto));
        let request_size = self.metrics.histogram(DNS_REQUEST_SIZE, labels);
        RequestHandles {
            requests,
            duration,
            request_size,
        }
    }

    fn response_handles(&self, rcode: ResponseCode, source: Source, tcp: bool) -> (Counter, Histogram) {
        let mut labels = self.base();
        labels.push(Label::new("rcode", rcode_label(rcode)));
        labels.push(Label::new("plugin", source.label()));
        let counter = self.metrics.counter(DNS_RESPONSES, labels);
        let mut labels = self.base();
        labels.push(Label::new("proto", if tcp { "tcp" } else { "udp" }));
        (counter, self.metrics.histogram(DNS_RESPONSE_SIZE, labels))
    }
}

/// A response's size when only its record counts are known (hickory encodes TCP
/// responses itself): the header plus a typical compressed record each, a floor.
pub fn estimated_size(info: &ResponseInfo) -> usize {
    let c = info.counts();
    12 + 16 * (usize::from(c.answers) + usize::from(c.authorities) + usize::from(c.additionals))
}

/// Types CoreDNS labels by name; everything else is "other" (bounded label cardinality).
fn type_key(t: RecordType) -> RecordType {
    use RecordType::*;
    match t {
        A | AAAA | NS | PTR | SOA | CNAME | MX | TXT | SRV | NAPTR | DS | DNSKEY | RRSIG
        | NSEC | NSEC3 | HINFO | ANY | AXFR | IXFR | HTTPS | SVCB | CAA => t,
        _ => RecordType::Unknown(0),
    }
}

fn type_label(t: RecordType) -> String {
    match t {
        RecordType::Unknown(0) => "other".to_string(),
        t => t.to_string(),
    }
}

/// CoreDNS's rcode label: the RFC mnemonic in capitals.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}
