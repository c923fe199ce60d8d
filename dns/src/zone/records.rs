//! Building blocks of a service's records: names with addresses (the service itself or
//! one endpoint) and SRV sets over ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use corridor_proto::corridor::dns::v1::Port;

use super::index::{Index, Node, child};
use super::services::label;

/// SRV weight shared among the records of one answer, as CoreDNS does: every record gets
/// an equal share of this, rounded down, at least 1.
const SRV_WEIGHT_TOTAL: usize = 100;

/// One SRV record to be: which target, which port.
#[derive(Debug, Clone, Copy)]
pub(super) struct SrvEntry {
    pub(super) target: usize,
    pub(super) port: u16,
}

/// A port as the table gives it, checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PortSpec {
    /// `_<name>` when the port has a usable name: only named ports get SRV names.
    name: Option<String>,
    /// `_tcp`, `_udp` or `_sctp`.
    proto: &'static str,
    pub(super) number: u16,
}

impl PortSpec {
    pub(super) fn parse(service: &Name, port: &Port) -> Option<Self> {
        let proto = match port.protocol.to_ascii_lowercase().as_str() {
            // Kubernetes defaults a port's protocol to TCP.
            "tcp" | "" => "_tcp",
            "udp" => "_udp",
            "sctp" => "_sctp",
            other => {
                tracing::warn!(service = %service, protocol = %other, "skipping port of unknown protocol");
                return None;
            }
        };
        let Some(number) = u16::try_from(port.port).ok().filter(|&n| n != 0) else {
            tracing::warn!(service = %service, port = port.port, "skipping port: number out of range");
            return None;
        };
        let name = if port.name.is_empty() {
            None
        } else {
            let name = label(&port.name).map(|l| format!("_{l}"));
            if name.is_none() {
                tracing::warn!(service = %service, port = %port.name, "port name is not a DNS label; no SRV name for it");
            }
            name
        };
        Some(PortSpec {
            name,
            proto,
            number,
        })
    }
}

/// Named ports grouped by `(_name, _proto)`, in table order, each with its SRV entries.
pub(super) type Groups<'p> = Vec<((&'p str, &'static str), Vec<SrvEntry>)>;

pub(super) fn group_named<'p>(ports: impl Iterator<Item = (&'p PortSpec, usize)>) -> Groups<'p> {
    let mut groups: Groups<'p> = Vec::new();
    for (p, target) in ports {
        let Some(name) = p.name.as_deref() else {
            continue;
        };
        let entry = SrvEntry {
            target,
            port: p.number,
        };
        match groups.iter_mut().find(|(key, _)| *key == (name, p.proto)) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push(((name, p.proto), vec![entry])),
        }
    }
    groups
}

/// `_<port>._<proto>.<svc>` with its SRV set, and the empty non-terminal `_<proto>.<svc>`.
pub(super) fn add_srv_names(
    index: &mut Index,
    service: &Name,
    groups: &Groups<'_>,
    targets: &[Target],
    ttl: u32,
) {
    for ((port, proto), entries) in groups {
        let (Some(proto_name), Some(owner)) =
            (child(service, &[proto]), child(service, &[port, proto]))
        else {
            tracing::warn!(service = %service, port = %port, "SRV name too long; skipped");
            continue;
        };
        index.node(proto_name);
        add_srv_set(index.node(owner.clone()), &owner, targets, entries, ttl);
    }
}

/// The SRV set for `entries`, with the targets' addresses as additionals.
pub(super) fn add_srv_set(
    node: &mut Node,
    owner: &Name,
    targets: &[Target],
    entries: &[SrvEntry],
    ttl: u32,
) {
    let weight = u16::try_from((SRV_WEIGHT_TOTAL / entries.len().max(1)).max(1)).unwrap_or(1);
    let mut records = Vec::with_capacity(entries.len());
    let mut additionals = Vec::new();
    let mut seen_targets: Vec<usize> = Vec::new();
    for entry in entries {
        let Some(target) = targets.get(entry.target) else {
            continue;
        };
        let srv = SRV::new(0, weight, entry.port, target.name.clone());
        records.push(Record::from_rdata(owner.clone(), ttl, RData::SRV(srv)));
        if !seen_targets.contains(&entry.target) {
            seen_targets.push(entry.target);
            additionals.extend(target.address_records());
        }
    }
    node.push(RecordType::SRV, records, additionals);
}

// === targets ===

/// A name with addresses: a service, or one endpoint of it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) name: Name,
    pub(super) ttl: u32,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl Target {
    pub(super) fn new(name: Name, ttl: u32, ips: &[IpAddr]) -> Self {
        let mut target = Target {
            name,
            ttl,
            v4: Vec::new(),
            v6: Vec::new(),
        };
        ips.iter().for_each(|&ip| target.push(ip));
        target
    }

    /// Adds an address unless already there.
    pub(super) fn push(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) if !self.v4.contains(&v4) => self.v4.push(v4),
            IpAddr::V6(v6) if !self.v6.contains(&v6) => self.v6.push(v6),
            _ => {}
        }
    }

    pub(super) fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.iter().map(|&ip| IpAddr::V4(ip));
        v4.chain(self.v6.iter().map(|&ip| IpAddr::V6(ip)))
    }

    fn a_records(&self) -> Vec<Record> {
        let rdata = self.v4.iter().map(|&ip| RData::A(A(ip)));
        rdata
            .map(|data| Record::from_rdata(self.name.clone(), self.ttl, data))
            .collect()
    }

    fn aaaa_records(&self) -> Vec<Record> {
        let rdata = self.v6.iter().map(|&ip| RData::AAAA(AAAA(ip)));
        rdata
            .map(|data| Record::from_rdata(self.name.clone(), self.ttl, data))
            .collect()
    }

    fn address_records(&self) -> Vec<Record> {
        let mut records = self.a_records();
        records.extend(self.aaaa_records());
        records
    }

    pub(super) fn add_address_sets(&self, node: &mut Node) {
        node.push(RecordType::A, self.a_records(), Vec::new());
        node.push(RecordType::AAAA, self.aaaa_records(), Vec::new());
    }
}
