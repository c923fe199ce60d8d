//! The zone's index: every name the name table implies, with its records already built,
//! so that answering a question is a hash lookup and a few clones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{NS, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use prost::Message;

use corridor_proto::corridor::dns::v1::NameTable;

use super::ZoneOptions;
use super::services;

/// The schema version of the Kubernetes DNS-Based Service Discovery spec we implement,
/// published as `dns-version.<zone>` TXT.
pub(super) const SCHEMA_VERSION: &str = "1.1.0";

/// SOA timers (refresh, retry, expire), as CoreDNS's kubernetes plugin sets them. Nobody
/// transfers this zone, so they only need to be plausible.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// A hash map keyed by names or addresses. The maps are built once per table and never
/// modified afterwards, so a query crafted to collide can only walk one bucket: a plain
/// fast hash is enough, no need for SipHash's flooding resistance.
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Every name of the zone and every reverse name we answer, with their records.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Forward names (case-insensitive: `Name`'s `Hash` and `Eq` ignore ASCII case).
    pub(super) names: FastMap<Name, Node>,
    /// PTR records per address (owner names are replaced by the question's at answer time).
    pub(super) reverse: FastMap<IpAddr, Vec<Record>>,
    /// The zone's SOA, for the answer at the apex and the authority section of negative
    /// answers.
    pub(super) soa: Option<Record>,
    /// The SOA serial.
    pub(super) serial: u32,
}

/// What exists at one name. A node without records and without an alias is an empty
/// non-terminal (or a name that owns only types we do not serve): NODATA, never NXDOMAIN.
#[derive(Debug, Default)]
pub(super) struct Node {
    /// One set per record type.
    pub(super) rrsets: Vec<RrSet>,
    /// An ExternalName's CNAME; a node with an alias has no other records.
    /// Boxed: few names are aliases, and an inline record would make every entry of the
    /// name map several cache lines long (the lookup's cost is its cache misses).
    pub(super) alias: Option<Box<Alias>>,
}

/// The records of one type at one name, with what goes into the additional section.
#[derive(Debug)]
pub(super) struct RrSet {
    /// The record type.
    pub(super) rtype: RecordType,
    /// The records, owned by the canonical (lowercase) spelling of the node's name.
    pub(super) records: Vec<Record>,
    /// Addresses of SRV targets.
    pub(super) additionals: Vec<Record>,
}

/// A CNAME at a node.
#[derive(Debug)]
pub(super) struct Alias {
    /// The CNAME record (canonical owner).
    pub(super) record: Record,
    /// Its target, kept apart so a chase need not match on the record data.
    pub(super) target: Name,
}

// === impl Index ===

impl Index {
    /// Indexes a name table.
    pub(super) fn build(table: &NameTable, opts: &ZoneOptions) -> Self {
        let mut index = Index {
            serial: serial_of(table),
            ..Index::default()
        };
        let zone = &opts.zone;
        if !table.zone.is_empty() && !same_zone(&table.zone, zone) {
            tracing::warn!(
                table_zone = %table.zone,
                zone = %zone,
                "the name table was built for another zone; answering it under the configured zone"
            );
        }
        index.add_apex(opts);
        for service in &table.services {
            services::add(&mut index, service, table.gateway_available, opts);
        }
        index
    }

    /// The apex (SOA, NS), `ns.dns.<zone>`, `dns-version.<zone>` and the fixed empty
    /// non-terminals `svc.<zone>`, `pod.<zone>`, `dns.<zone>`.
    fn add_apex(&mut self, opts: &ZoneOptions) {
        let zone = &opts.zone;
        let (Some(ns_host), Some(hostmaster), Some(version)) = (
            child(zone, &["ns", "dns"]),
            child(zone, &["hostmaster"]),
            child(zone, &["dns-version"]),
        ) else {
            // Only a zone name near the 255-byte limit gets here; a zone without its
            // fixed names still answers its services.
            tracing::warn!(zone = %zone, "zone name too long for its SOA and NS names");
            return;
        };
        let soa = Record::from_rdata(
            zone.clone(),
            opts.ttl,
            RData::SOA(SOA::new(
                ns_host.clone(),
                hostmaster,
                self.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                opts.ttl,
            )),
        );
        let ns = Record::from_rdata(zone.clone(), opts.ttl, RData::NS(NS(ns_host.clone())));
        let apex = self.node(zone.clone());
        apex.push(RecordType::SOA, vec![soa.clone()], Vec::new());
        apex.push(RecordType::NS, vec![ns], Vec::new());
        self.soa = Some(soa);

        let txt = TXT::new(vec![SCHEMA_VERSION.to_string()]);
        let txt = Record::from_rdata(version.clone(), opts.ttl, RData::TXT(txt));
        self.node(version)
            .push(RecordType::TXT, vec![txt], Vec::new());

        // `ns.dns.<zone>` exists (the NS record names it) but we know no address for it.
        self.node(ns_host);
        for label in ["svc", "pod", "dns"] {
            if let Some(name) = child(zone, &[label]) {
                self.node(name);
            }
        }
    }

    /// The node at `name`, created empty (an empty non-terminal) if absent.
    pub(super) fn node(&mut self, name: Name) -> &mut Node {
        self.names.entry(name).or_default()
    }

    /// Adds a PTR record for `ip` unless the same target is already there (an address
    /// listed twice for one service).
    pub(super) fn add_ptr(&mut self, ip: IpAddr, record: Record) {
        let ptrs = self.reverse.entry(ip).or_default();
        if !ptrs.iter().any(|r| r.data == record.data) {
            ptrs.push(record);
        }
    }
}

// === impl Node ===

impl Node {
    /// Adds records of one type; merged into an existing set of that type.
    pub(super) fn push(
        &mut self,
        rtype: RecordType,
        records: Vec<Record>,
        additionals: Vec<Record>,
    ) {
        if records.is_empty() {
            return;
        }
        match self.rrsets.iter_mut().find(|set| set.rtype == rtype) {
            Some(set) => {
                set.records.extend(records);
                set.additionals.extend(additionals);
            }
            None => self.rrsets.push(RrSet {
                rtype,
                records,
                additionals,
            }),
        }
    }

    /// The set of `rtype`, if the node has one.
    pub(super) fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|set| set.rtype == rtype)
    }
}

/// `labels` (leftmost first) prepended to `base`; `None` if a label is not usable or the
/// name gets too long.
pub(super) fn child(base: &Name, labels: &[&str]) -> Option<Name> {
    let relative = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
    relative.append_domain(base).ok()
}

/// Whether a table's zone string names the configured zone (either spelling of the root).
fn same_zone(table_zone: &str, zone: &Name) -> bool {
    Name::from_ascii(table_zone).is_ok_and(|mut name| {
        name.set_fqdn(true);
        name == *zone
    })
}

/// The SOA serial: a hash of the table's encoding, so every replica that got the same
/// table reports the same serial and any change to the table changes it.
fn serial_of(table: &NameTable) -> u32 {
    let mut hasher = Fnv::default();
    hasher.write(&table.encode_to_vec());
    let hash = hasher.finish();
    // Fold the 64-bit hash so both halves count.
    (hash ^ (hash >> 32)) as u32
}

/// FNV-1a, 64 bits: short keys (names, addresses) hash in a few nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fnv(u64);

/// FNV-1a's 64-bit offset basis and prime (from the FNV specification).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Fnv {
    fn default() -> Self {
        Fnv(FNV_OFFSET)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
}
