//! Names outside the zone go to the upstreams (here the dnspython upstream): answers,
//! a cache that honours TTLs (positive and negative), TCP when the upstream truncates,
//! SERVFAIL in bounded time when upstreams are dead, failover to the next upstream.

use std::time::{Duration, Instant};

use corridor_tests::dns::svc_name;
use corridor_tests::dns::upstream::Upstream;
use corridor_tests::eventually;

use super::{OUTSIDE_NAME, cluster};

/// Given with `--upstream-timeout`.
const UPSTREAM_TIMEOUT: &str = "1s";
/// Bound on the SERVFAIL (or failover answer) when upstreams are dead, with large slack
/// over the 1 s timeout: this checks "quickly, never a hang", not the exact timer.
const DEAD_UPSTREAM_BOUND: Duration = Duration::from_secs(5);
/// The TTL of `short.example.test`: the cache must ask again after it.
const SHORT_TTL: Duration = Duration::from_secs(1);
/// Slack for the lower bound on re-asking: the upstream's and our clocks start within
/// milliseconds of each other.
const CLOCK_SLACK: Duration = Duration::from_millis(50);

const RECORDS: &[&str] = &[
    "www.example.test 30 A 192.0.2.10",
    "short.example.test 1 A 192.0.2.11",
];
const BIG: &str = "big.example.test";

async fn upstream() -> Upstream {
    Upstream::start(RECORDS, &[BIG]).await
}

#[tokio::test]
async fn forwards_and_caches_by_ttl() {
    let up = upstream().await;
    let addr = up.addr.to_string();
    let (_mesh, dns) = cluster("dnsfwd", &["--upstream", &addr]).await;

    let first = dns.dig("www.example.test", "A").await;
    assert_eq!(first.status, "NOERROR", "{}", first.text);
    assert_eq!(first.addresses(), ["192.0.2.10"], "{}", first.text);
    assert!(
        first.ttls("A")[0] <= 30 && first.ttls("A")[0] > 0,
        "{}",
        first.text
    );
    let second = dns.dig("WWW.Example.TEST", "A").await;
    assert_eq!(second.addresses(), ["192.0.2.10"], "{}", second.text);
    assert!(
        second.ttls("A")[0] <= first.ttls("A")[0],
        "a cached TTL counts down:\n{}",
        second.text
    );
    assert_eq!(
        up.asked("www.example.test").await,
        1,
        "the second query (any case) came from the cache"
    );

    // A 1 s TTL: cached for a second, then asked again.
    let started = Instant::now();
    dns.dig("short.example.test", "A").await;
    dns.dig("short.example.test", "A").await;
    let within_ttl = started.elapsed() < SHORT_TTL;
    let asked = up.asked("short.example.test").await;
    if within_ttl {
        assert_eq!(asked, 1, "two queries within the TTL: asked once");
    }
    eventually(
        Duration::from_secs(10),
        "the upstream asked again after the TTL",
        || async {
            let reply = dns.dig_with(&["short.example.test", "A"]).await?;
            anyhow::ensure!(reply.addresses() == ["192.0.2.11"], "{}", reply.text);
            let asked = up.asked("short.example.test").await;
            anyhow::ensure!(asked >= 2, "asked {asked} times");
            Ok(())
        },
    )
    .await;
    assert!(
        started.elapsed() + CLOCK_SLACK >= SHORT_TTL,
        "the answer was cached for less than its TTL ({:?})",
        started.elapsed()
    );

    // Negative answers are cached too (the upstream's SOA says 5 s).
    for _ in 0..2 {
        let nx = dns.dig("nope.example.test", "A").await;
        assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
    }
    assert_eq!(
        up.asked("nope.example.test").await,
        1,
        "the NXDOMAIN came from the cache"
    );
}

#[tokio::test]
async fn retries_over_tcp_when_the_upstream_truncates() {
    let up = upstream().await;
    let addr = up.addr.to_string();
    let (_mesh, dns) = cluster("dnsfwdtc", &["--upstream", &addr]).await;
    let reply = dns.dig(BIG, "TXT").await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    let size: usize = reply.data("TXT").iter().map(String::len).sum();
    assert!(
        size > 4_000,
        "the whole 5 KB TXT record, got {size} bytes:\n{}",
        reply.text
    );
    assert!(
        reply.retried_tcp,
        "too large for dig's UDP payload: TC, then TCP:\n{}",
        reply.text
    );
    let (_, tcp) = up.counts(BIG).await;
    assert!(
        tcp >= 1,
        "corridor-dns asked the upstream over TCP after its truncated UDP reply"
    );
}

#[tokio::test]
async fn external_name_outside_the_zone_is_chased_upstream() {
    let up = upstream().await;
    let addr = up.addr.to_string();
    let (mesh, dns) = cluster("dnsextup", &["--upstream", &addr]).await;
    let reply = dns.dig(&svc_name("outside", &mesh.ns), "A").await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(
        reply.data("CNAME"),
        [format!("{OUTSIDE_NAME}.")],
        "{}",
        reply.text
    );
    assert_eq!(
        reply.data("A"),
        ["192.0.2.10"],
        "the CNAME target resolved upstream:\n{}",
        reply.text
    );
}

/// A UDP port nothing listens on (bound, read, released): queries there are refused.
fn closed_port() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(socket);
    addr.to_string()
}

/// An upstream that swallows everything: a bound UDP socket nobody reads, and a TCP
/// listener nobody accepts on (connections succeed, then silence).
struct Silent {
    _udp: std::net::UdpSocket,
    _tcp: std::net::TcpListener,
    addr: String,
}

fn silent() -> Silent {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = udp.local_addr().unwrap_or_else(|e| panic!("{e}"));
        if let Ok(tcp) = std::net::TcpListener::bind(addr) {
            return Silent {
                _udp: udp,
                _tcp: tcp,
                addr: addr.to_string(),
            };
        }
    }
}

#[tokio::test]
async fn dead_upstreams_give_servfail_quickly() {
    let closed = closed_port();
    let silent = silent();
    for (what, upstream) in [
        ("closed port", closed.as_str()),
        ("silent upstream", silent.addr.as_str()),
    ] {
        let (mesh, mut dns) = cluster(
            "dnsdead",
            &[
                "--upstream",
                upstream,
                "--upstream-timeout",
                UPSTREAM_TIMEOUT,
            ],
        )
        .await;
        let started = Instant::now();
        // dig's own timeout is longer than the bound: the server must answer, not dig give up.
        let reply = dns
            .dig_with(&["www.example.test", "A", "+time=10"])
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        let took = started.elapsed();
        assert_eq!(reply.status, "SERVFAIL", "{what}:\n{}", reply.text);
        assert!(
            took < DEAD_UPSTREAM_BOUND,
            "{what}: SERVFAIL after {took:?}"
        );
        dns.assert_alive();
        let zone = dns.dig(&svc_name("plain", &mesh.ns), "A").await;
        assert_eq!(
            zone.status, "NOERROR",
            "{what}: the zone still answers:\n{}",
            zone.text
        );
    }
}

#[tokio::test]
async fn fails_over_to_the_next_upstream() {
    let up = upstream().await;
    let live = up.addr.to_string();
    let closed = closed_port();
    let silent = silent();
    for (what, dead) in [
        ("closed port first", closed.as_str()),
        ("silent upstream first", silent.addr.as_str()),
    ] {
        let (_mesh, dns) = cluster(
            "dnsfailover",
            &[
                "--upstream",
                dead,
                "--upstream",
                &live,
                "--upstream-timeout",
                UPSTREAM_TIMEOUT,
            ],
        )
        .await;
        // Several names: a server that spreads queries over upstreams must fail over for each.
        for i in 0..3 {
            let name = if i % 2 == 0 {
                "www.example.test"
            } else {
                "WWW.example.test"
            };
            let started = Instant::now();
            let reply = dns
                .dig_with(&[name, "A", "+time=10", "+nocookie"])
                .await
                .unwrap_or_else(|e| panic!("{what}: {e:#}"));
            assert_eq!(reply.addresses(), ["192.0.2.10"], "{what}:\n{}", reply.text);
            assert!(
                started.elapsed() < DEAD_UPSTREAM_BOUND,
                "{what}: answer after {:?}",
                started.elapsed()
            );
        }
    }
    assert!(up.asked("www.example.test").await >= 1);
}
