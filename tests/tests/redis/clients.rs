//! Real clients through the gateway in front of one redis-server: redis-cli, a raw RESP
//! connection (inline and pipelined commands), redis-benchmark, ioredis with its default
//! options; and the per-command metrics they leave behind.

use corridor_tests::Mesh;
use corridor_tests::node::redis_client;
use corridor_tests::redis::{RedisCli, RedisOptions, RedisServer, Resp, RespConn, redis_benchmark};

use super::{OrPanic, dbsize, gateway_addr, metric, redis_objects, server, start, value_on};

/// A mesh with one service `cache` (port named `redis`) in front of one redis-server.
async fn single(tag: &str) -> (Mesh, RedisServer, std::net::SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let redis = server(&mut mesh, RedisOptions::new()).await;
    let objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, redis, addr)
}

/// Runs one redis-cli command, which must succeed (an error *reply* is a success).
async fn run(cli: &RedisCli, args: &[&str]) -> String {
    cli.run(args).await.or_panic()
}

#[tokio::test]
async fn redis_cli_runs_common_commands_through_the_gateway() {
    let (_mesh, redis, addr) = single("redis-cli").await;
    let typed = RedisCli::new(addr).typed();
    let raw = RedisCli::new(addr);
    assert_eq!(run(&raw, &["PING"]).await, "PONG");
    assert_eq!(run(&raw, &["SET", "greeting", "hello world"]).await, "OK");
    assert_eq!(run(&raw, &["GET", "greeting"]).await, "hello world");
    assert_eq!(run(&typed, &["GET", "missing"]).await, "(nil)");
    assert_eq!(run(&typed, &["INCR", "counter"]).await, "(integer) 1");
    assert_eq!(run(&typed, &["INCR", "counter"]).await, "(integer) 2");
    assert_eq!(
        run(&typed, &["HSET", "user", "name", "ada", "lang", "en"]).await,
        "(integer) 2"
    );
    assert_eq!(run(&raw, &["HGET", "user", "name"]).await, "ada");
    assert_eq!(
        run(&typed, &["LPUSH", "queue", "a", "b", "c"]).await,
        "(integer) 3"
    );
    assert_eq!(run(&raw, &["LRANGE", "queue", "0", "-1"]).await, "c\nb\na");
    assert_eq!(
        run(&typed, &["EXPIRE", "greeting", "100"]).await,
        "(integer) 1"
    );
    let ttl = run(&typed, &["TTL", "greeting"]).await;
    assert!(
        ttl == "(integer) 100" || ttl == "(integer) 99",
        "TTL after EXPIRE 100: {ttl}"
    );
    assert_eq!(
        run(&raw, &["MSET", "m1", "one", "m2", "two", "m3", "three"]).await,
        "OK"
    );
    assert_eq!(
        run(&typed, &["MGET", "m1", "nope", "m3"]).await,
        "1) \"one\"\n2) (nil)\n3) \"three\""
    );
    assert_eq!(
        run(&typed, &["EXISTS", "m1", "m2", "nope", "counter"]).await,
        "(integer) 3"
    );
    assert_eq!(
        run(&typed, &["DEL", "m1", "m2", "nope"]).await,
        "(integer) 2"
    );
    assert_eq!(
        run(&typed, &["EXISTS", "m1", "m2", "m3"]).await,
        "(integer) 1"
    );

    // The server holds what redis-cli wrote through the gateway.
    assert_eq!(value_on(&redis, "counter").await.as_deref(), Some("2"));
    assert_eq!(value_on(&redis, "m3").await.as_deref(), Some("three"));
    assert_eq!(value_on(&redis, "m1").await, None);
    let ttl = redis.command(&["TTL", "greeting"]).await.or_panic();
    assert!(ttl.as_int().is_some_and(|t| t > 0), "{ttl:?}");
    assert_eq!(dbsize(&redis).await, 5, "greeting counter user queue m3");

    // An unsupported command gets an error naming it, and redis-cli prints it.
    assert_eq!(
        run(&typed, &["KEYS", "*"]).await,
        "(error) ERR unsupported command 'keys'"
    );
    // The connection that sent it carries on.
    let mut conn = RespConn::connect(addr).await.or_panic();
    let keys = conn.command(&["KEYS", "*"]).await.or_panic();
    assert_eq!(keys.as_error(), Some("ERR unsupported command 'keys'"));
    let counter = conn.command(&["GET", "counter"]).await.or_panic();
    assert_eq!(counter.as_str(), Some("2"));
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(
        calls.get("keys"),
        None,
        "KEYS reached the server: {calls:?}"
    );
}

#[tokio::test]
async fn inline_and_pipelined_commands_are_answered_in_order() {
    let (_mesh, redis, addr) = single("redis-pipeline").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    // Inline commands (telnet style) with Redis's quoting, two in one write.
    conn.send_raw(b"SET inline \"two words\"\r\nGET inline\r\n")
        .await
        .or_panic();
    assert_eq!(
        conn.read_reply().await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.read_reply().await.or_panic().as_str(),
        Some("two words")
    );

    // 200 commands in one write, every reply in its command's place.
    let mut pipeline = Vec::new();
    for i in 0..100 {
        pipeline.extend(corridor_tests::redis::resp::encode_command(&[
            "SET".to_string(),
            format!("p{i}"),
            format!("v{i}"),
        ]));
        pipeline.extend(corridor_tests::redis::resp::encode_command(&[
            "GET".to_string(),
            format!("p{i}"),
        ]));
    }
    conn.send_raw(&pipeline).await.or_panic();
    for i in 0..100 {
        assert_eq!(
            conn.read_reply().await.or_panic(),
            Resp::Simple("OK".into()),
            "SET p{i}"
        );
        let value = conn.read_reply().await.or_panic();
        assert_eq!(value.as_str(), Some(format!("v{i}").as_str()), "GET p{i}");
    }
    assert_eq!(dbsize(&redis).await, 101);

    // Only database 0 exists behind the gateway; the refusal leaves the connection as is.
    let select = conn.command(&["SELECT", "1"]).await.or_panic();
    assert!(select.as_error().is_some(), "SELECT 1 answered {select:?}");
    assert_eq!(
        conn.command(&["SELECT", "0"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    // QUIT: the replies to everything before it, +OK, then the gateway closes.
    conn.send_raw(b"GET p1\r\nQUIT\r\nGET p2\r\n")
        .await
        .or_panic();
    let last = conn.read_until_closed().await.or_panic();
    assert_eq!(
        last,
        [Resp::Bulk(Some(b"v1".to_vec())), Resp::Simple("OK".into())]
    );
}

#[tokio::test]
async fn an_upstream_restart_gives_errors_then_service_again() {
    let (_mesh, redis, addr) = single("redis-restart").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        conn.command(&["SET", "k", "v"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    let (upstream, options) = (redis.addr, redis.options.clone());
    drop(redis);
    // The server is gone: an error reply in good time, and the connection stays.
    for _ in 0..3 {
        let reply = conn.command(&["GET", "k"]).await.or_panic();
        assert!(
            reply.as_error().is_some(),
            "GET with the server down: {reply:?}"
        );
    }
    assert_eq!(
        conn.command(&["PING"]).await.or_panic(),
        Resp::Simple("PONG".into())
    );
    let restarted = RedisServer::start(upstream, options).await.or_panic();
    let conn = std::sync::Arc::new(tokio::sync::Mutex::new(conn));
    corridor_tests::eventually(
        corridor_tests::PATIENCE,
        "SET through the gateway again",
        || {
            let conn = conn.clone();
            async move {
                match conn.lock().await.command(&["SET", "k", "again"]).await? {
                    Resp::Simple(s) if s == "OK" => Ok(()),
                    other => anyhow::bail!("SET answered {other:?}"),
                }
            }
        },
    )
    .await;
    assert_eq!(value_on(&restarted, "k").await.as_deref(), Some("again"));
}

#[tokio::test]
async fn redis_benchmark_runs_get_and_set_at_p1_and_p16_without_errors() {
    let (mesh, redis, addr) = single("redis-bench").await;
    const REQUESTS: u64 = 20_000;
    let n = REQUESTS.to_string();
    for pipeline in ["1", "16"] {
        let results = redis_benchmark(
            addr,
            &["-t", "set,get", "-n", &n, "-c", "20", "-P", pipeline],
        )
        .await
        .or_panic();
        let tests: Vec<&str> = results.iter().map(|r| r.test.as_str()).collect();
        assert_eq!(tests, ["SET", "GET"], "-P {pipeline}: {results:?}");
    }
    // Every request reached the server, and no reply was an error.
    let calls = redis.command_calls().await.or_panic();
    for command in ["set", "get"] {
        let n = calls.get(command).copied().unwrap_or(0);
        assert!(
            n >= 2 * REQUESTS,
            "{command}: {n} calls at the server: {calls:?}"
        );
    }
    let errors = redis.error_counts().await.or_panic();
    assert!(errors.is_empty(), "the server sent errors: {errors:?}");
    for command in ["set", "get"] {
        let labels = [("command", command)];
        let total = metric(&mesh, "corridor_redis_command_total", &labels).await;
        let failed = metric(&mesh, "corridor_redis_command_error_total", &labels).await;
        assert!(total >= (2 * REQUESTS) as f64, "{command}: {total} counted");
        assert_eq!(
            failed, 0.0,
            "{command}: {failed} error replies through the gateway"
        );
    }
}

#[tokio::test]
async fn ioredis_with_default_options_falls_back_to_resp2() {
    let (_mesh, redis, addr) = single("redis-ioredis").await;
    let run = redis_client(
        addr,
        &["--no-reconnect"],
        &[
            &["SET", "k", "from ioredis"],
            &["GET", "k"],
            &["MSET", "a", "1", "b", "2"],
            &["MGET", "a", "b", "missing", "k"],
            &["CLIENT", "SETNAME", "shop"],
            &["CLIENT", "GETNAME"],
        ],
    )
    .await
    .or_panic();
    // HELLO 3 got NOPROTO, not a dropped connection: one connection, no error event.
    assert_eq!(run.connections, 1, "{run:?}");
    assert!(run.events_named("error").is_empty(), "{run:?}");
    let errors: Vec<_> = run
        .calls
        .iter()
        .filter(|c| c.error_name().is_some())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(run.calls[0].text(), Some("OK"), "{run:?}");
    assert_eq!(run.calls[1].text(), Some("from ioredis"), "{run:?}");
    assert_eq!(run.calls[2].text(), Some("OK"), "{run:?}");
    assert_eq!(
        run.calls[3].value(),
        &serde_json::json!(["1", "2", null, "from ioredis"]),
        "{run:?}"
    );
    assert_eq!(run.calls[5].text(), Some("shop"), "{run:?}");
    assert_eq!(value_on(&redis, "b").await.as_deref(), Some("2"));
    // The handshake stayed at the gateway.
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(calls.get("hello"), None, "{calls:?}");
    assert_eq!(calls.get("client|setinfo"), None, "{calls:?}");
}

#[tokio::test]
async fn per_command_metrics_count_successes_and_errors() {
    let (mesh, _redis, addr) = single("redis-metrics").await;
    let listener = mesh.listener_name("cache", super::PORT);
    let mut conn = RespConn::connect(addr).await.or_panic();
    conn.command(&["SET", "k", "v"]).await.or_panic();
    conn.command(&["LPUSH", "list", "x"]).await.or_panic();
    for _ in 0..7 {
        assert_eq!(
            conn.command(&["GET", "k"]).await.or_panic().as_str(),
            Some("v")
        );
    }
    // GET on a list: the server's WRONGTYPE counts as an error of `get`.
    let wrong = conn.command(&["GET", "list"]).await.or_panic();
    assert!(
        wrong.as_error().is_some_and(|e| e.starts_with("WRONGTYPE")),
        "{wrong:?}"
    );

    let get = [("listener", listener.as_str()), ("command", "get")];
    mesh.wait_for_metric("corridor_redis_command_total", &get, 8.0)
        .await;
    assert_eq!(
        metric(&mesh, "corridor_redis_command_total", &get).await,
        8.0
    );
    assert_eq!(
        metric(&mesh, "corridor_redis_command_success_total", &get).await,
        7.0
    );
    assert_eq!(
        metric(&mesh, "corridor_redis_command_error_total", &get).await,
        1.0
    );
    assert_eq!(
        metric(
            &mesh,
            "corridor_redis_command_latency_milliseconds_count",
            &get
        )
        .await,
        8.0
    );
    let set = [("listener", listener.as_str()), ("command", "set")];
    assert_eq!(
        metric(&mesh, "corridor_redis_command_total", &set).await,
        1.0
    );
}

#[tokio::test]
async fn large_and_binary_keys_and_values_pass_unchanged() {
    let (_mesh, redis, addr) = single("redis-binary").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    // Every byte value, CRLFs and RESP type bytes included, in keys and values.
    let key: Vec<u8> = b"bin\r\n$3\r\n*\0key "
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect();
    let small: Vec<u8> = (0..=255u8)
        .rev()
        .chain(*b"\r\n-ERR not an error\r\n")
        .collect();
    // Larger than any read buffer, so both directions arrive in many pieces.
    let large: Vec<u8> = (0..4 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let set = |k: &[u8], v: &[u8]| vec![b"SET".to_vec(), k.to_vec(), v.to_vec()];
    assert_eq!(
        conn.command(&set(&key, &small)).await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.command(&set(b"large", &large)).await.or_panic(),
        Resp::Simple("OK".into())
    );
    let get = |k: &[u8]| vec![b"GET".to_vec(), k.to_vec()];
    assert_eq!(
        conn.command(&get(&key)).await.or_panic(),
        Resp::Bulk(Some(small.clone()))
    );
    let back = conn.command(&get(b"large")).await.or_panic();
    assert!(
        back == Resp::Bulk(Some(large.clone())),
        "the 4 MiB value came back changed"
    );
    // Pipelined: large replies interleaved with small ones keep their order.
    let mut pipeline = Vec::new();
    for _ in 0..3 {
        pipeline.extend(corridor_tests::redis::resp::encode_command(&get(b"large")));
        pipeline.extend(corridor_tests::redis::resp::encode_command(&get(&key)));
    }
    conn.send_raw(&pipeline).await.or_panic();
    for i in 0..3 {
        let big = conn.read_reply().await.or_panic();
        assert!(big == Resp::Bulk(Some(large.clone())), "large #{i} changed");
        assert_eq!(
            conn.read_reply().await.or_panic(),
            Resp::Bulk(Some(small.clone()))
        );
    }
    // The server has exactly these bytes under exactly this key.
    let direct = redis
        .connect()
        .await
        .or_panic()
        .command(&get(&key))
        .await
        .or_panic();
    assert_eq!(direct, Resp::Bulk(Some(small)));
    let len = redis.command(&["STRLEN", "large"]).await.or_panic();
    assert_eq!(len, Resp::Integer(4 * 1024 * 1024));
}
