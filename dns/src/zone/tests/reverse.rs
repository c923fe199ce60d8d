//! Reverse names: PTR for service, gateway and endpoint addresses, IPv4 and IPv6.

use hickory_server::proto::rr::rdata::PTR;
use hickory_server::proto::rr::{RData, RecordType};

use super::*;
use crate::zone::reverse;

/// The PTR targets in an answer, in order.
fn ptrs(answer: &ZoneAnswer) -> Vec<String> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(PTR(target)) => Some(target.to_ascii()),
            _ => None,
        })
        .collect()
}

fn not_ours(zone: &Zone, qname: &str) -> bool {
    matches!(zone.lookup(&name(qname), RecordType::PTR), Lookup::NotOurs)
}

#[test]
fn cluster_ip_has_a_ptr_record() {
    let answer = ask(&zone(), "11.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptrs(&answer), ["ratings.default.svc.cluster.local."]);
    assert_eq!(answer.answers[0].ttl, TTL);
    assert!(
        answer.answers[0]
            .name
            .eq_case(&name("11.0.96.10.in-addr.arpa."))
    );
}

#[test]
fn gateway_ip_names_the_service_only_while_rewriting() {
    let on = ask(&zone(), "5.0.200.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptrs(&on), ["reviews.default.svc.cluster.local."]);
    assert_eq!(on.answers[0].ttl, MESHED_TTL);
    let off = Zone::new(&table(false), opts());
    assert!(not_ours(&off, "5.0.200.10.in-addr.arpa."));
    // The service's own address keeps its PTR (with the meshed TTL) either way.
    let own = ask(&off, "10.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptrs(&own), ["reviews.default.svc.cluster.local."]);
    assert_eq!(own.answers[0].ttl, MESHED_TTL);
}

#[test]
fn ipv6_reverse_names_are_32_nibbles() {
    let zone = zone();
    let qname = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.ip6.ARPA.";
    let answer = ask(&zone, qname, RecordType::PTR);
    assert_eq!(ptrs(&answer), ["reviews.default.svc.cluster.local."]);
    let endpoint = "2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        ptrs(&ask(&zone, endpoint, RecordType::PTR)),
        ["db-2.db.default.svc.cluster.local."]
    );
    // Partial or malformed nibble names are not ours.
    assert!(not_ours(&zone, "0.0.d.f.ip6.arpa."));
    let two_char = "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert!(not_ours(&zone, two_char));
}

#[test]
fn ready_endpoints_have_ptr_records_by_hostname_or_dashed_address() {
    let zone = zone();
    let host = ask(&zone, "1.0.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptrs(&host), ["db-0.db.default.svc.cluster.local."]);
    let dashed = ask(&zone, "2.0.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptrs(&dashed), ["10-1-0-2.db.default.svc.cluster.local."]);
    let of_cluster_ip = ask(&zone, "1.1.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        ptrs(&of_cluster_ip),
        ["10-1-1-1.ratings.default.svc.cluster.local."]
    );
    assert!(not_ours(&zone, "3.0.1.10.in-addr.arpa."), "not ready");
}

#[test]
fn an_address_in_several_services_has_several_ptr_records() {
    let shared = |svc: &str| Service {
        endpoints: vec![endpoint(&["10.5.0.1"], "", true, vec![])],
        ..service("default", svc, Kind::Headless)
    };
    let table = NameTable {
        services: vec![shared("one"), shared("two")],
        ..NameTable::default()
    };
    let answer = ask(
        &Zone::new(&table, opts()),
        "1.0.5.10.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(
        ptrs(&answer),
        [
            "10-5-0-1.one.default.svc.cluster.local.",
            "10-5-0-1.two.default.svc.cluster.local."
        ]
    );
}

#[test]
fn unknown_reverse_names_are_forwarded_and_known_ones_nodata_for_other_types() {
    let zone = zone();
    assert!(not_ours(&zone, "99.0.96.10.in-addr.arpa."));
    assert!(not_ours(&zone, "96.10.in-addr.arpa."));
    assert!(not_ours(&zone, "011.0.96.10.in-addr.arpa."), "leading zero");
    assert_nodata(&ask(&zone, "11.0.96.10.in-addr.arpa.", RecordType::A));
}

#[test]
fn reverse_names_parse_back_to_their_address() {
    let cases = [
        ("1.0.3.10.in-addr.arpa.", Some("10.3.0.1")),
        ("255.255.255.255.IN-ADDR.arpa.", Some("255.255.255.255")),
        ("256.0.3.10.in-addr.arpa.", None),
        ("a.0.3.10.in-addr.arpa.", None),
        ("1.0.3.10.in-addr.example.", None),
        ("1.0.3.10.11.in-addr.arpa.", None),
    ];
    for (qname, want) in cases {
        assert_eq!(reverse::parse(&name(qname)), want.map(ip), "{qname}");
    }
    for addr in ["fd00::10", "2001:db8::ff00:42:8329", "::1"] {
        let arpa = Name::from(ip(addr));
        assert_eq!(reverse::parse(&arpa), Some(ip(addr)), "{arpa}");
    }
}
