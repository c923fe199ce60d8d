//! Routing policies: VirtualServices for Dubbo and Thrift, a MetaRouter taking a host
//! over, the local rate limit, mirrors.

use super::*;

#[tokio::test]
async fn a_virtual_service_routes_dubbo_on_method_and_group_until_a_meta_router_takes_over() {
    let mut mesh = Mesh::new("policy-vs");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let vs = VirtualService::new(DUBBO, &mesh.ns)
        .host(DUBBO)
        .http(
            HttpRoute::new()
                .name("canary")
                .matching(Match::new().method("sayHello").header_exact("group", "canary"))
                .to(Destination::new(DUBBO).subset("v2")),
        )
        .http(HttpRoute::new().name("rest").to(Destination::new(DUBBO).subset("v1")));
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&servers[0]), "v1"), (Peer::of(&servers[1]), "v2")]);
    objects.push(vs.into());
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    let batch = ["--count", "20", "--concurrency", "4"];
    let with = |extra: &[&'static str]| [extra, &batch[..]].concat();
    // The method and the group attribute both match: v2.
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--prefix", "c-"])).await, "p2", "canary sayHello");
    // Either alone is "the rest": v1.
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--method", "sayBye", "--prefix", "b-"])).await, "p1", "canary sayBye");
    assert_served_by(&dubbo(addr, &with(&["--group", "canaryx", "--prefix", "x-"])).await, "p1", "another group");
    assert_served_by(&dubbo(addr, &with(&["--prefix", "n-"])).await, "p1", "no group");

    // v2 saw only canary sayHello calls, with the attachments dubbo2.js sent.
    let v2 = logged(&servers[1], 20).await;
    assert!(v2.iter().all(|c| c.field("method") == "sayHello" && c.attributes.get("group").map(String::as_str) == Some("canary")), "{v2:?}");
    let canary_route = format!("route=\"{}/{DUBBO}/canary\"", mesh.ns);
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &[&canary_route, "code=200"]).await;

    // A MetaRouter for the same host wins over the VirtualService.
    let router = meta_router(&mesh.ns, DUBBO, json!([{"name": "all-to-v2", "route": [{"destination": {"host": DUBBO, "subset": "v2"}}]}]));
    mesh.write("router.yaml", &manifests::yaml([router]));
    eventually(PATIENCE, "plain calls routed by the MetaRouter", || async move {
        let run = dubbo_client(addr, &["--arg", "switch"]).await?;
        let value = run.calls.first().and_then(|c| c.value());
        anyhow::ensure!(value == Some("p2: switch"), "{:?}", run.calls);
        Ok(())
    })
    .await;
    assert_served_by(&dubbo(addr, &with(&["--prefix", "m-"])).await, "p2", "no group, MetaRouter");
    assert_served_by(&dubbo(addr, &with(&["--group", "canary", "--method", "sayBye", "--prefix", "mb-"])).await, "p2", "canary sayBye, MetaRouter");
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["route=\"all-to-v2\"", "code=200"]).await;
}

fn limited(ns: &str, service: &str, max: u32) -> Value {
    let bucket = |max: u32| json!({"maxTokens": max, "tokensPerFill": max, "fillInterval": "3600s"});
    let mut router = meta_router(ns, service, json!([{"name": "all", "route": [{"destination": {"host": service}}]}]));
    router["spec"]["localRateLimit"] = json!({
        "tokenBucket": bucket(max),
        "conditions": [
            {"match": {"attributes": {"method": {"exact": "shout"}}}, "tokenBucket": bucket(1)},
            {"match": {"attributes": {"method": {"exact": "warmup"}}}, "tokenBucket": bucket(1000)},
        ]
    });
    router
}

#[tokio::test]
async fn a_meta_router_local_rate_limit_refuses_calls_beyond_its_buckets() {
    let mut mesh = Mesh::new("policy-limit");
    let t1 = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["t1"], &[]).await.remove(0);
    let p1 = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1"], &[]).await.remove(0);
    let mut objects = service(&mesh, THRIFT, thrift_port(), &[(Peer::of(&t1), "v1")]);
    objects.extend(service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&p1), "v1")]));
    objects.push(limited(&mesh.ns, THRIFT, 5));
    objects.push(limited(&mesh.ns, DUBBO, 2));
    let addrs = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT), (DUBBO, DUBBO_PORT)]).await;

    assert_eq!(thrift_ready(addrs[0], "warmup").await, "t1: hi");
    // On one connection: two shout calls against their bucket of one, then 20 echo calls
    // against the default bucket of five.
    let mut args = vec!["--call".to_string(), "shout=a".into(), "--call".into(), "shout=b".into()];
    for i in 0..20 {
        args.extend(["--call".to_string(), format!("echo=e{i}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let calls = thrift(addrs[0], &args).await;
    let answered: Vec<bool> = calls.iter().map(|c| c.value().is_some()).collect();
    let mut expected = vec![true, false];
    expected.extend([true; 5]);
    expected.extend([false; 15]);
    assert_eq!(answered, expected, "{calls:#?}");
    for c in calls.iter().filter(|c| c.value().is_none()) {
        assert_eq!((c.error_type(), c.error_kind()), ("TApplicationException", Some(6)), "{c:?}");
        assert!(c.error_message().contains("rate limited"), "{c:?}");
        assert_eq!(c.seqids().0, c.seqids().1, "{c:?}");
    }
    let methods: Vec<String> = logged(&t1, 7).await.iter().map(|c| c.field("method").to_string()).collect();
    assert_eq!(methods.iter().filter(|m| *m != "warmup").count(), 6, "only the admitted calls reach the backend: {methods:?}");
    wait_for_access_log(&mesh, THRIFT, THRIFT_PORT, &["method=\"echo\"", "code=429", "flags=RL"]).await;

    // Dubbo: the third sayHello finds the default bucket of two empty; status 100.
    dubbo_ready(addrs[1], &["--method", "warmup"]).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = raw_say_hello(addrs[1], "world", PATIENCE).await.unwrap_or_else(|e| panic!("{e:#}"));
        statuses.push((status, body));
    }
    let codes: Vec<u8> = statuses.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, [20, 20, 100], "{statuses:?}");
    assert!(statuses[2].1.contains("rate limited"), "{statuses:?}");
    wait_for_access_log(&mesh, DUBBO, DUBBO_PORT, &["method=\"sayHello\"", "code=429", "flags=RL"]).await;
}

#[tokio::test]
async fn a_mirror_gets_a_copy_of_every_call_and_its_death_never_reaches_the_caller() {
    let mut mesh = Mesh::new("policy-mirror");
    let mut servers = EchoServer::start_many(&mut mesh, Protocol::Dubbo, &["p1", "p2"], &[]).await;
    let route = json!({
        "name": "primary",
        "route": [{"destination": {"host": DUBBO, "subset": "v1"}}],
        "mirror": {"host": DUBBO, "subset": "v2"},
        "mirrorPercentage": {"value": 100}
    });
    let mut objects = service(&mesh, DUBBO, dubbo_port(), &[(Peer::of(&servers[0]), "v1"), (Peer::of(&servers[1]), "v2")]);
    objects.push(meta_router(&mesh.ns, DUBBO, json!([route])));
    let addr = start(&mut mesh, objects, &[(DUBBO, DUBBO_PORT)]).await[0];

    assert_eq!(dubbo_ready(addr, &["--arg", "warm"]).await, "p1: warm");
    // The warm-up's copy, before counting from here.
    let before = logged(&servers[1], 1).await.len();
    let primary_before = logged(&servers[0], 1).await.len();
    let run = dubbo(addr, &["--prefix", "m-", "--count", "20", "--concurrency", "4"]).await;
    assert_served_by(&run, "p1", "mirrored calls");
    let copies = logged(&servers[1], before + 20).await;
    assert_eq!(copies.len() - before, 20, "{copies:?}");
    assert!(copies[before..].iter().all(|c| (c.field("interface"), c.field("method")) == (DEMO, "sayHello")), "{copies:?}");
    assert_eq!(logged(&servers[0], primary_before + 20).await.len(), primary_before + 20);

    // The mirror dies: the callers never notice.
    servers[1].process.kill();
    let run = dubbo(addr, &["--prefix", "k-", "--count", "20", "--concurrency", "4"]).await;
    assert_served_by(&run, "p1", "the mirror dead");
    // Every call so far (the warm-up, 20, 20) was answered by the primary.
    let lines = eventually(PATIENCE, "41 calls in the access log", || {
        let lines = access_log(&mesh, DUBBO, DUBBO_PORT, &["route=\"primary\""]);
        async move {
            anyhow::ensure!(lines.len() >= 41, "{} lines", lines.len());
            Ok(lines)
        }
    })
    .await;
    assert!(lines.iter().all(|l| l.contains("code=200")), "{lines:#?}");
}

#[tokio::test]
async fn a_virtual_service_routes_thrift_on_a_theader_header_and_splits_the_rest_by_weight() {
    const CALLS: usize = 500;
    let mut mesh = Mesh::new("policy-theader");
    let servers = EchoServer::start_many(&mut mesh, Protocol::Thrift, &["a", "b", "c"], &[]).await;
    let peers: Vec<(Peer, &str)> = servers.iter().zip(["v1", "v2", "v3"]).map(|(s, v)| (Peer::of(s), v)).collect();
    let mut objects = service(&mesh, THRIFT, thrift_port(), &peers);
    let vs = VirtualService::new(THRIFT, &mesh.ns)
        .host(THRIFT)
        .http(HttpRoute::new().name("gold").matching(Match::new().header_exact("x-tenant", "gold")).to(Destination::new(THRIFT).subset("v3")))
        .http(
            HttpRoute::new()
                .name("split")
                .to(Destination::new(THRIFT).subset("v1").weight(80))
                .to(Destination::new(THRIFT).subset("v2").weight(20)),
        );
    objects.push(vs.into());
    let addr = start(&mut mesh, objects, &[(THRIFT, THRIFT_PORT)]).await[0];
    thrift_ready(addr, "echo").await;

    // THeader calls carrying the header, `repeat` times on one connection.
    let tenant = |tenant: &'static str, arg: &'static str| async move {
        let args = ["--transport", "header", "--header", &format!("x-tenant={tenant}"), "--call", &format!("echo={arg}"), "--repeat", "10"];
        thrift(addr, &args).await
    };
    let gold = tenant("gold", "g").await;
    assert!(gold.iter().all(|c| c.value() == Some("c: g")), "{gold:?}");
    let silver = tenant("silver", "s").await;
    assert!(silver.iter().all(|c| matches!(c.value(), Some("a: s" | "b: s"))), "{silver:?}");

    let calls = thrift(addr, &["--call", "echo=w", "--repeat", &CALLS.to_string()]).await;
    let served = |name: &str| calls.iter().filter(|c| c.value() == Some(&format!("{name}: w"))).count();
    let (a, b) = (served("a"), served("b"));
    assert_eq!(a + b, CALLS, "{calls:?}");
    let share = a as f64 / CALLS as f64;
    assert!((0.7..=0.9).contains(&share), "v1 served {a}, v2 {b}");
    // c saw only the gold calls, with the caller's header.
    let c = logged(&servers[2], 10).await;
    assert!(c.iter().all(|c| c.attributes.get("x-tenant").map(String::as_str) == Some("gold")), "{c:?}");
}
