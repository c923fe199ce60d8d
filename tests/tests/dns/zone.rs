//! The Kubernetes DNS-Based Service Discovery spec (schema 1.1.0), asked with dig.

use corridor_tests::dns::{DigReply, ZONE, svc_name};

use super::{BIG_ENDPOINTS, DUAL_IPS, PLAIN_IP, cluster, sorted};

/// The TTL of names that are not rewritten (`--ttl` default).
const TTL: u32 = 30;

/// Asserts an authoritative NOERROR with exactly `addresses` (A and AAAA) in the answer.
fn assert_addresses(reply: &DigReply, addresses: &[&str], what: &str) {
    assert_eq!(reply.status, "NOERROR", "{what}:\n{}", reply.text);
    assert_eq!(
        reply.addresses(),
        sorted(addresses),
        "{what}:\n{}",
        reply.text
    );
    assert!(
        reply.has_flag("aa"),
        "{what}: the zone's answers are authoritative:\n{}",
        reply.text
    );
}

/// Asserts NXDOMAIN (`nxdomain`) or NODATA, each with the zone's SOA in the authority.
fn assert_negative(reply: &DigReply, nxdomain: bool, what: &str) {
    let status = if nxdomain { "NXDOMAIN" } else { "NOERROR" };
    assert_eq!(reply.status, status, "{what}:\n{}", reply.text);
    assert!(
        reply.answer.is_empty(),
        "{what}: no answer expected:\n{}",
        reply.text
    );
    let soa = reply.soa();
    assert_eq!(
        soa.len(),
        1,
        "{what}: one SOA in the authority section:\n{}",
        reply.text
    );
    assert_eq!(
        soa[0].name.to_lowercase(),
        format!("{ZONE}."),
        "{what}: SOA of the zone"
    );
}

#[tokio::test]
async fn dns_version_is_a_txt_record() {
    let (_mesh, dns) = cluster("dnsver", &[]).await;
    let reply = dns.dig(&format!("dns-version.{ZONE}"), "TXT").await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.data("TXT"), ["\"1.1.0\""], "{}", reply.text);
}

#[tokio::test]
async fn cluster_ip_service_answers_its_cluster_ip() {
    let (mesh, dns) = cluster("dnsa", &[]).await;
    let name = svc_name("plain", &mesh.ns);
    let reply = dns.dig(&name, "A").await;
    assert_addresses(&reply, &[PLAIN_IP], "A of a ClusterIP service");
    assert_eq!(
        reply.ttls("A"),
        [TTL],
        "default TTL of names that are not rewritten"
    );
    assert_eq!(reply.answer[0].name, format!("{name}."));

    let over_tcp = dns
        .dig_with(&[&name, "A", "+tcp"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_addresses(&over_tcp, &[PLAIN_IP], "the same over TCP");
    assert_eq!(over_tcp.transport, "TCP");

    // An IPv4-only service has no AAAA: NODATA, not NXDOMAIN (the name exists).
    assert_negative(
        &dns.dig(&name, "AAAA").await,
        false,
        "AAAA of an IPv4-only service",
    );
}

#[tokio::test]
async fn ttl_flags_set_the_ttls() {
    let (mesh, dns) = cluster("dnsttl", &["--ttl", "17s"]).await;
    let reply = dns.dig(&svc_name("plain", &mesh.ns), "A").await;
    assert_eq!(reply.ttls("A"), [17], "--ttl 17s:\n{}", reply.text);
}

#[tokio::test]
async fn dual_stack_service_answers_a_and_aaaa() {
    let (mesh, dns) = cluster("dnsaaaa", &[]).await;
    let name = svc_name("dual", &mesh.ns);
    assert_addresses(
        &dns.dig(&name, "A").await,
        &[DUAL_IPS[0]],
        "A of a dual-stack service",
    );
    let reply = dns.dig(&name, "AAAA").await;
    assert_addresses(&reply, &[DUAL_IPS[1]], "AAAA of a dual-stack service");
    assert_eq!(reply.ttls("AAAA"), [TTL]);
}

#[tokio::test]
async fn srv_records_for_named_ports() {
    let (mesh, dns) = cluster("dnssrv", &[]).await;
    let target = format!("{}.", svc_name("plain", &mesh.ns));

    let reply = dns
        .dig(
            &format!("_http._tcp.{}", svc_name("plain", &mesh.ns)),
            "SRV",
        )
        .await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(
        reply.data("SRV"),
        [format!("0 100 80 {target}")],
        "{}",
        reply.text
    );
    let extra: Vec<_> = reply
        .additional
        .iter()
        .filter(|r| r.rtype == "A")
        .map(|r| (r.name.to_lowercase(), r.data.clone()))
        .collect();
    assert_eq!(
        extra,
        [(target.clone(), PLAIN_IP.to_string())],
        "the target's A in additional:\n{}",
        reply.text
    );

    let udp = dns
        .dig(&format!("_dns._udp.{}", svc_name("plain", &mesh.ns)), "SRV")
        .await;
    assert_eq!(
        udp.data("SRV"),
        [format!("0 100 53 {target}")],
        "UDP port:\n{}",
        udp.text
    );

    for missing in ["_http._udp", "_nope._tcp"] {
        let reply = dns
            .dig(&format!("{missing}.{}", svc_name("plain", &mesh.ns)), "SRV")
            .await;
        assert_negative(&reply, true, &format!("{missing}: no such port"));
    }
}

#[tokio::test]
async fn headless_service_answers_its_ready_endpoints() {
    let (mesh, dns) = cluster("dnshl", &[]).await;
    let db = svc_name("db", &mesh.ns);
    let reply = dns.dig(&db, "A").await;
    assert_addresses(
        &reply,
        &["10.244.1.1", "10.244.1.2", "10.244.1.3"],
        "one A per ready endpoint",
    );
    assert!(reply.ttls("A").iter().all(|t| *t == TTL), "{}", reply.text);

    assert_addresses(
        &dns.dig(&format!("db-0.{db}"), "A").await,
        &["10.244.1.1"],
        "hostname",
    );
    assert_addresses(
        &dns.dig(&format!("db-1.{db}"), "A").await,
        &["10.244.1.2"],
        "hostname",
    );
    assert_addresses(
        &dns.dig(&format!("10-244-1-3.{db}"), "A").await,
        &["10.244.1.3"],
        "an endpoint without hostname is named after its dashed IP",
    );
    assert_negative(
        &dns.dig(&format!("db-3.{db}"), "A").await,
        true,
        "a not-ready endpoint",
    );

    let db6 = svc_name("db6", &mesh.ns);
    assert_addresses(
        &dns.dig(&db6, "AAAA").await,
        &["fd00:244::1"],
        "IPv6 endpoint",
    );
    assert_addresses(
        &dns.dig(&format!("v6-0.{db6}"), "AAAA").await,
        &["fd00:244::1"],
        "IPv6 hostname",
    );

    let big = dns
        .dig_with(&[&svc_name("big", &mesh.ns), "A", "+tcp"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        big.addresses().len(),
        usize::from(BIG_ENDPOINTS),
        "{}",
        big.text
    );
}

#[tokio::test]
async fn headless_srv_per_endpoint_and_named_port() {
    let (mesh, dns) = cluster("dnshlsrv", &[]).await;
    let db = svc_name("db", &mesh.ns);
    let want = sorted([
        format!("db-0.{db}."),
        format!("db-1.{db}."),
        format!("10-244-1-3.{db}."),
    ]);
    for (port_name, port) in [("postgres", "5432"), ("metrics", "9187")] {
        let reply = dns.dig(&format!("_{port_name}._tcp.{db}"), "SRV").await;
        assert_eq!(reply.status, "NOERROR", "{}", reply.text);
        let srv: Vec<Vec<String>> = reply
            .data("SRV")
            .iter()
            .map(|d| d.split_whitespace().map(str::to_lowercase).collect())
            .collect();
        assert!(srv.iter().all(|f| f.len() == 4), "{}", reply.text);
        assert_eq!(
            sorted(srv.iter().map(|f| &f[3])),
            want,
            "{port_name}: one SRV per ready endpoint:\n{}",
            reply.text
        );
        assert!(
            srv.iter().all(|f| f[0] == "0" && f[2] == port),
            "{port_name}: priority 0, the endpoint's {port_name} port:\n{}",
            reply.text
        );
        let extra = sorted(
            reply
                .additional
                .iter()
                .filter(|r| r.rtype == "A")
                .map(|r| r.name.to_lowercase()),
        );
        assert_eq!(
            extra, want,
            "each target's A in additional:\n{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn headless_without_ready_endpoint_is_nxdomain() {
    let (mesh, dns) = cluster("dnsnoready", &[]).await;
    let reply = dns.dig(&svc_name("starting", &mesh.ns), "A").await;
    assert_negative(&reply, true, "a headless service with no ready endpoint");
}

#[tokio::test]
async fn publish_not_ready_addresses_answers_every_endpoint() {
    let (mesh, dns) = cluster("dnspnr", &[]).await;
    let peers = svc_name("peers", &mesh.ns);
    assert_addresses(
        &dns.dig(&peers, "A").await,
        &["10.244.3.1", "10.244.3.2"],
        "publishNotReadyAddresses",
    );
    assert_addresses(
        &dns.dig(&format!("p-1.{peers}"), "A").await,
        &["10.244.3.2"],
        "the not-ready one by hostname",
    );
    let srv = dns.dig(&format!("_gossip._tcp.{peers}"), "SRV").await;
    assert_eq!(srv.data("SRV").len(), 2, "{}", srv.text);
}

#[tokio::test]
async fn external_name_is_a_cname_chased_inside_the_zone() {
    let (mesh, dns) = cluster("dnscname", &[]).await;
    let alias = svc_name("alias", &mesh.ns);
    let target = format!("{}.", svc_name("plain", &mesh.ns));
    let reply = dns.dig(&alias, "A").await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(
        reply.data("CNAME"),
        std::slice::from_ref(&target),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.data("A"),
        [PLAIN_IP],
        "the CNAME chased to the service:\n{}",
        reply.text
    );
    let a = reply
        .answer
        .iter()
        .find(|r| r.rtype == "A")
        .map(|r| r.name.to_lowercase());
    assert_eq!(
        a,
        Some(target.clone()),
        "the A belongs to the CNAME's target"
    );

    let cname = dns.dig(&alias, "CNAME").await;
    assert_eq!(cname.data("CNAME"), [target], "{}", cname.text);
    assert!(
        cname.data("A").is_empty(),
        "a CNAME query gets the CNAME only:\n{}",
        cname.text
    );
}

#[tokio::test]
async fn ptr_records_for_service_and_endpoint_ips() {
    let (mesh, dns) = cluster("dnsptr", &[]).await;
    let ns = &mesh.ns;
    let cases = [
        (PLAIN_IP, svc_name("plain", ns)),
        (DUAL_IPS[0], svc_name("dual", ns)),
        (DUAL_IPS[1], svc_name("dual", ns)),
        ("10.244.1.1", format!("db-0.{}", svc_name("db", ns))),
        ("10.244.1.3", format!("10-244-1-3.{}", svc_name("db", ns))),
        ("fd00:244::1", format!("v6-0.{}", svc_name("db6", ns))),
    ];
    for (ip, name) in cases {
        let reply = dns
            .dig_with(&["-x", ip])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(reply.status, "NOERROR", "PTR of {ip}:\n{}", reply.text);
        assert_eq!(
            reply.data("PTR"),
            [format!("{name}.")],
            "PTR of {ip}:\n{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn pod_records_answer_the_address_in_the_name() {
    let (mesh, dns) = cluster("dnspod", &[]).await;
    let pod = |label: &str| format!("{label}.{}.pod.{ZONE}", mesh.ns);
    assert_addresses(
        &dns.dig(&pod("10-244-9-9"), "A").await,
        &["10.244.9.9"],
        "IPv4 pod name",
    );
    assert_addresses(
        &dns.dig(&pod("fd00--9"), "AAAA").await,
        &["fd00::9"],
        "IPv6 pod name",
    );
    assert_negative(
        &dns.dig(&pod("not-an-ip"), "A").await,
        true,
        "a pod name that is no address",
    );
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let (mesh, dns) = cluster("dnscase", &[]).await;
    let ns = mesh.ns.to_uppercase();
    let plain = format!("PLAIN.{ns}.Svc.Cluster.LOCAL");
    let reply = dns.dig(&plain, "A").await;
    assert_addresses(&reply, &[PLAIN_IP], "mixed-case service name");
    assert_eq!(
        reply.answer[0].name.to_lowercase(),
        format!("{}.", plain.to_lowercase())
    );

    assert_addresses(
        &dns.dig(&format!("DB-0.Db.{ns}.svc.cluster.local"), "A")
            .await,
        &["10.244.1.1"],
        "headless hostname",
    );
    let srv = dns
        .dig(&format!("_HTTP._TCP.plain.{ns}.svc.cluster.local"), "SRV")
        .await;
    assert_eq!(srv.data("SRV").len(), 1, "SRV:\n{}", srv.text);
    let dual = dns
        .dig(&format!("DUAL.{ns}.SVC.CLUSTER.LOCAL"), "AAAA")
        .await;
    assert_addresses(&dual, &[DUAL_IPS[1]], "AAAA");
}

#[tokio::test]
async fn nxdomain_and_nodata_are_told_apart() {
    let (mesh, dns) = cluster("dnsneg", &[]).await;
    let ns = &mesh.ns;
    let plain = svc_name("plain", ns);
    // Names that do not exist: NXDOMAIN (a client's search path moves on).
    for name in [
        svc_name("nosuch", ns),
        format!("plain.nosuch-{ns}.svc.{ZONE}"),
        format!("nosuch-{ns}.svc.{ZONE}"),
        format!("x.{plain}"),
    ] {
        assert_negative(&dns.dig(&name, "A").await, true, &name);
    }
    // Names that exist without records of the type: NODATA (NOERROR, empty answer).
    for (name, rtype) in [
        (plain.clone(), "TXT"),
        (plain.clone(), "MX"),
        (format!("{ns}.svc.{ZONE}"), "A"),
        (format!("svc.{ZONE}"), "A"),
    ] {
        assert_negative(
            &dns.dig(&name, rtype).await,
            false,
            &format!("{name} {rtype}"),
        );
    }
    let apex = dns.dig(ZONE, "SOA").await;
    assert_eq!(apex.status, "NOERROR", "{}", apex.text);
    assert_eq!(
        apex.data("SOA").len(),
        1,
        "the apex has an SOA:\n{}",
        apex.text
    );
}
