//! Resilience: default and VirtualService retries, per-call and per-try timeouts, Dubbo
//! statuses as their HTTP equivalents.

use super::*;

#[tokio::test]
async fn calls_to_a_dead_endpoint_are_retried_on_a_live_one_by_default() {
    const CALLS: usize = 50;
    let mut mesh = Mesh::new("policy-dead");
    let live = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &[]).await.remove(0);
    // Same port, another address: connecting there is refused.
    let dead = Peer { name: "dead".into(), addr: mesh.upstream_addr(live.addr.port()) };
    let objects = service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&live), "v1"), (dead, "v1")]);
    let addr = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT)]).await[0];

    assert_eq!(thrift_ready(addr, "echo").await, "t1: hi");
    let calls = thrift(addr, &["--call", "echo=x", "--repeat", &CALLS.to_string()]).await;
    assert_eq!(calls.len(), CALLS);
    for c in &calls {
        assert_eq!(c.value(), Some("t1: x"), "{c:?}");
    }

    // The dead endpoint was tried (the picks are random) and every such try retried.
    let cluster = format!("outbound|{THRIFT_PORT}||{THRIFT}.{}.svc.cluster.local", mesh.ns);
    mesh.wait_for_metric("corridor_upstream_rq_retry_total", &[("cluster", &cluster)], 1.0).await;
    // The access log shows each call answered by the live endpoint, none failing.
    let upstream = format!("upstream=\"{}\"", live.addr);
    eventually(PATIENCE, "the 50 calls in the access log", || {
        let answered = access_log(&mesh, THRIFT, THRIFT_PORT, &["code=200"]);
        async move {
            anyhow::ensure!(answered.len() > CALLS, "{} lines", answered.len());
            Ok(())
        }
    })
    .await;
    let answered = access_log(&mesh, THRIFT, THRIFT_PORT, &["code=200"]);
    assert!(answered.iter().all(|l| l.contains(&upstream)), "{answered:#?}");
    let failed = access_log(&mesh, THRIFT, THRIFT_PORT, &["flags=UF"]);
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A VirtualService sending every `demo` call to the service with `retries`.
fn retrying(ns: &str, attempts: u32) -> Value {
    VirtualService::new(DUBBO, ns)
        .host(DUBBO)
        .http(HttpRoute::new().name("all").to(Destination::new(DUBBO)).retries(attempts, "5xx", None))
        .into()
}

#[tokio::test]
async fn a_virtual_service_retries_5xx_answers_on_another_endpoint() {
    const CALLS: &str = "30";
    let mut mesh = Mesh::new("policy-5xx");
    let good = EchoServer::start(Protocol::Dubbo, "p1", mesh.upstream_addr(0), &[]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let bad_addr = mesh.upstream_addr(good.addr.port());
    let bad = EchoServer::start(Protocol::Dubbo, "p2", bad_addr, &["--error-rate", "1.0"]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&good), "v1"), (Peer::of(&bad), "v2")]);
    mesh.write("vs.yaml", &manifests::yaml([retrying(&mesh.ns, 2)]));
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    // At most 3 in flight: the cluster admits 3 concurrent retries (Envoy's max_retries).
    let run = dubbo(addr, &["--prefix", "r-", "--count", CALLS, "--concurrency", "3"]).await;
    assert_served_by(&run, "p1", "attempts: 2");
    // The erroring backend got (and failed) some of them first.
    let failed_first = logged(&bad, 1).await;
    assert!(failed_first.iter().all(|c| c.field("method") == "sayHello"), "{failed_first:?}");
    let errors = access_log(&mesh, DUBBO, DUBBO_PORT, &["code=500"]);
    assert!(errors.is_empty(), "answers that reached the caller as errors: {errors:#?}");

    // Without retries, the injected errors reach the caller.
    mesh.write("vs.yaml", &manifests::yaml([retrying(&mesh.ns, 0)]));
    let run = eventually(PATIENCE, "an injected error passed on", || async move {
        let run = dubbo_client(addr, &["--prefix", "z-", "--count", "20", "--concurrency", "3"]).await?;
        anyhow::ensure!(run.calls.iter().any(|c| c.value().is_none()), "all answered");
        Ok(run)
    })
    .await;
    for call in run.calls.iter().filter(|c| c.value().is_none()) {
        assert_eq!(call.error_type(), Some("DubboDecodeError"), "{call:?}");
        assert!(call.error_message().contains("injected error"), "{call:?}");
    }
    // Status 70 is the HTTP-equivalent 500.
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["code=500", &format!("upstream=\"{bad_addr}\"")]).await;
}

#[tokio::test]
async fn a_virtual_service_timeout_answers_in_each_protocols_own_timeout_error() {
    let mut mesh = Mesh::new("policy-timeout");
    let slow = ["--delay", "5s"];
    let p1 = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &slow).await.remove(0);
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &slow).await.remove(0);
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&p1), "v1")]);
    objects.extend(service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]));
    for name in [DUBBO, THRIFT] {
        let route = HttpRoute::new().name("short").to(Destination::new(name)).timeout("500ms");
        objects.push(VirtualService::new(name, &mesh.ns).host(name).http(route).into());
    }
    let addrs = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)]).await;

    // Answered well before the provider's 5 s delay ends, with status 31 (server timeout);
    // 60 (no route) comes until the routes arrive.
    let (status, body) = eventually(PATIENCE, "a Dubbo answer other than no-route", || async {
        let (status, body) = raw_say_hello(addrs[0], "world", Duration::from_secs(4)).await?;
        anyhow::ensure!(status != 60, "{status}: {body}");
        Ok((status, body))
    })
    .await;
    assert_eq!(status, 31, "{body}");
    assert!(body.contains("within 500ms"), "{body}");
    let run = dubbo(addrs[0], &["--arg", "slow"]).await;
    let outcome = &run.calls[0];
    assert_eq!((outcome.value(), outcome.error_type()), (None, Some("DubboDecodeError")), "{outcome:?}");
    assert!(outcome.error_message().contains("within 500ms"), "{outcome:?}");
    // Both calls reached the provider: the gateway gave up on a call in progress.
    logged(&p1, 2).await;

    let calls = eventually(PATIENCE, "a Thrift answer other than no-route", || async {
        let calls = thrift_client(addrs[1], &["--call", "echo=slow", "--timeout", "4"]).await?;
        anyhow::ensure!(calls[0].error_kind() != Some(1), "{calls:?}");
        Ok(calls)
    })
    .await;
    let c = &calls[0];
    assert_eq!((c.value(), c.error_type(), c.error_kind()), (None, "TApplicationException", Some(6)), "INTERNAL_ERROR: {c:?}");
    assert!(c.error_message().contains("within 500ms"), "{c:?}");
    assert_eq!(c.seqids().0, c.seqids().1, "{c:?}");

    for (service, port) in [(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)] {
        wait_for_access_log(&mesh, service, port, &["code=504", "flags=UT"]).await;
    }
}

/// A MetaRouter sending every call to `service`, with a local rate limit whose default
/// bucket holds `max` tokens (refilled only after an hour, so never during the test), a
/// bucket of one for `shout`, and a large one for the `warmup` calls that wait for the
/// routes.
#[tokio::test]
async fn dubbo_statuses_count_as_their_http_equivalents_and_503s_are_retried_by_default() {
    let mut mesh = Mesh::new("policy-status");
    let (provider, asked) = status_provider(mesh.upstream_addr(0)).await;
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &["--error-rate", "1.0"]).await.remove(0);
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer { name: "raw".into(), addr: provider }, "v1")]);
    objects.extend(service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]));
    // No MetaRouter, no VirtualService: the default route and its default retries.
    let addrs = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT), (THRIFT, THRIFT_PORT)]).await;
    eventually(PATIENCE, "a Dubbo call answered by the provider", || async {
        let (status, body) = raw_say_hello(addrs[0], "st020", PATIENCE).await?;
        anyhow::ensure!(status == 20, "{status}: {body}");
        Ok(())
    })
    .await;
    // The warm-up's lines are all in once its answer's is: the cases count lines from here.
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["code=200"]).await;

    // (status asked for, HTTP equivalent, flags, tries); 60 and 100 mean the service never
    // ran, as 503 does, and are tried three times (two retries) on the one endpoint.
    let cases = [
        (30, 504, "-", 1),
        (31, 504, "-", 1),
        (40, 400, "-", 1),
        (90, 400, "-", 1),
        (50, 502, "-", 1),
        (70, 500, "-", 1),
        (80, 500, "-", 1),
        (60, 503, "URX", 3),
        (100, 503, "URX", 3),
    ];
    for (status, code, flags, tries) in cases {
        let logged_before = access_log(&mesh, DUBBO, DUBBO_PORT, &[]).len();
        let asked_before = asked.lock().unwrap_or_else(|e| e.into_inner()).len();
        let (got, body) = raw_say_hello(addrs[0], &format!("st{status:03}"), PATIENCE).await.unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((got, body.contains(&format!("status {status}"))), (status, true), "the provider's answer passed on: {body}");
        let line = eventually(PATIENCE, "the call's access log line", || {
            let lines = access_log(&mesh, DUBBO, DUBBO_PORT, &[]);
            async move { lines.get(logged_before).cloned().ok_or_else(|| anyhow::anyhow!("not yet")) }
        })
        .await;
        assert!(line.contains(&format!("code={code} ")) && line.contains(&format!("flags={flags} ")), "status {status}: {line}");
        let tried = asked.lock().unwrap_or_else(|e| e.into_inner())[asked_before..].to_vec();
        assert_eq!(tried, vec![status; tries], "status {status}");
    }

    // A Thrift EXCEPTION is a 500: passed on, not retried by default.
    let calls = eventually(PATIENCE, "a Thrift call answered by the backend", || async {
        let calls = thrift_client(addrs[1], &["--call", "echo=x"]).await?;
        anyhow::ensure!(calls[0].error_message().contains("injected error"), "{calls:?}");
        Ok(calls)
    })
    .await;
    assert_eq!(calls[0].error_type(), "TApplicationException", "{calls:?}");
    wait_for_access_log(&mesh, THRIFT, THRIFT_PORT, &["code=500", "flags=-"]).await;
    assert_eq!(t1.calls().len(), 1, "tried once: {:?}", t1.calls());
}

#[tokio::test]
async fn a_per_try_timeout_moves_a_call_from_a_slow_endpoint_to_another() {
    let mut mesh = Mesh::new("policy-pertry");
    let fast = EchoServer::start(Protocol::Dubbo, "p1", mesh.upstream_addr(0), &[]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let slow_addr = mesh.upstream_addr(fast.addr.port());
    let slow = EchoServer::start(Protocol::Dubbo, "p2", slow_addr, &["--delay", "5s"]).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&fast), "v1"), (Peer::of(&slow), "v2")]);
    let route = HttpRoute::new().name("all").to(Destination::new(DUBBO)).retries(2, "connect-failure,reset", Some("300ms"));
    objects.push(VirtualService::new(DUBBO, &mesh.ns).host(DUBBO).http(route).into());
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    dubbo_ready(addr, &["--arg", "warm"]).await;
    // Without the per-try timeout, the calls on p2 would be answered by p2 after 5 s.
    let run = dubbo(addr, &["--prefix", "s-", "--count", "20", "--concurrency", "3"]).await;
    assert_served_by(&run, "p1", "perTryTimeout: 300ms");
    logged(&slow, 1).await;
    let timeouts = access_log(&mesh, DUBBO, DUBBO_PORT, &["code=504"]);
    assert!(timeouts.is_empty(), "{timeouts:#?}");
}
