//! Reverse names (`d.c.b.a.in-addr.arpa.`, 32 nibbles `.ip6.arpa.`): parsed back into the
//! address without allocating, then looked up among the addresses the table knows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::{Name, Record, RecordType};

use super::{ZoneAnswer, owned};

/// Labels of a full IPv4 reverse name: four octets, `in-addr`, `arpa`.
const V4_LABELS: usize = 6;
/// Labels of a full IPv6 reverse name: 32 nibbles, `ip6`, `arpa`.
const V6_LABELS: usize = 34;

/// The address a full reverse name stands for; `None` for anything else (other names,
/// partial reverse names, labels that are not canonical octets or nibbles).
pub(super) fn parse(name: &Name) -> Option<IpAddr> {
    let mut labels = name.iter();
    let arpa = labels.next_back()?;
    if !arpa.eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    let kind = labels.next_back()?;
    if kind.eq_ignore_ascii_case(b"in-addr") && name.iter().len() == V4_LABELS {
        let mut octets = [0u8; 4];
        // The leftmost label is the last octet.
        for (slot, label) in octets.iter_mut().rev().zip(labels) {
            *slot = octet(label)?;
        }
        Some(IpAddr::V4(Ipv4Addr::from(octets)))
    } else if kind.eq_ignore_ascii_case(b"ip6") && name.iter().len() == V6_LABELS {
        let mut value: u128 = 0;
        // The leftmost label is the least significant nibble.
        for (shift, label) in (0..32u32).zip(labels) {
            let [digit] = label else { return None };
            let nibble = char::from(*digit).to_digit(16)?;
            value |= u128::from(nibble) << (4 * shift);
        }
        Some(IpAddr::V6(Ipv6Addr::from(value)))
    } else {
        None
    }
}

/// A decimal octet as a reverse name writes it: no sign, no leading zero.
fn octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for &b in label {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(b - b'0');
    }
    u8::try_from(value).ok()
}

/// Answers a reverse name we know: its PTR records, or NODATA for other types.
pub(super) fn answer(
    qname: &Name,
    ptrs: &[Record],
    qtype: RecordType,
    soa: Option<&Record>,
    out: &mut ZoneAnswer,
) {
    if matches!(qtype, RecordType::PTR | RecordType::ANY) {
        out.answers.extend(ptrs.iter().map(|r| owned(r, qname)));
    } else {
        out.negative(false, soa);
    }
}
