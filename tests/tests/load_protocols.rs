//! `corridor-load redis` and `corridor-load dns` against real servers: Debian's
//! redis-server (the keys and counters the load wrote are read back), corridor-dns with
//! a name table from the real controller and forwarding, and the dnspython upstream
//! (which counts every query it got, per transport).

use std::net::SocketAddr;
use std::time::Duration;

use corridor_tests::Mesh;
use corridor_tests::bin::binary;
use corridor_tests::dns::objects::Svc;
use corridor_tests::dns::upstream::Upstream;
use corridor_tests::dns::{Dns, svc_name};
use corridor_tests::manifests;
use corridor_tests::redis::{RedisOptions, RedisServer, Resp};
use serde_json::Value;

/// Longest one load run may take: its second or two, a start, the drain at the end.
const RUN_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `corridor-load <line> --json --progress never` (`line` split at whitespace)
/// and returns its summary.
async fn load(line: &str) -> Value {
    let args: Vec<&str> = line.split_whitespace().collect();
    let run = tokio::process::Command::new(binary("corridor-load"))
        .args(&args)
        .args(["--json", "--progress", "never"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("corridor-load {args:?} ran past {RUN_PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("corridor-load {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "corridor-load {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: not JSON: {stdout}"));
    assert_eq!(summary["schema"], "corridor-load/summary/v1");
    summary
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// Panics unless the run had no error of any kind.
fn assert_no_errors(s: &Value) {
    for kind in ["connect", "timeout", "protocol", "status"] {
        assert_eq!(count(&s["errors"][kind]), 0, "{kind} errors: {s}");
    }
}

async fn redis() -> RedisServer {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    RedisServer::start(addr, RedisOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs one command on `server`.
async fn command(server: &RedisServer, args: &[&str]) -> Resp {
    server
        .command(args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
}

fn int(reply: &Resp) -> i64 {
    reply
        .as_int()
        .unwrap_or_else(|| panic!("{reply:?} is not an integer"))
}

// === Redis ===

#[tokio::test]
async fn redis_sets_land_in_every_key_of_the_key_space() {
    let server = redis().await;
    let addr = server.addr.to_string();
    let s = load(&format!(
        "redis --target {addr} --command-mix set:1 --keyspace 50 --value-size 16 \
         --concurrency 8 --connections 2 --rate 1000 --duration 1s"
    ))
    .await;
    assert_no_errors(&s);
    let completed = count(&s["requests"]["completed"]);
    assert!(completed >= 900, "{s}");
    assert_eq!(count(&s["statuses"]["OK"]), completed, "{s}");
    // 1,000 SETs on 50 keys: every key written (missing one has odds of 50 x 0.98^1000).
    assert_eq!(int(&command(&server, &["DBSIZE"]).await), 50);
    let value = command(&server, &["GET", "key:7"]).await;
    assert_eq!(value.as_str(), Some("x".repeat(16).as_str()), "{value:?}");

    // Reads of the same keys: answers, no errors (a miss would be a null, still OK).
    let s = load(&format!(
        "redis --target {addr} --command-mix get:60,mget:20,ping:10,set:10 --keyspace 50 \
         --mget-keys 5 --concurrency 8 --connections 2 --duration 1s"
    ))
    .await;
    assert_no_errors(&s);
    assert!(count(&s["requests"]["completed"]) > 0, "{s}");
}

#[tokio::test]
async fn redis_pipelined_incrs_are_counted_once_each() {
    let server = redis().await;
    let addr = server.addr.to_string();
    // Closed loop, 16 in flight on each of 2 connections, all on one counter.
    let s = load(&format!(
        "redis --target {addr} --command-mix incr --keyspace 1 --concurrency 16 \
         --connections 2 --duration 1s"
    ))
    .await;
    assert_no_errors(&s);
    let completed = count(&s["requests"]["completed"]);
    assert!(completed > 0, "{s}");
    assert_eq!(count(&s["requests"]["sent"]), completed, "{s}");
    // Every INCR the report counts reached the server once: no reply went astray.
    let counter = command(&server, &["GET", "counter:0"]).await;
    assert_eq!(
        counter.as_str(),
        Some(completed.to_string().as_str()),
        "{s}"
    );
}

#[tokio::test]
async fn redis_error_replies_are_status_errors_by_code() {
    let server = redis().await;
    command(&server, &["RPUSH", "key:0", "a"]).await;
    let addr = server.addr.to_string();
    let s = load(&format!(
        "redis --target {addr} --command-mix get --keyspace 1 --concurrency 4 --connections 1 \
         --rate 200 --duration 1s"
    ))
    .await;
    let completed = count(&s["requests"]["completed"]);
    assert!(completed > 0, "{s}");
    // GET of a list: -WRONGTYPE on every call.
    assert_eq!(count(&s["statuses"]["WRONGTYPE"]), completed, "{s}");
    assert_eq!(count(&s["errors"]["status"]), completed, "{s}");
    assert_eq!(count(&s["errors"]["protocol"]), 0, "{s}");
}

// === DNS ===

/// The cluster IP of `web`, the service corridor-dns answers for.
const WEB_IP: &str = "10.96.7.10";
/// Records of the dnspython upstream.
const RECORDS: &[&str] = &["www.example.test 30 A 192.0.2.10"];

/// The real controller with `web` (unmeshed, port `http` 80) in its manifests, and
/// corridor-dns on its name table with `flags`.
async fn corridor_dns(tag: &str, flags: &[&str]) -> (Mesh, Dns) {
    let mut mesh = Mesh::new(tag);
    let objects = vec![
        Svc::cluster_ip("web", &mesh.ns, &[WEB_IP])
            .port("http", 80, "TCP")
            .unmeshed()
            .into(),
    ];
    mesh.write("cluster.yaml", &manifests::yaml(objects));
    mesh.start_controller().await;
    let dns = Dns::start_ready(mesh.xds(), flags).await;
    (mesh, dns)
}

/// Statuses `NOERROR` and `NXDOMAIN` of a summary.
fn rcodes(s: &Value) -> (u64, u64) {
    let of = |k: &str| s["statuses"][k].as_u64().unwrap_or(0);
    (of("NOERROR"), of("NXDOMAIN"))
}

#[tokio::test]
async fn dns_queries_corridor_dns_for_zone_and_forwarded_names() {
    let up = Upstream::start(RECORDS, &[]).await;
    let upstream = up.addr.to_string();
    let (mesh, dns) = corridor_dns("loaddns", &["--upstream", &upstream]).await;
    let target = dns.addr.to_string();
    // Asked in turn: answer, NXDOMAIN, forwarded answer, forwarded NXDOMAIN.
    let names = [
        svc_name("web", &mesh.ns),
        svc_name("nope", &mesh.ns),
        "www.example.test".to_owned(),
        "gone.example.test".to_owned(),
    ]
    .join(",");
    for transport in ["", "--tcp"] {
        let s = load(&format!(
            "dns --target {target} --names {names} --concurrency 4 --connections 2 --rate 400 \
             --duration 1s {transport}"
        ))
        .await;
        assert_no_errors(&s);
        let completed = count(&s["requests"]["completed"]);
        assert!(completed >= 360, "{transport:?}: {s}");
        let (noerror, nxdomain) = rcodes(&s);
        assert_eq!(noerror + nxdomain, completed, "{transport:?}: {s}");
        // Every other name has an answer: the halves differ by at most one query.
        assert!(noerror.abs_diff(nxdomain) <= 1, "{transport:?}: {s}");
    }

    // SRV of the service's named port.
    let srv = format!("_http._tcp.{}", svc_name("web", &mesh.ns));
    let s = load(&format!(
        "dns --target {target} --names {srv} --qtype SRV --rate 100 --duration 1s --connections 1"
    ))
    .await;
    assert_no_errors(&s);
    assert_eq!(rcodes(&s).0, count(&s["requests"]["completed"]), "{s}");
}

#[tokio::test]
async fn dns_servfail_from_a_dead_upstream_is_a_status_error() {
    // An upstream nobody listens on: forwarded names get SERVFAIL after the timeout.
    let dead: SocketAddr = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .unwrap_or_else(|e| panic!("a free UDP port: {e}"));
    let dead = dead.to_string();
    let flags = ["--upstream", &dead, "--upstream-timeout", "200ms"];
    let (_mesh, dns) = corridor_dns("loaddnsfail", &flags).await;
    let target = dns.addr.to_string();
    let s = load(&format!(
        "dns --target {target} --names www.example.test --concurrency 8 --connections 1 \
         --rate 50 --duration 1s"
    ))
    .await;
    let completed = count(&s["requests"]["completed"]);
    assert!(completed > 0, "{s}");
    assert_eq!(count(&s["statuses"]["SERVFAIL"]), completed, "{s}");
    assert_eq!(count(&s["errors"]["status"]), completed, "{s}");
    assert_eq!(count(&s["errors"]["timeout"]), 0, "{s}");
}

#[tokio::test]
async fn dns_every_query_reaches_the_dnspython_server_once_per_transport() {
    let up = Upstream::start(RECORDS, &[]).await;
    let target = up.addr.to_string();
    let mut expected = (0, 0);
    for tcp in [false, true] {
        let transport = if tcp { "--tcp" } else { "" };
        let s = load(&format!(
            "dns --target {target} --names www.example.test --concurrency 4 --connections 2 \
             --rate 300 --duration 1s {transport}"
        ))
        .await;
        assert_no_errors(&s);
        let sent = count(&s["requests"]["sent"]);
        assert_eq!(count(&s["statuses"]["NOERROR"]), sent, "tcp={tcp}: {s}");
        if tcp {
            expected.1 += sent;
        } else {
            expected.0 += sent;
        }
        assert_eq!(
            up.counts("www.example.test").await,
            expected,
            "tcp={tcp}: {s}"
        );
    }
}
