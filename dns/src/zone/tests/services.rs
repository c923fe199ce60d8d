//! Service names: ClusterIP (with the mesh rewrite), SRV, headless services.

use hickory_server::proto::rr::RecordType;

use super::*;

#[test]
fn cluster_ip_service_answers_its_addresses_by_family() {
    let zone = zone();
    let a = ask(&zone, "ratings.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.96.0.11")]);
    assert_eq!(a.answers[0].ttl, TTL);
    assert!(a.authorities.is_empty());
    assert_nodata(&ask(
        &zone,
        "ratings.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
    let v6 = ask(&zone, "v6.other.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(addrs(&v6.answers), [ip("fd00::abcd")]);
    assert_nodata(&ask(&zone, "v6.other.svc.cluster.local.", RecordType::A));
}

#[test]
fn names_match_case_insensitively_and_echo_the_client_spelling() {
    let answer = ask(&zone(), "ReViEwS.Default.SVC.cluster.local.", RecordType::A);
    assert_eq!(addrs(&answer.answers), [ip("10.200.0.5")]);
    assert!(
        answer.answers[0]
            .name
            .eq_case(&name("ReViEwS.Default.SVC.cluster.local."))
    );
    let srv = ask(
        &zone(),
        "_HTTP._Tcp.REVIEWS.default.svc.CLUSTER.local.",
        RecordType::SRV,
    );
    assert_eq!(srvs(&srv.answers).len(), 1);
}

#[test]
fn meshed_service_answers_the_gateway_while_the_pool_is_available() {
    let zone = zone();
    let a = ask(&zone, "reviews.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.200.0.5")]);
    assert_eq!(a.answers[0].ttl, MESHED_TTL);
    // The gateway has no IPv6 address: the rewrite does not leak the real one.
    assert_nodata(&ask(
        &zone,
        "reviews.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
}

#[test]
fn meshed_service_fails_open_to_its_cluster_ips_with_the_meshed_ttl() {
    let zone = Zone::new(&table(false), opts());
    let a = ask(&zone, "reviews.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.96.0.10")]);
    assert_eq!(a.answers[0].ttl, MESHED_TTL);
    let aaaa = ask(
        &zone,
        "reviews.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(addrs(&aaaa.answers), [ip("fd00::10")]);
    assert_eq!(aaaa.answers[0].ttl, MESHED_TTL);
    // Unmeshed names keep the ordinary TTL either way.
    let a = ask(&zone, "ratings.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers[0].ttl, TTL);
}

#[test]
fn meshed_service_without_gateway_ips_fails_open() {
    let mut table = table(true);
    table.services[0].gateway_ips = vec!["not-an-ip".into()];
    let zone = Zone::new(&table, opts());
    let a = ask(&zone, "reviews.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.96.0.10")]);
    assert_eq!(a.answers[0].ttl, MESHED_TTL);
}

#[test]
fn named_ports_have_srv_records_with_the_target_in_additional() {
    let zone = zone();
    let answer = ask(
        &zone,
        "_http._tcp.reviews.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let target = "reviews.default.svc.cluster.local.".to_string();
    assert_eq!(srvs(&answer.answers), [(0, 100, 9080, target.clone())]);
    assert_eq!(answer.answers[0].ttl, MESHED_TTL);
    // The additional address is the rewritten one, with the meshed TTL.
    assert_eq!(addrs(&answer.additionals), [ip("10.200.0.5")]);
    assert_eq!(answer.additionals[0].name, name(&target));
    assert_eq!(answer.additionals[0].ttl, MESHED_TTL);

    let udp = ask(
        &zone,
        "_dns._udp.reviews.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(srvs(&udp.answers), [(0, 100, 53, target)]);
    // A port name under the wrong protocol does not exist.
    assert_nxdomain(&ask(
        &zone,
        "_http._udp.reviews.default.svc.cluster.local.",
        RecordType::SRV,
    ));
    // The SRV name exists, so other types are NODATA; so is the `_tcp` level.
    assert_nodata(&ask(
        &zone,
        "_http._tcp.reviews.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&ask(
        &zone,
        "_tcp.reviews.default.svc.cluster.local.",
        RecordType::SRV,
    ));
}

#[test]
fn srv_of_the_service_name_lists_every_port_with_shared_weight() {
    let answer = ask(
        &zone(),
        "reviews.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let target = "reviews.default.svc.cluster.local.".to_string();
    assert_eq!(
        srvs(&answer.answers),
        [
            (0, 33, 9080, target.clone()),
            (0, 33, 9090, target.clone()),
            (0, 33, 53, target)
        ]
    );
    assert_eq!(addrs(&answer.additionals), [ip("10.200.0.5")]);
}

#[test]
fn headless_service_answers_its_ready_endpoints() {
    let zone = zone();
    let a = ask(&zone, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.1.0.1"), ip("10.1.0.2")]);
    assert_eq!(a.answers[0].ttl, TTL);
    let aaaa = ask(&zone, "db.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(addrs(&aaaa.answers), [ip("fd00::1:2")]);
}

#[test]
fn headless_endpoints_are_named_by_hostname_or_dashed_address() {
    let zone = zone();
    let host = ask(&zone, "db-0.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&host.answers), [ip("10.1.0.1")]);
    let dashed = ask(
        &zone,
        "10-1-0-2.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(addrs(&dashed.answers), [ip("10.1.0.2")]);
    let v6 = ask(
        &zone,
        "db-2.db.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(addrs(&v6.answers), [ip("fd00::1:2")]);
    // Not ready: no name. Endpoints of ClusterIP services are named too (as CoreDNS).
    assert_nxdomain(&ask(
        &zone,
        "db-3.db.default.svc.cluster.local.",
        RecordType::A,
    ));
    let ep = ask(
        &zone,
        "10-1-1-1.ratings.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(addrs(&ep.answers), [ip("10.1.1.1")]);
}

#[test]
fn headless_srv_has_one_record_per_ready_endpoint_and_port() {
    let answer = ask(
        &zone(),
        "_mysql._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        srvs(&answer.answers),
        [
            (
                0,
                33,
                3306,
                "db-0.db.default.svc.cluster.local.".to_string()
            ),
            (
                0,
                33,
                3307,
                "10-1-0-2.db.default.svc.cluster.local.".to_string()
            ),
            (
                0,
                33,
                3306,
                "db-2.db.default.svc.cluster.local.".to_string()
            ),
        ]
    );
    assert_eq!(
        addrs(&answer.additionals),
        [ip("10.1.0.1"), ip("10.1.0.2"), ip("fd00::1:2")]
    );
    assert_eq!(
        answer.additionals[0].name,
        name("db-0.db.default.svc.cluster.local.")
    );
}

#[test]
fn headless_service_without_ready_endpoints_does_not_exist() {
    let zone = zone();
    assert_nxdomain(&ask(
        &zone,
        "cold.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(
        &zone,
        "cold-0.cold.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(
        &zone,
        "_mysql._tcp.cold.default.svc.cluster.local.",
        RecordType::SRV,
    ));
}

#[test]
fn readiness_is_taken_from_the_table_publish_not_ready_included() {
    // The controller marks the endpoints of a publishNotReadyAddresses service ready.
    let pnr = Service {
        endpoints: vec![endpoint(&["10.2.0.1"], "web-0", true, vec![])],
        ..service("default", "pnr", Kind::Headless)
    };
    let table = NameTable {
        services: vec![pnr],
        ..NameTable::default()
    };
    let zone = Zone::new(&table, opts());
    let a = ask(&zone, "pnr.default.svc.cluster.local.", RecordType::A);
    assert_eq!(addrs(&a.answers), [ip("10.2.0.1")]);
    // No ports: the name exists, SRV is NODATA.
    assert_nodata(&ask(
        &zone,
        "pnr.default.svc.cluster.local.",
        RecordType::SRV,
    ));
}
