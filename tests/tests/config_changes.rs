//! Editing the manifests while traffic flows: changes take effect in under a second, no
//! request fails during the change, and a bad manifest leaves the last good config serving.

use std::time::{Duration, Instant};

use corridor_tests::manifests::{
    self, Destination, DestinationRule, HttpRoute, Match, ServicePort, VirtualService,
};
use corridor_tests::mesh::listener_addr;
use corridor_tests::{
    Backend, HttpClient, Load, Mesh, PATIENCE, Reply, eventually, time_until_change, wait_for_reply,
};

const PORT: u16 = 8080;
/// The acceptance bound: a manifest edit is visible in traffic within one second.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);
/// Concurrent keep-alive clients of the steady load.
const CLIENTS: usize = 4;
/// Requests the load completes before and after a change, so that the change happens in
/// the middle of traffic.
const LOAD_MARGIN: u64 = 300;

fn web_port() -> ServicePort {
    ServicePort::new("http-web", PORT)
}

fn subsets(ns: &str) -> serde_json::Value {
    DestinationRule::new("web", ns, "web")
        .subset("v1", &[("version", "v1")])
        .subset("v2", &[("version", "v2")])
        .into()
}

fn split(ns: &str, v1: u32, v2: u32) -> String {
    manifests::yaml([VirtualService::new("web-routes", ns)
        .host("web")
        .http(
            HttpRoute::new()
                .to(Destination::new("web").subset("v1").weight(v1))
                .to(Destination::new("web").subset("v2").weight(v2)),
        )
        .into()])
}

/// Starts `web` on backends a (v1) and b (v2), plus a DestinationRule and `vs.yaml`.
async fn web_mesh(
    tag: &str,
    vs: impl Fn(&str) -> String,
) -> (Mesh, Vec<Backend>, std::net::SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let backends = mesh.backends(&["a", "b"]).await;
    let mut objects = mesh.service_objects(
        "web",
        web_port(),
        &[(&backends[0], "v1"), (&backends[1], "v2")],
    );
    objects.push(subsets(&mesh.ns));
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.write("vs.yaml", &vs(&mesh.ns));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    wait_for_reply(&HttpClient::http1(), addr, "/", "a first 200", |r| {
        r.status == 200
    })
    .await;
    (mesh, backends, addr)
}

/// Starts `n` slow requests (each on its own connection, each with a unique `slow=` tag)
/// and waits until every one of them has reached one of `backends`, so that they are
/// surely in flight during the change that follows.
async fn slow_requests(
    addr: std::net::SocketAddr,
    backends: &[Backend],
    n: usize,
    path: &str,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Reply>>> {
    let tag = corridor_tests::unique_suffix();
    let targets: Vec<String> = (0..n).map(|i| format!("{path}?slow={tag}{i}")).collect();
    let requests = targets
        .iter()
        .map(|target| {
            let target = target.clone();
            tokio::spawn(async move { HttpClient::http1().get(addr, &target).await })
        })
        .collect();
    eventually(PATIENCE, "the slow requests to reach the backends", || {
        let arrived = targets
            .iter()
            .filter(|t| backends.iter().any(|b| b.received(t)))
            .count();
        async move {
            anyhow::ensure!(arrived == n, "{arrived} of {n} arrived");
            Ok(())
        }
    })
    .await;
    requests
}

/// Starts slow requests one at a time until one of them is at `target` (at most 32), so
/// that at least one request is surely in flight on that endpoint during the change.
async fn slow_requests_reaching(
    addr: std::net::SocketAddr,
    backends: &[Backend],
    target: &Backend,
    path: &str,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Reply>>> {
    let mut requests = Vec::new();
    for _ in 0..32 {
        requests.extend(slow_requests(addr, backends, 1, path).await);
        if target.requests_matching(path) > 0 {
            return requests;
        }
    }
    panic!("32 slow requests and none reached {}", target.name());
}

/// Waits for the slow requests and asserts that every one of them succeeded.
async fn assert_all_ok(
    what: &str,
    requests: Vec<tokio::task::JoinHandle<anyhow::Result<Reply>>>,
) -> Vec<Reply> {
    let mut replies = Vec::new();
    for request in requests {
        match request.await {
            Ok(Ok(reply)) if reply.status == 200 => replies.push(reply),
            Ok(Ok(reply)) => panic!(
                "{what}: an in-flight request got {}: {}",
                reply.status,
                reply.text()
            ),
            Ok(Err(e)) => panic!("{what}: an in-flight request failed: {e:#}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    replies
}

fn assert_fast(what: &str, elapsed: Duration) {
    eprintln!("{what} took effect after {elapsed:?}");
    assert!(
        elapsed < PROPAGATION_BOUND,
        "{what} took {elapsed:?} to take effect (bound {PROPAGATION_BOUND:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_weights_apply_within_a_second_under_load() {
    let (mesh, backends, addr) = web_mesh("weights", |ns| split(ns, 100, 0)).await;
    let load = Load::start(addr, "/", CLIENTS);
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // Slow requests that are in flight (already at the backend) when the push lands.
    let slow = slow_requests(addr, &backends, 3, "/delay/1500").await;

    let written = Instant::now();
    mesh.write("vs.yaml", &split(&mesh.ns, 0, 100));
    let probe = HttpClient::http1();
    let elapsed =
        time_until_change(&probe, addr, "/", written, PATIENCE, |r| r.backend() == "b").await;
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;
    let slow = assert_all_ok("a push of new weights", slow).await;
    assert!(
        slow.iter().all(|r| r.backend() == "a"),
        "in-flight requests finish where they started"
    );

    report.assert_no_failures("while the weights changed");
    assert_fast("100/0 → 0/100", elapsed);
    let before: Vec<_> = report.outcomes.iter().filter(|o| o.end < written).collect();
    assert!(
        before.iter().all(|o| o.backend() == Some("a")),
        "before the change, v2 had weight 0"
    );
    let tail = &report.outcomes[report.outcomes.len() - 100..];
    assert!(
        tail.iter().all(|o| o.backend() == Some("b")),
        "after the change v1 has weight 0, yet it still served among the last 100 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_service_applies_within_a_second_under_load() {
    let (mut mesh, _backends, addr) = web_mesh("newsvc", |ns| split(ns, 50, 50)).await;
    let extra = mesh.backends(&["c"]).await.remove(0);
    let extra_yaml = manifests::yaml(mesh.service_objects(
        "extra",
        ServicePort::new("http-extra", 9090),
        &[(&extra, "v1")],
    ));
    let load = Load::start(addr, "/", CLIENTS);
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let written = Instant::now();
    mesh.write("extra.yaml", &extra_yaml);
    let (admin, name, client) = (
        mesh.admin(),
        mesh.listener_name("extra", 9090),
        HttpClient::http1(),
    );
    let elapsed = eventually(PATIENCE, "the new service to answer", || {
        let (name, client) = (name.clone(), client.clone());
        async move {
            let extra_addr = listener_addr(&client, admin, &name).await?;
            let reply = client.get(extra_addr, "/").await?;
            anyhow::ensure!(
                reply.status == 200 && reply.backend() == "c",
                "got {} from {:?}",
                reply.status,
                reply.backend()
            );
            Ok(written.elapsed())
        }
    })
    .await;
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;

    report.assert_no_failures("on an existing service while a new one was added");
    assert_fast("a new service", elapsed);
    assert!(extra.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_endpoint_applies_within_a_second_under_load() {
    let (mesh, backends, addr) = web_mesh("rmep", |ns| split(ns, 50, 50)).await;
    // Plain round robin over both endpoints: no VirtualService.
    mesh.remove("vs.yaml");
    let load = Load::start(addr, "/", CLIENTS);
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Slow requests in flight when b is removed, one of them on b.
    let slow = slow_requests_reaching(addr, &backends, &backends[1], "/delay/1000").await;

    let written = Instant::now();
    let only_a = mesh.service_objects("web", web_port(), &[(&backends[0], "v1")]);
    mesh.write("web.yaml", &manifests::yaml(only_a));
    // The change has taken effect once b stays quiet while the load goes on.
    let (mut last_count, mut mark) = (backends[1].requests(), load.completed());
    eventually(
        PATIENCE,
        "the removed endpoint to stop receiving requests",
        || {
            let count = backends[1].requests();
            if count != last_count {
                (last_count, mark) = (count, load.completed());
            }
            let quiet_for = load.completed() - mark;
            async move {
                anyhow::ensure!(quiet_for >= 200, "b quiet for only {quiet_for} requests");
                Ok(())
            }
        },
    )
    .await;
    let slow = assert_all_ok("removing an endpoint", slow).await;
    assert!(
        slow.iter().any(|r| r.backend() == "b"),
        "no in-flight request was on the removed endpoint"
    );
    // The pod goes away for good: nothing may be sent to it any more.
    backends[1].stop();
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;

    report.assert_no_failures("while an endpoint was removed");
    let before = report
        .outcomes
        .iter()
        .filter(|o| o.end < written && o.backend() == Some("b"))
        .count();
    assert!(
        before > 0,
        "b served nothing before its removal: the test proves nothing"
    );
    let last_b = report
        .outcomes
        .iter()
        .filter(|o| o.backend() == Some("b"))
        .map(|o| o.start)
        .max()
        .unwrap_or(written);
    assert_fast(
        "removing an endpoint",
        last_b.saturating_duration_since(written),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_route_keeps_the_last_good_config() {
    let (mut mesh, _backends, addr) = web_mesh("badvs", |ns| split(ns, 100, 0)).await;
    let load = Load::start(addr, "/", 2);
    load.wait_for_more(100, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Same VirtualService, now sending everything to v2, but with an unparseable regex.
    let bad = manifests::yaml([VirtualService::new("web-routes", &mesh.ns)
        .host("web")
        .http(
            HttpRoute::new()
                .matching(Match::new().uri_regex("/books/([0-9"))
                .to(Destination::new("web").subset("v2")),
        )
        .http(HttpRoute::new().to(Destination::new("web").subset("v2")))
        .into()]);
    mesh.write("vs.yaml", &bad);
    let log = mesh.controller_log();
    let line = eventually(
        PATIENCE,
        "the controller to log why it rejected vs.yaml",
        || {
            let found = log.find(&["vs.yaml", "web-routes"]);
            async move {
                found.ok_or_else(|| anyhow::anyhow!("no log line names vs.yaml and web-routes"))
            }
        },
    )
    .await;
    assert!(
        line.to_lowercase().contains("regex"),
        "the log line should say the regex is the problem: {line}"
    );

    // Give a (wrong) push every chance to arrive: more traffic, all still on v1.
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let probe = HttpClient::http1();
    probe
        .assert_all_served_by(addr, 20, "a", "the last good routes must stay")
        .await;
    let report = load.stop().await;
    report.assert_no_failures("after an invalid VirtualService");
    assert_eq!(
        report.by_backend().keys().collect::<Vec<_>>(),
        vec!["a"],
        "the bad VirtualService leaked"
    );

    // One line, not one per rescan: an unrelated change later does not repeat it.
    let extra = mesh.backends(&["c"]).await.remove(0);
    mesh.write(
        "extra.yaml",
        &manifests::yaml(mesh.service_objects(
            "extra",
            ServicePort::new("http", 9090),
            &[(&extra, "v1")],
        )),
    );
    let extra_addr = mesh.service_addr("extra", 9090).await;
    wait_for_reply(&probe, extra_addr, "/", "an unrelated new service", |r| {
        r.backend() == "c"
    })
    .await;
    let lines: Vec<String> = log
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("vs.yaml") && l.contains("web-routes"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the rejection should be logged once: {lines:#?}"
    );

    // The file is still watched: fixing it applies.
    mesh.write("vs.yaml", &split(&mesh.ns, 0, 100));
    wait_for_reply(
        &probe,
        addr,
        "/",
        "the fixed VirtualService to apply",
        |r| r.backend() == "b",
    )
    .await;
}

#[tokio::test]
async fn unparseable_yaml_keeps_everything_else_serving() {
    let (mut mesh, _backends, addr) = web_mesh("badyaml", |ns| split(ns, 100, 0)).await;
    mesh.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: [name: oops\n  spec: {{\n",
    );
    let log = mesh.controller_log();
    eventually(
        PATIENCE,
        "the controller to log a line naming broken.yaml",
        || {
            let found = log.find(&["broken.yaml"]);
            async move { found.ok_or_else(|| anyhow::anyhow!("no log line names broken.yaml")) }
        },
    )
    .await;
    let client = HttpClient::http1();
    client
        .assert_all_served_by(addr, 10, "a", "every request")
        .await;
    // Other files keep being applied while the broken one is there.
    let extra = mesh.backends(&["c"]).await.remove(0);
    mesh.write(
        "extra.yaml",
        &manifests::yaml(mesh.service_objects(
            "extra",
            ServicePort::new("http", 9090),
            &[(&extra, "v1")],
        )),
    );
    let extra_addr = mesh.service_addr("extra", 9090).await;
    wait_for_reply(
        &client,
        extra_addr,
        "/",
        "the new service next to a broken file",
        |r| r.backend() == "c",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_service_stops_listening_after_in_flight_requests() {
    let (mut mesh, _backends, addr) = web_mesh("rmsvc", |ns| split(ns, 50, 50)).await;
    let other = mesh.backends(&["c"]).await.remove(0);
    mesh.write(
        "other.yaml",
        &manifests::yaml(mesh.service_objects(
            "other",
            ServicePort::new("http", 9090),
            &[(&other, "v1")],
        )),
    );
    let other_addr = mesh.service_addr("other", 9090).await;
    wait_for_reply(
        &HttpClient::http1(),
        other_addr,
        "/",
        "the second service",
        |r| r.backend() == "c",
    )
    .await;
    let load = Load::start(other_addr, "/", 2);
    load.wait_for_more(100, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let slow = slow_requests(other_addr, std::slice::from_ref(&other), 2, "/delay/1000").await;

    // Remove `web` (its Service and endpoints); `other` must not notice.
    mesh.remove("web.yaml");
    mesh.remove("vs.yaml");
    eventually(
        PATIENCE,
        "the removed service's listener to close",
        || async move {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => anyhow::bail!("{addr} still accepts connections"),
                Err(_) => Ok(()),
            }
        },
    )
    .await;
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;
    report.assert_no_failures("on another service while one was removed");
    assert_all_ok("removing another service", slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_listener_finishes_its_in_flight_requests() {
    let (mesh, backends, addr) = web_mesh("rmlis", |ns| split(ns, 50, 50)).await;
    let slow = slow_requests(addr, &backends, 2, "/delay/1000").await;
    mesh.remove("web.yaml");
    mesh.remove("vs.yaml");
    assert_all_ok("removing the service they were sent to", slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_load_survives_pushes() {
    let mut mesh = Mesh::new("h2push");
    let backends = mesh.backends(&["a", "b"]).await;
    let mut objects = mesh.service_objects(
        "web",
        ServicePort::new("http2-web", PORT),
        &[(&backends[0], "v1"), (&backends[1], "v2")],
    );
    objects.push(subsets(&mesh.ns));
    mesh.write("web.yaml", &manifests::yaml(objects));
    mesh.write("vs.yaml", &split(&mesh.ns, 100, 0));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    let addr = mesh.service_addr("web", PORT).await;
    let probe = HttpClient::h2c();
    wait_for_reply(&probe, addr, "/", "a first h2c 200", |r| r.status == 200).await;

    let load = Load::start_with(addr, "/", CLIENTS, HttpClient::h2c);
    for (v1, v2, expect) in [(0, 100, "b"), (100, 0, "a"), (0, 100, "b")] {
        load.wait_for_more(LOAD_MARGIN, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        mesh.write("vs.yaml", &split(&mesh.ns, v1, v2));
        wait_for_reply(&probe, addr, "/", &format!("{v1}/{v2} to apply"), |r| {
            r.backend() == expect
        })
        .await;
    }
    load.wait_for_more(LOAD_MARGIN, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report = load.stop().await;
    report.assert_no_failures("on h2c connections across three pushes");
    assert_eq!(
        report.by_backend().len(),
        2,
        "both subsets served during the run: {:?}",
        report.by_backend()
    );
}
