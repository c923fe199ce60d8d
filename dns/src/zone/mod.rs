//! The cluster zone, answered from the controller's name table as the Kubernetes
//! DNS-Based Service Discovery spec (schema 1.1.0) and CoreDNS's `kubernetes` plugin
//! (`pods insecure`) do.
//!
//! INTERFACE STUB: filled in by the zone work; the signatures below are the contract the
//! server relies on.

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, Record, RecordType};

use corridor_proto::corridor::dns::v1::NameTable;

/// How records are shaped.
#[derive(Debug, Clone)]
pub struct ZoneOptions {
    /// The cluster zone, fully qualified and lowercase (`cluster.local.`).
    pub zone: Name,
    /// TTL of ordinary records (and of the SOA's minimum / negative TTL).
    pub ttl: u32,
    /// TTL of a meshed service's records (rewritten or failed open).
    pub meshed_ttl: u32,
}

/// What the zone says about one question.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Not a name this server is authoritative for: forward it upstream.
    NotOurs,
    /// An authoritative answer.
    Answer(ZoneAnswer),
}

/// An authoritative answer.
#[derive(Debug, Clone, Default)]
pub struct ZoneAnswer {
    /// `NoError` (with records, or NODATA) or `NXDomain`.
    pub rcode: ResponseCode,
    /// Answer section (owner names as the client spelled them).
    pub answers: Vec<Record>,
    /// Authority section: the zone's SOA for NXDOMAIN and NODATA.
    pub authorities: Vec<Record>,
    /// Additional section (A/AAAA of SRV targets).
    pub additionals: Vec<Record>,
    /// An ExternalName CNAME whose target lies outside the zone: the server resolves this
    /// name (A or AAAA, as asked) upstream and appends the result.
    pub chase: Option<Name>,
}

/// The zone built from one name table: immutable, shared by every query.
#[derive(Debug)]
pub struct Zone {
    opts: ZoneOptions,
}

impl Zone {
    /// Indexes a name table. Never fails: an entry that cannot be used (an address that
    /// does not parse) is skipped with a warning.
    pub fn new(_table: &NameTable, opts: ZoneOptions) -> Self {
        Zone { opts }
    }

    /// The options the zone was built with.
    pub fn options(&self) -> &ZoneOptions {
        &self.opts
    }

    /// Answers one question (class IN). `qname` is as the client sent it.
    pub fn lookup(&self, _qname: &Name, _qtype: RecordType) -> Lookup {
        Lookup::NotOurs
    }
}
