//! Meshed names answer their gateway address while the gateway pool is available, their
//! real ClusterIP again when it is not (fail-open); the last table keeps answering while
//! the controller is away.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use corridor_tests::dns::objects::{Ep, Slice, Svc};
use corridor_tests::dns::{Dns, svc_name};
use corridor_tests::manifests;
use corridor_tests::mesh::RESYNC_PATIENCE;
use corridor_tests::{Mesh, eventually};

use super::{PLAIN_IP, WEB_IP, WEB_PORT, objects};

/// TTL of rewritten (meshed) answers (`--meshed-ttl` default).
const MESHED_TTL: u32 = 5;
/// How soon names must answer their ClusterIP again once the only gateway is gone
/// (issue 3's acceptance: "within 1 s").
const FAIL_OPEN_WITHIN: Duration = Duration::from_secs(1);
/// How long the test keeps asking after the controller is killed.
const CONTROLLER_AWAY_FOR: Duration = Duration::from_secs(3);

/// Controller, gateway and a ready corridor-dns on [`objects`]; returns the gateway address
/// of `web`.
async fn meshed_cluster(tag: &str, flags: &[&str]) -> (Mesh, Dns, IpAddr) {
    let mut mesh = Mesh::new(tag);
    mesh.write("cluster.yaml", &manifests::yaml(objects(&mesh.ns)));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let gateway = mesh.service_addr("web", WEB_PORT).await.ip();
    let dns = Dns::start_ready(mesh.xds(), flags).await;
    (mesh, dns, gateway)
}

#[tokio::test]
async fn meshed_name_answers_the_gateway_address() {
    let (mesh, dns, gateway) = meshed_cluster("dnsmesh", &[]).await;
    let web = svc_name("web", &mesh.ns);
    let reply = dns
        .wait_for(&web, "A", "web to answer its gateway address", |r| {
            r.addresses() == [gateway.to_string()]
        })
        .await;
    assert_eq!(
        reply.ttls("A"),
        [MESHED_TTL],
        "rewritten answers carry the short TTL:\n{}",
        reply.text
    );

    // The SRV target resolves to the gateway address too.
    let srv = dns.dig(&format!("_http._tcp.{web}"), "SRV").await;
    assert_eq!(
        srv.data("SRV"),
        [format!("0 100 {WEB_PORT} {web}.")],
        "{}",
        srv.text
    );
    let extra: Vec<&str> = srv
        .additional
        .iter()
        .filter(|r| r.rtype == "A")
        .map(|r| r.data.as_str())
        .collect();
    assert_eq!(extra, [gateway.to_string()], "{}", srv.text);

    // Unmeshed names keep their records and TTL.
    let plain = dns.dig(&svc_name("plain", &mesh.ns), "A").await;
    assert_eq!(
        (plain.addresses(), plain.ttls("A")),
        (vec![PLAIN_IP.to_string()], vec![30]),
        "{}",
        plain.text
    );
}

#[tokio::test]
async fn meshed_ttl_flag_sets_the_rewritten_ttl() {
    let (mesh, dns, gateway) = meshed_cluster("dnsmttl", &["--meshed-ttl", "2s"]).await;
    let reply = dns
        .wait_for(
            &svc_name("web", &mesh.ns),
            "A",
            "web to answer its gateway address",
            |r| r.addresses() == [gateway.to_string()],
        )
        .await;
    assert_eq!(reply.ttls("A"), [2], "--meshed-ttl 2s:\n{}", reply.text);
}

#[tokio::test]
async fn without_a_gateway_meshed_names_answer_their_cluster_ip() {
    // The controller runs, no gateway ever connects: the pool is not available.
    let (mesh, dns) = super::cluster("dnsnogw", &[]).await;
    let reply = dns.dig(&svc_name("web", &mesh.ns), "A").await;
    assert_eq!(
        reply.addresses(),
        [WEB_IP],
        "fail-open from the start:\n{}",
        reply.text
    );
}

#[tokio::test]
async fn fail_open_when_the_gateway_goes_and_back_when_it_returns() {
    let (mut mesh, dns, gateway) = meshed_cluster("dnsfailopen", &[]).await;
    let web = svc_name("web", &mesh.ns);
    dns.wait_for(&web, "A", "web to answer its gateway address", |r| {
        r.addresses() == [gateway.to_string()]
    })
    .await;

    mesh.gateway().kill();
    let killed = Instant::now();
    let reply = eventually(
        Duration::from_secs(10),
        "web to answer its ClusterIP",
        || async {
            let reply = dns.dig_with(&[&web, "A"]).await?;
            if reply.addresses() != [WEB_IP] {
                anyhow::bail!("still {:?}", reply.addresses());
            }
            Ok(reply)
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= FAIL_OPEN_WITHIN,
        "the only gateway was killed; names answered their ClusterIP after {took:?}, more than {FAIL_OPEN_WITHIN:?}"
    );
    assert_eq!(reply.status, "NOERROR");

    mesh.start_gateway().await;
    let gateway = mesh.service_addr("web", WEB_PORT).await.ip();
    let back = dns
        .wait_for(&web, "A", "web to answer the gateway address again", |r| {
            r.addresses() == [gateway.to_string()]
        })
        .await;
    assert_eq!(back.ttls("A"), [MESHED_TTL], "{}", back.text);
}

#[tokio::test]
async fn answers_from_the_last_table_while_the_controller_is_away() {
    let (mut mesh, dns, gateway) = meshed_cluster("dnsnoctl", &[]).await;
    let web = svc_name("web", &mesh.ns);
    let plain = svc_name("plain", &mesh.ns);
    dns.wait_for(&web, "A", "web to answer its gateway address", |r| {
        r.addresses() == [gateway.to_string()]
    })
    .await;

    mesh.kill_controller();
    let until = Instant::now() + CONTROLLER_AWAY_FOR;
    while Instant::now() < until {
        let reply = dns.dig(&plain, "A").await;
        assert_eq!(
            reply.addresses(),
            [PLAIN_IP],
            "controller away:\n{}",
            reply.text
        );
        let db = dns
            .dig(&format!("db-0.{}", svc_name("db", &mesh.ns)), "A")
            .await;
        assert_eq!(
            db.addresses(),
            ["10.244.1.1"],
            "controller away:\n{}",
            db.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = dns.get(dns.ready, "/ready").await;
    assert_eq!(
        ready.status,
        200,
        "a loaded table stays ready without the controller: {}",
        ready.text()
    );

    // A change made while it was away arrives once the controller is back.
    let added = Svc::cluster_ip("added", &mesh.ns, &["10.96.1.99"])
        .port("http", 80, "TCP")
        .unmeshed();
    mesh.write("added.yaml", &manifests::yaml([added.into()]));
    mesh.start_controller().await;
    eventually(
        RESYNC_PATIENCE,
        "the service added while the controller was away",
        || async {
            let reply = dns.dig_with(&[&svc_name("added", &mesh.ns), "A"]).await?;
            if reply.addresses() != ["10.96.1.99"] {
                anyhow::bail!("{}", reply.text);
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn manifest_changes_reach_dns() {
    let (mesh, dns) = super::cluster("dnsedit", &[]).await;
    let ns = mesh.ns.clone();
    let added = Svc::cluster_ip("added", &ns, &["10.96.1.98"])
        .port("http", 80, "TCP")
        .unmeshed();
    mesh.write("added.yaml", &manifests::yaml([added.into()]));
    // `starting`'s endpoint becomes ready: its name answers instead of NXDOMAIN.
    let ready = Slice::new("starting-1", &ns, "starting")
        .port("http", 80, "TCP")
        .endpoint(Ep::new("10.244.2.1"));
    let mut edited = objects(&ns);
    for object in &mut edited {
        if object["kind"] == "EndpointSlice" && object["metadata"]["name"] == "starting-1" {
            *object = ready.clone().into();
        }
    }
    mesh.write("cluster.yaml", &manifests::yaml(edited));
    dns.wait_for(&svc_name("added", &ns), "A", "the added service", |r| {
        r.addresses() == ["10.96.1.98"]
    })
    .await;
    dns.wait_for(
        &svc_name("starting", &ns),
        "A",
        "the endpoint that became ready",
        |r| r.addresses() == ["10.244.2.1"],
    )
    .await;

    mesh.remove("added.yaml");
    dns.wait_for(
        &svc_name("added", &ns),
        "A",
        "the removed service to be NXDOMAIN",
        |r| r.status == "NXDOMAIN",
    )
    .await;
}
