//! Names other than a service's own: the apex, ExternalName chasing, pods, negative
//! answers, and what the index does with bad entries.

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{RData, RecordType};

use super::*;

#[test]
fn dns_version_is_a_txt_record() {
    let answer = ask(&zone(), "dns-version.cluster.local.", RecordType::TXT);
    let [txt] = &answer.answers[..] else {
        panic!("{answer:?}")
    };
    let RData::TXT(data) = &txt.data else {
        panic!("{txt:?}")
    };
    assert_eq!(&*data.txt_data[0], b"1.1.0");
    assert_eq!(txt.ttl, TTL);
    assert_nodata(&ask(&zone(), "dns-version.cluster.local.", RecordType::A));
}

#[test]
fn apex_has_soa_and_ns() {
    let zone = zone();
    let soa = ask(&zone, "cluster.local.", RecordType::SOA);
    let [record] = &soa.answers[..] else {
        panic!("{soa:?}")
    };
    let RData::SOA(data) = &record.data else {
        panic!("{record:?}")
    };
    assert_eq!(data.mname, name("ns.dns.cluster.local."));
    assert_eq!(data.rname, name("hostmaster.cluster.local."));
    assert_eq!(data.serial, zone.serial());
    assert_eq!(
        (data.refresh, data.retry, data.expire, data.minimum),
        (7200, 1800, 86400, TTL)
    );

    let ns = ask(&zone, "cluster.local.", RecordType::NS);
    let [record] = &ns.answers[..] else {
        panic!("{ns:?}")
    };
    assert_eq!(
        record.data,
        RData::NS(hickory_server::proto::rr::rdata::NS(name(
            "ns.dns.cluster.local."
        )))
    );
    assert_nodata(&ask(&zone, "cluster.local.", RecordType::A));
    assert_nodata(&ask(&zone, "ns.dns.cluster.local.", RecordType::A));
}

#[test]
fn external_name_outside_the_zone_is_chased_by_the_server() {
    let zone = zone();
    let a = ask(&zone, "Ext.default.svc.cluster.local.", RecordType::A);
    let [cname] = &a.answers[..] else {
        panic!("{a:?}")
    };
    assert!(cname.name.eq_case(&name("Ext.default.svc.cluster.local.")));
    assert_eq!(
        cname.data,
        RData::CNAME(hickory_server::proto::rr::rdata::CNAME(name(
            "www.example.com."
        )))
    );
    assert_eq!(a.chase, Some(name("www.example.com.")));
    assert_eq!(a.rcode, ResponseCode::NoError);
    for qtype in [RecordType::CNAME, RecordType::TXT] {
        let answer = ask(&zone, "ext.default.svc.cluster.local.", qtype);
        assert_eq!(answer.answers.len(), 1, "{qtype}: {answer:?}");
        assert_eq!(answer.chase, None, "{qtype}");
    }
}

#[test]
fn external_name_inside_the_zone_is_chased_here() {
    let zone = zone();
    let a = ask(&zone, "alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 2, "{a:?}");
    assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
    // The target's record is owned by the name the CNAME spells.
    assert!(
        a.answers[1]
            .name
            .eq_case(&name("Ratings.Default.svc.cluster.local."))
    );
    assert_eq!(addrs(&a.answers), [ip("10.96.0.11")]);
    assert_eq!(a.chase, None);
    // Through an in-zone alias to an out-of-zone one: both CNAMEs, then the server's turn.
    let chain = ask(&zone, "to-ext.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(chain.answers.len(), 2);
    assert_eq!(chain.chase, Some(name("www.example.com.")));
    // An in-zone target that does not exist: the CNAME, then NXDOMAIN (RFC 6604).
    let gone = ask(&zone, "gone.default.svc.cluster.local.", RecordType::A);
    assert_eq!(gone.answers.len(), 1);
    assert_nxdomain(&gone);
}

#[test]
fn cname_loop_between_external_names_terminates() {
    let answer = ask(&zone(), "loop-a.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.answers.len(), 2, "{answer:?}");
    assert!(
        answer
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::CNAME)
    );
    assert_eq!(answer.chase, None);
    // A service aliasing itself stops after its own CNAME.
    let table = NameTable {
        services: vec![external("default", "me", "ME.default.svc.cluster.local")],
        ..NameTable::default()
    };
    let me = ask(
        &Zone::new(&table, opts()),
        "me.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(me.answers.len(), 1);
}

#[test]
fn pod_names_answer_the_address_they_spell() {
    let zone = zone();
    let a = ask(&zone, "10-244-1-7.anyns.pod.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.244.1.7")]);
    assert_eq!(a.answers[0].ttl, TTL);
    assert_nodata(&ask(
        &zone,
        "10-244-1-7.anyns.pod.cluster.local.",
        RecordType::AAAA,
    ));
    let v6 = ask(
        &zone,
        "fd00--1.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(addrs(&v6.answers), [ip("fd00::1")]);
    assert_nodata(&ask(
        &zone,
        "fd00--1.default.pod.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn malformed_pod_names_do_not_exist() {
    let zone = zone();
    for qname in [
        "10-244-1.default.pod.cluster.local.",
        "10-244-1-999.default.pod.cluster.local.",
        "010-244-1-7.default.pod.cluster.local.",
        "web-0.default.pod.cluster.local.",
        "x.10-244-1-7.default.pod.cluster.local.",
    ] {
        assert_nxdomain(&ask(&zone, qname, RecordType::A));
    }
    // The levels above a pod name exist for every namespace.
    assert_nodata(&ask(&zone, "default.pod.cluster.local.", RecordType::A));
    assert_nodata(&ask(&zone, "pod.cluster.local.", RecordType::A));
}

#[test]
fn missing_names_are_nxdomain_and_empty_non_terminals_nodata() {
    let zone = zone();
    for qname in [
        "svc.cluster.local.",
        "default.svc.cluster.local.",
        "dns.cluster.local.",
    ] {
        assert_nodata(&ask(&zone, qname, RecordType::A));
    }
    for qname in [
        "nope.svc.cluster.local.",
        "missing.default.svc.cluster.local.",
        "deep.reviews.default.svc.cluster.local.",
        "random.cluster.local.",
        // What a search path produces for a name already qualified.
        "reviews.default.svc.cluster.local.default.svc.cluster.local.",
    ] {
        assert_nxdomain(&ask(&zone, qname, RecordType::A));
    }
}

#[test]
fn names_outside_the_zone_are_not_ours() {
    let zone = zone();
    for qname in ["www.example.com.", "cluster.local.example.com.", "local."] {
        assert!(
            matches!(zone.lookup(&name(qname), RecordType::A), Lookup::NotOurs),
            "{qname}"
        );
    }
}

#[test]
fn any_answers_every_set_of_the_name() {
    let answer = ask(
        &zone(),
        "reviews.default.svc.cluster.local.",
        RecordType::ANY,
    );
    let types: Vec<RecordType> = answer.answers.iter().map(|r| r.record_type()).collect();
    assert!(
        types.contains(&RecordType::A) && types.contains(&RecordType::SRV),
        "{types:?}"
    );
    assert!(!types.contains(&RecordType::AAAA), "{types:?}");
}

#[test]
fn bad_entries_are_skipped() {
    let mut bad_port = cluster_ip("default", "ports", &["10.0.0.2"], vec![]);
    bad_port.ports = vec![
        port("big", 70_000, "tcp"),
        port("web", 80, "http"),
        port("ok", 81, ""),
    ];
    let table = NameTable {
        services: vec![
            cluster_ip("default", "mixed", &["nope", "10.0.0.1", ""], vec![]),
            cluster_ip("default", "Bad_Name", &["10.0.0.3"], vec![]),
            cluster_ip("", "nons", &["10.0.0.4"], vec![]),
            external("default", "ipext", "1.2.3.4"),
            external("default", "emptyext", ""),
            Service {
                kind: 42,
                ..cluster_ip("default", "kind", &["10.0.0.5"], vec![])
            },
            Service {
                endpoints: vec![endpoint(
                    &["garbage", "10.3.0.1"],
                    "Not_A_Label",
                    true,
                    vec![],
                )],
                ..service("default", "eps", Kind::Headless)
            },
            bad_port,
            // A duplicate does not replace the first.
            cluster_ip("default", "mixed", &["10.9.9.9"], vec![]),
        ],
        ..NameTable::default()
    };
    let zone = Zone::new(&table, opts());
    let mixed = ask(&zone, "mixed.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&mixed.answers), [ip("10.0.0.1")]);
    for qname in [
        "ipext.default.svc.cluster.local.",
        "emptyext.default.svc.cluster.local.",
        "kind.default.svc.cluster.local.",
    ] {
        assert_nxdomain(&ask(&zone, qname, RecordType::A));
    }
    // An unusable hostname falls back to the dashed address.
    let ep = ask(
        &zone,
        "10-3-0-1.eps.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(addrs(&ep.answers), [ip("10.3.0.1")]);
    let srv = ask(&zone, "ports.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srvs(&srv.answers),
        [(0, 100, 81, "ports.default.svc.cluster.local.".to_string())]
    );
    let ok = ask(
        &zone,
        "_ok._tcp.ports.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(srvs(&ok.answers).len(), 1);
}

#[test]
fn serial_follows_the_table() {
    assert_eq!(zone().serial(), zone().serial());
    assert_ne!(zone().serial(), Zone::new(&table(false), opts()).serial());
}
