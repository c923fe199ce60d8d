//! EDNS0, truncation of large UDP answers, and the CoreDNS-compatible HTTP edges
//! (/health, /ready, /metrics).

use corridor_tests::dns::upstream::{Upstream, query};
use corridor_tests::dns::{Dns, svc_name};
use corridor_tests::mesh::RESYNC_PATIENCE;
use corridor_tests::{Mesh, PATIENCE, eventually, manifests, metrics};
use serde_json::Value;

use super::{BIG_ENDPOINTS, MID_ENDPOINTS, PLAIN_IP, cluster, objects};

/// The A data of a dnspython reply's answer.
fn answer_a(reply: &Value) -> Vec<String> {
    reply["answer"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r[2] == "A")
        .filter_map(|r| r[3].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn edns0_opt_is_answered_in_kind() {
    let (mesh, dns) = cluster("dnsedns", &[]).await;
    let plain = svc_name("plain", &mesh.ns);
    let ask = |args: Vec<&'static str>| {
        let plain = plain.clone();
        let server = dns.addr;
        async move {
            let mut all = vec!["--name", plain.as_str(), "--type", "A"];
            all.extend(args);
            query(server, &all)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
        }
    };

    let with = ask(vec!["--payload", "1232"]).await;
    assert_eq!(with["rcode"], "NOERROR", "{with}");
    assert_eq!(with["edns"], 0, "a query with OPT gets an OPT back: {with}");
    assert!(
        with["payload"].as_u64().is_some_and(|p| p >= 512),
        "the server's payload: {with}"
    );
    assert_eq!(answer_a(&with), [PLAIN_IP], "{with}");

    let without = ask(vec!["--no-edns"]).await;
    assert_eq!(without["edns"], -1, "no OPT in, no OPT out: {without}");
    assert_eq!(answer_a(&without), [PLAIN_IP], "{without}");

    let tcp = ask(vec!["--tcp"]).await;
    assert_eq!(tcp["edns"], 0, "OPT over TCP too: {tcp}");

    let unknown_option = ask(vec!["--option", "65001:c0ffee"]).await;
    assert_eq!(
        unknown_option["rcode"], "NOERROR",
        "unknown EDNS options are ignored: {unknown_option}"
    );
    assert_eq!(answer_a(&unknown_option), [PLAIN_IP]);

    let v1 = ask(vec!["--edns-version", "1"]).await;
    assert_eq!(
        v1["rcode"], "BADVERS",
        "EDNS version 1 is not supported (RFC 6891): {v1}"
    );
    assert_eq!(
        v1["edns"], 0,
        "BADVERS comes with an OPT of the version we speak: {v1}"
    );

    // dig's defaults (EDNS with a COOKIE option) and +noedns.
    let dug = dns.dig(&plain, "A").await;
    assert!(
        dug.edns
            .as_deref()
            .is_some_and(|e| e.starts_with("version: 0")),
        "{}",
        dug.text
    );
    let plain_dig = dns
        .dig_with(&[&plain, "A", "+noedns"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(plain_dig.edns, None, "{}", plain_dig.text);
    assert_eq!(plain_dig.addresses(), [PLAIN_IP]);
}

#[tokio::test]
async fn oversize_udp_answers_set_tc_and_dig_gets_all_over_tcp() {
    let (mesh, dns) = cluster("dnstc", &[]).await;
    let big = svc_name("big", &mesh.ns);
    let all = usize::from(BIG_ENDPOINTS);

    // dig's default payload is 1232 bytes; 100 A records do not fit.
    let reply = dns.dig(&big, "A").await;
    assert!(reply.retried_tcp, "TC over UDP, then TCP:\n{}", reply.text);
    assert_eq!(reply.transport, "TCP");
    assert_eq!(
        reply.addresses().len(),
        all,
        "every endpoint over TCP:\n{}",
        reply.text
    );

    let truncated = dns
        .dig_with(&[&big, "A", "+ignore"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(truncated.has_flag("tc"), "{}", truncated.text);
    assert!(truncated.addresses().len() < all, "{}", truncated.text);

    let no_edns = dns
        .dig_with(&[&big, "A", "+ignore", "+noedns"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        no_edns.has_flag("tc"),
        "512 bytes without EDNS:\n{}",
        no_edns.text
    );

    // An answer over 512 bytes that fits the 1232 dig advertises: over UDP, whole.
    let mid = svc_name("mid", &mesh.ns);
    let fits = dns.dig(&mid, "A").await;
    assert!(!fits.retried_tcp && !fits.has_flag("tc"), "{}", fits.text);
    assert_eq!(
        fits.addresses().len(),
        usize::from(MID_ENDPOINTS),
        "{}",
        fits.text
    );
    let classic = dns
        .dig_with(&[&mid, "A", "+ignore", "+noedns"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        classic.has_flag("tc"),
        "the same answer is over 512 bytes without EDNS:\n{}",
        classic.text
    );

    let py = query(dns.addr, &["--name", &big, "--no-edns"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        py["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "TC")),
        "dnspython: {py}"
    );
}

#[tokio::test]
async fn health_and_ready() {
    let mut mesh = Mesh::new("dnsready");
    mesh.write("cluster.yaml", &manifests::yaml(objects(&mesh.ns)));
    let xds = mesh.reserve_xds_addr();
    let dns = Dns::start(xds, &[]).await;

    let health = dns.get(dns.health, "/health").await;
    assert_eq!(
        (health.status.as_u16(), health.text().trim()),
        (200, "OK"),
        "/health"
    );
    let ready = dns.get(dns.ready, "/ready").await;
    assert_eq!(ready.status, 503, "no name table yet: {}", ready.text());

    mesh.start_controller().await;
    eventually(
        RESYNC_PATIENCE,
        "/ready 200 once the controller is reachable",
        || async {
            let ready = dns.get(dns.ready, "/ready").await;
            anyhow::ensure!(ready.status == 200, "{} {}", ready.status, ready.text());
            Ok(())
        },
    )
    .await;
    let reply = dns.dig(&svc_name("plain", &mesh.ns), "A").await;
    assert_eq!(reply.addresses(), [PLAIN_IP], "{}", reply.text);
    let health = dns.get(dns.health, "/health").await;
    assert_eq!(health.status, 200);
}

/// A metric, labels its samples must have, and the least their sum may be.
type Check<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

#[tokio::test]
async fn metrics_have_coredns_names() {
    let up = Upstream::start(&["www.example.test 30 A 192.0.2.10"], &[]).await;
    let to = up.addr.to_string();
    let (mesh, dns) = cluster("dnsmetrics", &["--upstream", &to]).await;
    let plain = svc_name("plain", &mesh.ns);
    for _ in 0..3 {
        dns.dig(&plain, "A").await;
    }
    dns.dig_with(&[&plain, "A", "+tcp"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    dns.dig(&svc_name("nosuch", &mesh.ns), "A").await;
    dns.dig("www.example.test", "A").await;
    dns.dig("www.example.test", "A").await; // from the cache

    let checks: &[Check<'_>] = &[
        (
            "coredns_dns_requests_total",
            &[("proto", "udp"), ("type", "A"), ("family", "1")],
            6.0,
        ),
        ("coredns_dns_requests_total", &[("proto", "tcp")], 1.0),
        ("coredns_dns_responses_total", &[("rcode", "NOERROR")], 6.0),
        ("coredns_dns_responses_total", &[("rcode", "NXDOMAIN")], 1.0),
        ("coredns_dns_request_duration_seconds_count", &[], 7.0),
        (
            "coredns_dns_request_duration_seconds_bucket",
            &[("le", "+Inf")],
            7.0,
        ),
        ("coredns_cache_hits_total", &[], 1.0),
        ("coredns_cache_misses_total", &[], 1.0),
        ("coredns_forward_requests_total", &[("to", &to)], 1.0),
        (
            "coredns_forward_responses_total",
            &[("to", &to), ("rcode", "NOERROR")],
            1.0,
        ),
        (
            "coredns_forward_request_duration_seconds_count",
            &[("to", &to)],
            1.0,
        ),
    ];
    let text = eventually(PATIENCE, "CoreDNS metrics for the queries made", || async {
        let text = dns.metrics_text().await;
        let missing: Vec<String> = checks
            .iter()
            .filter(|(name, labels, at_least)| {
                metrics::sum(&text, name, labels).is_none_or(|v| v < *at_least)
            })
            .map(|(name, labels, at_least)| format!("{name}{labels:?} >= {at_least}"))
            .collect();
        anyhow::ensure!(missing.is_empty(), "missing {missing:#?} in\n{text}");
        Ok(text)
    })
    .await;
    for label in ["server=", "zone="] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("coredns_dns_requests_total{") && l.contains(label)),
            "coredns_dns_requests_total has a {label} label:\n{text}"
        );
    }
}
