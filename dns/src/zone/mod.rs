//! The cluster zone, answered from the controller's name table as the Kubernetes
//! DNS-Based Service Discovery spec (schema 1.1.0) and CoreDNS's `kubernetes` plugin
//! (`pods insecure`, `fallthrough in-addr.arpa ip6.arpa`) do.
//!
//! [`Zone::new`] turns a table into an index of every name with its records already
//! built, so a question costs a hash lookup plus cloning the records with the client's
//! spelling of the name. Choices where the spec leaves room:
//!
//! - A meshed ClusterIP service answers its gateway addresses while the table says the
//!   gateway pool is available (and its PTR records name the service for those addresses
//!   too); its records carry the meshed TTL whether rewritten or not. Headless and
//!   ExternalName services are never rewritten and keep the ordinary TTL.
//! - SRV records have priority 0 and share a weight of 100 equally (rounded down, at
//!   least 1), as CoreDNS does; SRV at the service name itself lists every port.
//! - ANY answers every record set the name owns (A, AAAA, SRV, ...); at an ExternalName
//!   it answers the CNAME alone.
//! - Endpoint names (`<hostname>.<svc>...`, or the dashed address) and their PTR records
//!   exist for ready endpoints only, as the spec defines them; the controller folds
//!   `publishNotReadyAddresses` into readiness.
//! - Unknown reverse names are not ours (forwarded); known reverse names answer other
//!   types with NODATA and the cluster zone's SOA.

mod forward;
mod index;
mod records;
mod reverse;
mod services;

#[cfg(test)]
mod tests;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, Record, RecordType};

use corridor_proto::corridor::dns::v1::NameTable;

use index::Index;

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

impl ZoneAnswer {
    /// Marks the answer negative for the last name asked: NXDOMAIN or NODATA, with the
    /// SOA in the authority section so resolvers can cache the negative answer.
    fn negative(&mut self, nxdomain: bool, soa: Option<&Record>) {
        if nxdomain {
            self.rcode = ResponseCode::NXDomain;
        }
        self.authorities.extend(soa.cloned());
    }
}

/// The zone built from one name table: immutable, shared by every query.
#[derive(Debug)]
pub struct Zone {
    opts: ZoneOptions,
    index: Index,
    /// Labels in the zone name, to find the labels below it without allocating.
    zone_labels: usize,
}

impl Zone {
    /// Indexes a name table. Never fails: an entry that cannot be used (an address that
    /// does not parse) is skipped with a warning.
    pub fn new(table: &NameTable, opts: ZoneOptions) -> Self {
        let index = Index::build(table, &opts);
        let zone_labels = opts.zone.iter().len();
        Zone {
            opts,
            index,
            zone_labels,
        }
    }

    /// The SOA serial: a hash of the table, the same on every replica holding that table.
    pub fn serial(&self) -> u32 {
        self.index.serial
    }

    /// How many names (and reverse names) the zone holds, for logs.
    pub fn len(&self) -> usize {
        self.index.names.len() + self.index.reverse.len()
    }

    /// Whether the zone holds no name at all (not even its apex).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers one question (class IN). `qname` is as the client sent it.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let mut out = ZoneAnswer::default();
        if self.resolve(qname, qtype, &mut out, 0) {
            Lookup::Answer(out)
        } else {
            Lookup::NotOurs
        }
    }

    /// Answers `name` into `out`; false if the name is not ours. `depth` counts the
    /// CNAMEs followed to get here.
    fn resolve(&self, name: &Name, qtype: RecordType, out: &mut ZoneAnswer, depth: usize) -> bool {
        if let Some(node) = self.index.names.get(name) {
            forward::answer_node(self, name, node, qtype, out, depth);
        } else if self.opts.zone.zone_of(name) {
            forward::answer_unindexed(self, name, qtype, out);
        } else if let Some(ptrs) = reverse::parse(name).and_then(|ip| self.index.reverse.get(&ip)) {
            reverse::answer(name, ptrs, qtype, self.index.soa.as_ref(), out);
        } else {
            return false;
        }
        true
    }
}

/// `record` owned by `owner` (the client's spelling of the name).
fn owned(record: &Record, owner: &Name) -> Record {
    Record::from_rdata(owner.clone(), record.ttl, record.data.clone())
}
