//! Tests of the zone: one or more per rule of the spec, against a small cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod names;
mod reverse;
mod services;

use std::net::IpAddr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use corridor_proto::corridor::dns::v1::service::Kind;
use corridor_proto::corridor::dns::v1::{Endpoint, NameTable, Port, Service};

use super::{Lookup, Zone, ZoneAnswer, ZoneOptions};

const TTL: u32 = 30;
const MESHED_TTL: u32 = 5;

fn opts() -> ZoneOptions {
    ZoneOptions {
        zone: name("cluster.local."),
        ttl: TTL,
        meshed_ttl: MESHED_TTL,
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn port(name: &str, number: u32, protocol: &str) -> Port {
    Port {
        name: name.into(),
        port: number,
        protocol: protocol.into(),
    }
}

fn endpoint(addresses: &[&str], hostname: &str, ready: bool, ports: Vec<Port>) -> Endpoint {
    Endpoint {
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        hostname: hostname.into(),
        ready,
        ports,
    }
}

fn service(ns: &str, name: &str, kind: Kind) -> Service {
    Service {
        namespace: ns.into(),
        name: name.into(),
        kind: kind as i32,
        ..Service::default()
    }
}

fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: Vec<Port>) -> Service {
    Service {
        cluster_ips: ips.iter().map(|a| a.to_string()).collect(),
        ports,
        ..service(ns, name, Kind::ClusterIp)
    }
}

fn external(ns: &str, name: &str, target: &str) -> Service {
    Service {
        external_name: target.into(),
        ..service(ns, name, Kind::ExternalName)
    }
}

/// The cluster most tests ask about.
fn table(gateway_available: bool) -> NameTable {
    let reviews = Service {
        gateway_ips: vec!["10.200.0.5".into()],
        meshed: true,
        ..cluster_ip(
            "default",
            "reviews",
            &["10.96.0.10", "fd00::10"],
            vec![
                port("http", 9080, "TCP"),
                port("", 9090, "tcp"),
                port("dns", 53, "udp"),
            ],
        )
    };
    let ratings = Service {
        endpoints: vec![endpoint(
            &["10.1.1.1"],
            "",
            true,
            vec![port("http", 8080, "tcp")],
        )],
        ..cluster_ip(
            "default",
            "ratings",
            &["10.96.0.11"],
            vec![port("http", 8080, "tcp")],
        )
    };
    let mysql = vec![port("mysql", 3306, "tcp")];
    let db = Service {
        endpoints: vec![
            endpoint(&["10.1.0.1"], "db-0", true, mysql.clone()),
            endpoint(&["10.1.0.2"], "", true, vec![port("mysql", 3307, "tcp")]),
            endpoint(&["fd00::1:2"], "db-2", true, mysql.clone()),
            endpoint(&["10.1.0.3"], "db-3", false, mysql.clone()),
        ],
        ..service("default", "db", Kind::Headless)
    };
    let cold = Service {
        endpoints: vec![endpoint(&["10.1.0.9"], "cold-0", false, mysql)],
        ..service("default", "cold", Kind::Headless)
    };
    NameTable {
        zone: "cluster.local".into(),
        gateway_available,
        services: vec![
            reviews,
            ratings,
            db,
            cold,
            external("default", "ext", "www.example.com"),
            external("default", "alias", "Ratings.Default.svc.cluster.local."),
            external("default", "to-ext", "ext.default.svc.cluster.local"),
            external("default", "loop-a", "loop-b.default.svc.cluster.local"),
            external("default", "loop-b", "loop-a.default.svc.cluster.local"),
            external("default", "gone", "nothing.default.svc.cluster.local"),
            cluster_ip("other", "v6", &["fd00::abcd"], vec![]),
        ],
    }
}

fn zone() -> Zone {
    Zone::new(&table(true), opts())
}

fn ask(zone: &Zone, qname: &str, qtype: RecordType) -> ZoneAnswer {
    match zone.lookup(&name(qname), qtype) {
        Lookup::Answer(answer) => answer,
        Lookup::NotOurs => panic!("{qname} {qtype}: not ours"),
    }
}

/// The addresses in `records`, in order.
fn addrs(records: &[Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `(priority, weight, port, target)` of every SRV record.
fn srvs(records: &[Record]) -> Vec<(u16, u16, u16, String)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((srv.priority, srv.weight, srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect()
}

/// Asserts NOERROR with no answer and the zone's SOA in authority.
fn assert_nodata(answer: &ZoneAnswer) {
    assert_eq!(answer.rcode, ResponseCode::NoError, "{answer:?}");
    assert!(answer.answers.is_empty(), "{answer:?}");
    assert_soa(answer);
}

/// Asserts NXDOMAIN with the zone's SOA in authority.
fn assert_nxdomain(answer: &ZoneAnswer) {
    assert_eq!(answer.rcode, ResponseCode::NXDomain, "{answer:?}");
    assert_soa(answer);
}

fn assert_soa(answer: &ZoneAnswer) {
    let [soa] = &answer.authorities[..] else {
        panic!("expected one SOA in authority: {answer:?}");
    };
    assert_eq!(soa.name, name("cluster.local."));
    assert_eq!(soa.ttl, TTL);
    let RData::SOA(data) = &soa.data else {
        panic!("not a SOA: {soa:?}")
    };
    assert_eq!(data.minimum, TTL);
}

/// The name map is probed once per query and each probe touches an entry: entries must
/// stay a couple of cache lines (an inline CNAME record once made them 456 bytes).
#[test]
fn name_map_entries_stay_small() {
    let entry = std::mem::size_of::<(Name, super::index::Node)>();
    assert!(entry <= 192, "(Name, Node) is {entry} bytes");
}
