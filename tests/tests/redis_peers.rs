//! The Redis test harness against real peers, no gateway yet: redis-server (standalone,
//! with a password, as a replica, as a cluster), redis-cli, redis-benchmark, ioredis 6
//! (npm) and twemproxy (nutcracker). The gateway's Redis tests build on these pieces, so
//! each one is checked here on its own first.

use std::time::Duration;

use corridor_tests::node::redis_client;
use corridor_tests::redis::{
    RedisCli, RedisCluster, RedisOptions, RedisServer, Resp, RespConn, Twemproxy, key_slot,
    redis_benchmark, redis_cli,
};
use corridor_tests::{Mesh, PATIENCE, eventually};

/// `unwrap` that shows an error's whole context chain (or names the missing value).
trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T> OrPanic<T> for anyhow::Result<T> {
    fn or_panic(self) -> T {
        self.unwrap_or_else(|e| panic!("{e:#}"))
    }
}

impl<T> OrPanic<T> for Option<T> {
    fn or_panic(self) -> T {
        self.unwrap_or_else(|| panic!("expected a value, found none"))
    }
}

async fn server(mesh: &mut Mesh, options: RedisOptions) -> RedisServer {
    RedisServer::start(mesh.upstream_addr(0), options)
        .await
        .or_panic()
}

#[tokio::test]
async fn redis_cli_sets_and_gets_on_a_single_server() {
    let mut mesh = Mesh::new("redis-single");
    let redis = server(&mut mesh, RedisOptions::new()).await;
    assert_eq!(
        redis_cli(redis.addr, &["SET", "greeting", "hello world"])
            .await
            .or_panic(),
        "OK"
    );
    assert_eq!(
        redis_cli(redis.addr, &["GET", "greeting"]).await.or_panic(),
        "hello world"
    );
    let typed = RedisCli::new(redis.addr).typed();
    assert_eq!(typed.run(&["GET", "missing"]).await.or_panic(), "(nil)");
    assert_eq!(
        typed.run(&["INCR", "counter"]).await.or_panic(),
        "(integer) 1"
    );
    // The harness's own view agrees, and counts the commands the server ran.
    assert_eq!(
        redis
            .command(&["GET", "greeting"])
            .await
            .or_panic()
            .as_str(),
        Some("hello world")
    );
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(calls.get("set"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("incr"), Some(&1), "{calls:?}");
}

#[tokio::test]
async fn a_password_is_required_and_checked() {
    let mut mesh = Mesh::new("redis-auth");
    let redis = server(
        &mut mesh,
        RedisOptions::new()
            .password("s3cret")
            .user("app", "app-pass"),
    )
    .await;
    let anonymous = RedisCli::new(redis.addr)
        .typed()
        .run(&["GET", "k"])
        .await
        .or_panic();
    assert!(anonymous.starts_with("(error) NOAUTH"), "{anonymous}");
    assert_eq!(redis.cli().run(&["SET", "k", "v"]).await.or_panic(), "OK");
    let wrong = RedisCli::new(redis.addr)
        .password("nope")
        .output(&["GET", "k"])
        .await
        .or_panic();
    assert!(wrong.stderr.contains("WRONGPASS"), "{wrong:?}");
    let as_user = RedisCli::new(redis.addr)
        .user("app")
        .password("app-pass")
        .run(&["GET", "k"])
        .await
        .or_panic();
    assert_eq!(as_user, "v");
    // The raw client: AUTH before anything else, and a refusal is an error.
    let mut conn = RespConn::connect_auth(redis.addr, Some("app"), Some("app-pass"))
        .await
        .or_panic();
    assert_eq!(
        conn.command(&["GET", "k"]).await.or_panic().as_str(),
        Some("v")
    );
    assert!(
        RespConn::connect_auth(redis.addr, None, Some("nope"))
            .await
            .is_err()
    );
    let mut raw = RespConn::connect(redis.addr).await.or_panic();
    let refused = raw.command(&["AUTH", "nope"]).await.or_panic();
    assert!(
        refused
            .as_error()
            .is_some_and(|e| e.starts_with("WRONGPASS")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn ioredis_calls_a_server_with_hello_3_and_client_setinfo() {
    let mut mesh = Mesh::new("redis-ioredis");
    let redis = server(&mut mesh, RedisOptions::new().password("pw")).await;
    let run = redis_client(
        redis.addr,
        &["--password", "pw"],
        &[
            &["SET", "k", "from ioredis"],
            &["GET", "k"],
            &["CLIENT", "INFO"],
            &["NOSUCHCOMMAND"],
        ],
    )
    .await
    .or_panic();
    assert_eq!(run.connections, 1, "{run:?}");
    assert_eq!(run.calls[0].text(), Some("OK"), "{run:?}");
    assert_eq!(run.calls[1].text(), Some("from ioredis"), "{run:?}");
    let info = run.calls[2].text().unwrap_or_default();
    assert!(
        info.contains("resp=3"),
        "ioredis negotiated RESP3 with HELLO 3: {info}"
    );
    assert_eq!(run.calls[3].error_name(), Some("ReplyError"), "{run:?}");
    assert!(
        run.calls[3].error_message().contains("unknown command"),
        "{run:?}"
    );
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(calls.get("hello"), Some(&1), "{calls:?}");
    // redis-server 7.0 predates CLIENT SETINFO (7.2): it answers both of ioredis's
    // SETINFO calls with -ERR unknown subcommand, which ioredis ignores; the third -ERR
    // is NOSUCHCOMMAND.
    let errors = redis.error_counts().await.or_panic();
    assert_eq!(errors.get("ERR"), Some(&3), "{errors:?}");

    let refused = redis_client(
        redis.addr,
        &["--password", "wrong", "--no-reconnect", "--timeout", "5"],
        &[&["GET", "k"]],
    )
    .await
    .or_panic();
    assert!(
        refused.calls[0].error_message().contains("WRONGPASS"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_replica_follows_its_primary() {
    let mut mesh = Mesh::new("redis-replica");
    let primary = server(&mut mesh, RedisOptions::new().password("pw")).await;
    let replica = server(
        &mut mesh,
        RedisOptions::new().password("pw").replica_of(primary.addr),
    )
    .await;
    primary
        .cli()
        .run(&["SET", "k", "replicated"])
        .await
        .or_panic();
    let replica = &replica;
    eventually(PATIENCE, "the replica to have the key", || async move {
        match replica.command(&["GET", "k"]).await?.as_str() {
            Some("replicated") => Ok(()),
            other => anyhow::bail!("GET k on the replica: {other:?}"),
        }
    })
    .await;
    let refused = replica.command(&["SET", "k", "x"]).await.or_panic();
    assert!(
        refused
            .as_error()
            .is_some_and(|e| e.starts_with("READONLY")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn cluster_keys_land_on_the_node_owning_their_slot() {
    let mut mesh = Mesh::new("redis-cluster");
    let cluster = RedisCluster::start(&mut mesh, 3).await.or_panic();
    let masters = cluster.masters().await.or_panic();
    assert_eq!(masters.len(), 3, "{:?}", cluster.slots().await);
    for (i, master) in masters.iter().enumerate() {
        let key = cluster.key_on(*master, "user:").await.or_panic();
        let slot = key_slot(key.as_bytes());
        let keyslot = cluster.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", &key])
            .await
            .or_panic();
        assert_eq!(
            keyslot.as_int(),
            Some(i64::from(slot)),
            "key_slot({key}) disagrees with redis"
        );
        // Written through the seed with a cluster-aware redis-cli, found on the owner.
        let value = format!("value {i}");
        RedisCli::new(cluster.seed())
            .cluster()
            .run(&["SET", &key, &value])
            .await
            .or_panic();
        let owner = cluster.node(*master).or_panic();
        assert_eq!(
            owner.command(&["GET", &key]).await.or_panic().as_str(),
            Some(value.as_str())
        );
        for other in cluster.nodes.iter().filter(|n| n.addr != *master) {
            let reply = other.command(&["GET", &key]).await.or_panic();
            assert_eq!(
                reply.as_error(),
                Some(format!("MOVED {slot} {master}").as_str()),
                "{} for {key}",
                other.addr
            );
        }
    }
}

#[tokio::test]
async fn a_slot_migration_is_followed_by_cluster_clients() {
    let mut mesh = Mesh::new("redis-reshard");
    let cluster = RedisCluster::start(&mut mesh, 3).await.or_panic();
    let masters = cluster.masters().await.or_panic();
    let (from, to) = (masters[0], masters[1]);
    let key = cluster.key_on(from, "moving:").await.or_panic();
    let slot = key_slot(key.as_bytes());
    let source = cluster.node(from).or_panic();
    source.command(&["SET", &key, "v1"]).await.or_panic();

    // Half way: the key has moved, the slot not yet. The source answers -ASK.
    let migration = cluster.begin_migration(slot, to).await.or_panic();
    assert_eq!(migration.move_keys(100).await.or_panic(), 1);
    let ask = source.command(&["GET", &key]).await.or_panic();
    assert_eq!(ask.as_error(), Some(format!("ASK {slot} {to}").as_str()));
    let cli = RedisCli::new(from).cluster();
    assert_eq!(cli.run(&["GET", &key]).await.or_panic(), "v1");

    migration.finish(&cluster).await.or_panic();
    assert_eq!(cluster.owner(slot).await.or_panic(), to);
    let moved = source.command(&["GET", &key]).await.or_panic();
    assert_eq!(
        moved.as_error(),
        Some(format!("MOVED {slot} {to}").as_str())
    );
    assert_eq!(cli.run(&["GET", &key]).await.or_panic(), "v1");
    let run = redis_client(
        from,
        &["--cluster"],
        &[&["GET", &key], &["SET", &key, "v2"]],
    )
    .await
    .or_panic();
    assert_eq!(run.calls[0].text(), Some("v1"), "{run:?}");
    assert_eq!(
        cluster
            .node(to)
            .or_panic()
            .command(&["GET", &key])
            .await
            .or_panic()
            .as_str(),
        Some("v2")
    );

    // And back, in one call.
    cluster.migrate_slot(slot, from).await.or_panic();
    assert_eq!(
        source.command(&["GET", &key]).await.or_panic().as_str(),
        Some("v2")
    );
}

#[tokio::test]
async fn a_cluster_with_replicas_lists_them_per_slot_range() {
    let mut mesh = Mesh::new("redis-cluster-replicas");
    let options = RedisOptions::new().password("pw");
    let cluster = RedisCluster::start_with(&mut mesh, 3, 1, options)
        .await
        .or_panic();
    let slots = cluster.slots().await.or_panic();
    assert_eq!(slots.len(), 3, "{slots:?}");
    for range in &slots {
        assert_eq!(range.replicas.len(), 1, "{slots:?}");
        assert_ne!(range.replicas[0], range.master);
    }
    let key = cluster.key_on(slots[0].master, "r:").await.or_panic();
    let cli = RedisCli::new(cluster.seed()).cluster().password("pw");
    cli.run(&["SET", &key, "x"]).await.or_panic();
    assert_eq!(cli.run(&["GET", &key]).await.or_panic(), "x");
}

#[tokio::test]
async fn redis_benchmark_measures_get_and_set_at_p1_and_p16() {
    let mut mesh = Mesh::new("redis-bench");
    let redis = server(&mut mesh, RedisOptions::new().password("pw")).await;
    for pipeline in ["1", "16"] {
        let results = redis_benchmark(
            redis.addr,
            &[
                "-a", "pw", "-t", "get,set", "-n", "5000", "-c", "10", "-P", pipeline,
            ],
        )
        .await
        .or_panic();
        let tests: Vec<&str> = results.iter().map(|r| r.test.as_str()).collect();
        assert_eq!(tests, ["SET", "GET"], "-P {pipeline}: {results:?}");
        assert!(
            results.iter().all(|r| r.rps > 0.0),
            "-P {pipeline}: {results:?}"
        );
    }
    let calls = redis.command_calls().await.or_panic();
    assert!(calls.get("get").is_some_and(|&n| n >= 10_000), "{calls:?}");
}

#[tokio::test]
async fn twemproxy_spreads_keys_over_its_servers() {
    let mut mesh = Mesh::new("redis-twemproxy");
    let servers = RedisServer::start_many(&mut mesh, 2, &RedisOptions::new()).await;
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let proxy = Twemproxy::start(&addrs, mesh.upstream_addr(0))
        .await
        .or_panic();
    for i in 0..40 {
        let key = format!("key{i}");
        assert_eq!(
            redis_cli(proxy.addr, &["SET", &key, &format!("v{i}")])
                .await
                .or_panic(),
            "OK"
        );
    }
    assert_eq!(
        redis_cli(proxy.addr, &["GET", "key7"]).await.or_panic(),
        "v7"
    );
    let mut sizes = Vec::new();
    for server in &servers {
        sizes.push(
            server
                .command(&["DBSIZE"])
                .await
                .or_panic()
                .as_int()
                .unwrap_or(0),
        );
    }
    assert_eq!(sizes.iter().sum::<i64>(), 40, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n > 0),
        "ketama put every key on one server: {sizes:?}"
    );

    let results = redis_benchmark(
        proxy.addr,
        &["-t", "get,set", "-n", "2000", "-c", "10", "-P", "16"],
    )
    .await
    .or_panic();
    assert_eq!(results.len(), 2, "{results:?}");

    // As PEERS.md says: twemproxy drops a RESP3 client (what Corridor must not do).
    let mut conn = RespConn::connect(proxy.addr).await.or_panic();
    conn.send(&["HELLO", "3"]).await.or_panic();
    let replies = tokio::time::timeout(Duration::from_secs(15), conn.read_until_closed())
        .await
        .unwrap_or_else(|_| panic!("twemproxy kept the connection open after HELLO 3"))
        .or_panic();
    assert!(
        replies.iter().all(|r| matches!(r, Resp::Error(_))),
        "{replies:?}"
    );
}
