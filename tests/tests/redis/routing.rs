//! Key-prefix routes of a RedisService split keys across backends (longest prefix first,
//! a catch-all for the rest, optional prefix removal, optional case folding), multi-key
//! commands are split across them and merged; within a service, PROXY mode hashes each
//! key (or its hash tag) to one endpoint, and commands naming several keys must not act
//! on the wrong server's copy of one.

use std::net::SocketAddr;

use corridor_tests::Mesh;
use corridor_tests::redis::{RedisCli, RedisOptions, RedisServer, Resp, RespConn};
use serde_json::{Value, json};

use super::{OrPanic, aeraki, dbsize, gateway_addr, redis_objects, server, start, value_on};

/// Backends of the prefix-route meshes.
struct Backends {
    /// Behind the `cache` service itself: the RedisService's catch-all replaces it, so
    /// it must receive nothing.
    own: RedisServer,
    /// `users`: keys starting with `user:`.
    users: RedisServer,
    /// `vips`: keys starting with `user:vip:`, stored without that prefix.
    vips: RedisServer,
    /// `rest`: the catch-all.
    rest: RedisServer,
}

/// A mesh where `cache`'s RedisService routes `user:` to `users`, `user:vip:` (prefix
/// removed) to `vips` and everything else to `rest`, with `settings` as given.
async fn prefix_mesh(tag: &str, settings: Value) -> (Mesh, Backends, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let b = Backends {
        own: server(&mut mesh, RedisOptions::new()).await,
        users: server(&mut mesh, RedisOptions::new()).await,
        vips: server(&mut mesh, RedisOptions::new()).await,
        rest: server(&mut mesh, RedisOptions::new()).await,
    };
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&b.own]);
    objects.extend(redis_objects(&mesh, "users", "redis", &[&b.users]));
    objects.extend(redis_objects(&mesh, "vips", "tcp-redis-vip", &[&b.vips]));
    objects.extend(redis_objects(&mesh, "rest", "redis", &[&b.rest]));
    objects.push(aeraki(
        &mesh,
        "RedisService",
        "cache",
        json!({
            "host": ["cache"],
            "settings": settings,
            "redis": [
                { "match": { "key": { "prefix": "user:" } }, "route": { "host": "users" } },
                {
                    "match": { "key": { "prefix": "user:vip:", "removePrefix": true } },
                    "route": { "host": "vips" }
                },
                { "route": { "host": "rest" } },
            ],
        }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, b, addr)
}

#[tokio::test]
async fn prefix_routes_split_keys_across_backends() {
    let (_mesh, b, addr) = prefix_mesh("redis-prefix", json!({})).await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    for i in 0..20 {
        for key in [
            format!("user:{i}"),
            format!("order:{i}"),
            format!("user:vip:{i}"),
        ] {
            let reply = conn
                .command(&["SET", &key, &format!("{key}=v")])
                .await
                .or_panic();
            assert_eq!(reply, Resp::Simple("OK".into()), "SET {key}");
        }
    }
    // Case matters by default: USER: is not user:.
    let cli = RedisCli::new(addr);
    assert_eq!(cli.run(&["SET", "USER:upper", "x"]).await.or_panic(), "OK");

    assert_eq!(dbsize(&b.users).await, 20);
    assert_eq!(dbsize(&b.vips).await, 20);
    assert_eq!(dbsize(&b.rest).await, 21);
    assert_eq!(
        dbsize(&b.own).await,
        0,
        "the catch-all replaces the service's own cluster"
    );
    assert_eq!(
        value_on(&b.users, "user:3").await.as_deref(),
        Some("user:3=v")
    );
    assert_eq!(
        value_on(&b.rest, "order:3").await.as_deref(),
        Some("order:3=v")
    );
    assert_eq!(value_on(&b.rest, "USER:upper").await.as_deref(), Some("x"));
    // The longest prefix wins and is removed: `user:vip:3` is `3` on vips.
    assert_eq!(
        value_on(&b.vips, "3").await.as_deref(),
        Some("user:vip:3=v")
    );
    assert_eq!(value_on(&b.users, "user:vip:3").await, None);

    // Read back through the gateway, one key per backend in one MGET.
    let mget = cli
        .run(&["MGET", "user:1", "order:1", "user:vip:1", "user:none"])
        .await
        .or_panic();
    assert_eq!(mget, "user:1=v\norder:1=v\nuser:vip:1=v\n");
    assert_eq!(
        cli.run(&["EXISTS", "user:1", "order:1", "user:vip:1", "order:none"])
            .await
            .or_panic(),
        "3"
    );
    assert_eq!(
        cli.run(&["DEL", "user:2", "order:2", "user:vip:2"])
            .await
            .or_panic(),
        "3"
    );
    assert_eq!(dbsize(&b.users).await, 19);
    assert_eq!(dbsize(&b.vips).await, 19);
    assert_eq!(dbsize(&b.rest).await, 20);
}

#[tokio::test]
async fn case_insensitive_prefix_routes_ignore_the_keys_case() {
    let (_mesh, b, addr) =
        prefix_mesh("redis-prefix-case", json!({ "caseInsensitive": true })).await;
    let cli = RedisCli::new(addr);
    for (key, value) in [("USER:1", "a"), ("User:Vip:2", "b"), ("Order:3", "c")] {
        assert_eq!(
            cli.run(&["SET", key, value]).await.or_panic(),
            "OK",
            "SET {key}"
        );
    }
    assert_eq!(value_on(&b.users, "USER:1").await.as_deref(), Some("a"));
    assert_eq!(value_on(&b.vips, "2").await.as_deref(), Some("b"));
    assert_eq!(value_on(&b.rest, "Order:3").await.as_deref(), Some("c"));
    assert_eq!(
        cli.run(&["MGET", "user:1", "USER:1", "user:vip:2"])
            .await
            .or_panic(),
        "\na\nb",
        "keys are stored as sent: user:1 is not USER:1"
    );
}

/// `cache` in front of three redis-servers in PROXY mode (the default): each key is
/// hashed to one of them.
async fn hashed_mesh(tag: &str) -> (Mesh, Vec<RedisServer>, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let servers = RedisServer::start_many(&mut mesh, 3, &RedisOptions::new()).await;
    let refs: Vec<&RedisServer> = servers.iter().collect();
    let objects = redis_objects(&mesh, "cache", "redis", &refs);
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, servers, addr)
}

#[tokio::test]
async fn proxy_mode_hashes_each_key_to_one_endpoint_and_keeps_hash_tags_together() {
    let (_mesh, servers, addr) = hashed_mesh("redis-hashing").await;

    const KEYS: usize = 300;
    let mut conn = RespConn::connect(addr).await.or_panic();
    for i in 0..KEYS {
        let reply = conn
            .command(&["SET", &format!("key{i}"), &i.to_string()])
            .await
            .or_panic();
        assert_eq!(reply, Resp::Simple("OK".into()), "SET key{i}");
    }
    // Every key on exactly one server, every server with a fair share.
    let mut sizes = Vec::new();
    for server in &servers {
        sizes.push(dbsize(server).await);
    }
    assert_eq!(sizes.iter().sum::<i64>(), KEYS as i64, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n >= (KEYS / 3 / 2) as i64),
        "keys spread unevenly: {sizes:?}"
    );
    // And read back from where they went, several times over.
    for round in 0..2 {
        for i in (0..KEYS).step_by(7) {
            let reply = conn.command(&["GET", &format!("key{i}")]).await.or_panic();
            assert_eq!(
                reply.as_str(),
                Some(i.to_string().as_str()),
                "round {round}: key{i}"
            );
        }
    }
    // A hash tag routes on the tag alone: a user's keys share a server.
    for field in ["profile", "cart", "session", "prefs", "history"] {
        let key = format!("{{user42}}:{field}");
        let reply = conn.command(&["SET", &key, field]).await.or_panic();
        assert_eq!(reply, Resp::Simple("OK".into()));
    }
    let mut holders = Vec::new();
    for server in &servers {
        if value_on(server, "{user42}:profile").await.is_some() {
            holders.push(server.addr);
            for field in ["cart", "session", "prefs", "history"] {
                let key = format!("{{user42}}:{field}");
                assert_eq!(
                    value_on(server, &key).await.as_deref(),
                    Some(field),
                    "{key}"
                );
            }
        }
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
}

/// Two keys `<prefix><n>` that the gateway sends to different servers of `servers`
/// (found by writing probes through `conn` and asking the servers, then deleting them).
async fn keys_on_two_servers(
    conn: &mut RespConn,
    servers: &[RedisServer],
    prefix: &str,
) -> (String, String) {
    let mut seen: Vec<(String, SocketAddr)> = Vec::new();
    for n in 0..100 {
        let key = format!("{prefix}{n}");
        conn.command(&["SET", &key, "probe"]).await.or_panic();
        let mut holder = None;
        for server in servers {
            if value_on(server, &key).await.is_some() {
                holder = Some(server.addr);
            }
        }
        conn.command(&["DEL", &key]).await.or_panic();
        let holder = holder.or_panic();
        if let Some((other, _)) = seen.iter().find(|(_, at)| *at != holder) {
            return (other.clone(), key);
        }
        seen.push((key, holder));
    }
    panic!("every `{prefix}<n>` went to one server: {seen:?}");
}

#[tokio::test]
async fn lmove_never_moves_into_another_servers_copy_of_the_destination() {
    let (_mesh, servers, addr) = hashed_mesh("redis-lmove").await;
    let mut conn = RespConn::connect(addr).await.or_panic();

    // LMOVE src dst: the element must end up in the `dst` the gateway reads back, or
    // the command must be refused with an error naming it and nothing moved.
    let (src, dst) = keys_on_two_servers(&mut conn, &servers, "list").await;
    conn.command(&["RPUSH", &src, "a", "b"]).await.or_panic();
    let moved = conn
        .command(&["LMOVE", &src, &dst, "LEFT", "RIGHT"])
        .await
        .or_panic();
    let src_now = conn.command(&["LRANGE", &src, "0", "-1"]).await.or_panic();
    let dst_now = conn.command(&["LRANGE", &dst, "0", "-1"]).await.or_panic();
    let list = |items: &[&str]| {
        Resp::Array(Some(
            items
                .iter()
                .map(|i| Resp::Bulk(Some(i.as_bytes().to_vec())))
                .collect(),
        ))
    };
    match moved.as_error() {
        Some(e) => {
            assert!(
                e.starts_with("ERR") && e.contains("lmove"),
                "LMOVE refused with {e}"
            );
            assert_eq!(
                (src_now, dst_now),
                (list(&["a", "b"]), list(&[])),
                "refused, yet moved"
            );
        }
        None => assert_eq!(
            (moved, src_now, dst_now),
            (Resp::Bulk(Some(b"a".to_vec())), list(&["b"]), list(&["a"])),
            "LMOVE {src} {dst}: the element went to a `{dst}` that reads of {dst} do not reach"
        ),
    }
}

#[tokio::test]
async fn pfcount_of_keys_on_two_servers_counts_both_or_is_refused() {
    let (_mesh, servers, addr) = hashed_mesh("redis-pfcount").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    // PFCOUNT a b counts the union of both HyperLogLogs, or is refused naming itself.
    let (a, b) = keys_on_two_servers(&mut conn, &servers, "hll").await;
    conn.command(&["PFADD", &a, "x", "y"]).await.or_panic();
    conn.command(&["PFADD", &b, "z"]).await.or_panic();
    let count = conn.command(&["PFCOUNT", &a, &b]).await.or_panic();
    match count.as_error() {
        Some(e) => assert!(
            e.starts_with("ERR") && e.contains("pfcount"),
            "PFCOUNT refused with {e}"
        ),
        None => assert_eq!(
            count,
            Resp::Integer(3),
            "PFCOUNT {a} {b} ({a} and {b} on different servers)"
        ),
    }
}
