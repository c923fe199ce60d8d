//! Forward names of the zone: indexed names (with CNAME chasing for ExternalName
//! services) and the names synthesised on the fly, `<dashed-ip>.<ns>.pod.<zone>`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::index::{Alias, Node};
use super::{Zone, ZoneAnswer, owned};

/// How many CNAMEs one answer may chain before we stop following (CoreDNS stops after
/// eight too). Loops are caught earlier, by name; this bounds long loop-free chains.
const MAX_CNAME_CHAIN: usize = 8;

/// The longest DNS label.
const MAX_LABEL: usize = 63;

// === indexed names ===

/// Answers `qname` (owner spelling for the records) from its node.
pub(super) fn answer_node(
    zone: &Zone,
    qname: &Name,
    node: &Node,
    qtype: RecordType,
    out: &mut ZoneAnswer,
    depth: usize,
) {
    if let Some(alias) = &node.alias {
        return follow(zone, qname, alias, qtype, out, depth);
    }
    let before = out.answers.len();
    if qtype == RecordType::ANY {
        // ANY answers every set the name owns (A, AAAA, SRV, ...), nothing synthesised.
        for set in &node.rrsets {
            out.answers
                .extend(set.records.iter().map(|r| owned(r, qname)));
            out.additionals.extend(set.additionals.iter().cloned());
        }
    } else if let Some(set) = node.rrset(qtype) {
        out.answers
            .extend(set.records.iter().map(|r| owned(r, qname)));
        out.additionals.extend(set.additionals.iter().cloned());
    }
    if out.answers.len() == before {
        out.negative(false, zone.index.soa.as_ref());
    }
}

/// An ExternalName: its CNAME, then whatever the target answers. A target inside the
/// zone (or a reverse name we know) is answered here; any other is left to the server
/// (`chase`) for A and AAAA, the types a client asks an ExternalName for.
fn follow(
    zone: &Zone,
    qname: &Name,
    alias: &Alias,
    qtype: RecordType,
    out: &mut ZoneAnswer,
    depth: usize,
) {
    out.answers.push(owned(&alias.record, qname));
    if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
        return;
    }
    let target = &alias.target;
    let looped = out
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::CNAME && r.name == *target);
    if looped || depth + 1 >= MAX_CNAME_CHAIN {
        tracing::debug!(name = %qname, target = %target, "CNAME chain loops or is too long; answer stops here");
        return;
    }
    if !zone.resolve(target, qtype, out, depth + 1)
        && matches!(qtype, RecordType::A | RecordType::AAAA)
    {
        out.chase = Some(target.clone());
    }
}

// === synthesised names ===

/// A name inside the zone that the index does not hold: a pod name (`pods insecure`:
/// any well-formed dashed address in any namespace), `<ns>.pod.<zone>` (an empty
/// non-terminal, since every namespace may hold pods), or NXDOMAIN.
pub(super) fn answer_unindexed(zone: &Zone, qname: &Name, qtype: RecordType, out: &mut ZoneAnswer) {
    let soa = zone.index.soa.as_ref();
    // Labels below the zone, nearest to the zone first.
    let mut below = qname.iter().rev().skip(zone.zone_labels);
    let under_pod = below.next().is_some_and(|l| l.eq_ignore_ascii_case(b"pod"));
    let (namespace, pod, deeper) = (below.next(), below.next(), below.next());
    match (under_pod, namespace, pod, deeper) {
        (true, Some(_), None, _) => out.negative(false, soa),
        (true, Some(_), Some(pod), None) => match pod_address(pod) {
            Some(ip) => address_answer(zone, qname, ip, qtype, out),
            None => out.negative(true, soa),
        },
        _ => out.negative(true, soa),
    }
}

/// A pod's address record, or NODATA when the question asks the other family.
fn address_answer(zone: &Zone, qname: &Name, ip: IpAddr, qtype: RecordType, out: &mut ZoneAnswer) {
    let ttl = zone.opts.ttl;
    let data = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
        _ => return out.negative(false, zone.index.soa.as_ref()),
    };
    out.answers
        .push(Record::from_rdata(qname.clone(), ttl, data));
}

/// The address a pod label spells: `10-0-0-1` (exactly three single dashes) is IPv4,
/// anything else is read as IPv6 with dashes for colons (`fd00--1`), as CoreDNS does.
pub(super) fn pod_address(label: &[u8]) -> Option<IpAddr> {
    if label.len() > MAX_LABEL {
        return None;
    }
    let dashes = label.iter().filter(|&&b| b == b'-').count();
    let double = label.windows(2).any(|w| w == b"--");
    let v4 = dashes == 3 && !double;
    let mut buf = [0u8; MAX_LABEL];
    let text = &mut buf[..label.len()];
    for (dst, &src) in text.iter_mut().zip(label) {
        *dst = match src {
            b'-' if v4 => b'.',
            b'-' => b':',
            other => other,
        };
    }
    let text = std::str::from_utf8(text).ok()?;
    if v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}
