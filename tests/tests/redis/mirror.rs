//! Mirroring: a RedisService route's `mirror` receives the writes (reads excluded when
//! asked), without the client waiting for it; the mirror may be a twemproxy pool, as in
//! the "production traffic mirrored to a test pool" use case.

use std::net::SocketAddr;

use corridor_tests::mesh::Upstream;
use corridor_tests::redis::{RedisOptions, RedisServer, Resp, RespConn, Twemproxy};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

use super::{OrPanic, aeraki, gateway_addr, redis_objects, server, start, value_on};

/// A RedisService for `cache`: one catch-all route to `cache` mirrored to `shadow`.
fn mirrored(mesh: &Mesh, exclude_reads: bool) -> Value {
    aeraki(
        mesh,
        "RedisService",
        "cache",
        json!({
            "host": ["cache"],
            "redis": [{
                "route": { "host": "cache" },
                "mirror": [{
                    "route": { "host": "shadow" },
                    "percentage": { "value": 100 },
                    "excludeReadCommands": exclude_reads,
                }],
            }],
        }),
    )
}

/// Waits until the sum of `servers`' key counts is `want`.
async fn wait_for_keys(servers: &[&RedisServer], want: i64) {
    eventually(
        PATIENCE,
        &format!("{want} keys on the mirror"),
        || async move {
            let mut total = 0;
            for server in servers {
                total += server.command(&["DBSIZE"]).await?.as_int().unwrap_or(0);
            }
            if total == want {
                Ok(())
            } else {
                anyhow::bail!("the mirror holds {total} keys")
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_mirror_receives_writes_but_not_reads() {
    let mut mesh = Mesh::new("redis-mirror");
    let main = server(&mut mesh, RedisOptions::new()).await;
    let shadow = server(&mut mesh, RedisOptions::new()).await;
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&main]);
    objects.extend(redis_objects(&mesh, "shadow", "redis", &[&shadow]));
    objects.push(mirrored(&mesh, true));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;

    const KEYS: usize = 20;
    let mut conn = RespConn::connect(addr).await.or_panic();
    for i in 0..KEYS {
        let reply = conn
            .command(&["SET", &format!("k{i}"), &format!("v{i}")])
            .await
            .or_panic();
        assert_eq!(reply, Resp::Simple("OK".into()));
    }
    for i in 0..KEYS {
        let reply = conn.command(&["GET", &format!("k{i}")]).await.or_panic();
        assert_eq!(
            reply.as_str(),
            Some(format!("v{i}").as_str()),
            "the primary answers reads"
        );
    }
    assert_eq!(
        conn.command(&["INCR", "hits"]).await.or_panic(),
        Resp::Integer(1)
    );

    // Mirrored commands are fire-and-forget: wait for them to land.
    wait_for_keys(&[&shadow], (KEYS + 1) as i64).await;
    let mirrored = shadow.command_calls().await.or_panic();
    assert_eq!(mirrored.get("set"), Some(&(KEYS as u64)), "{mirrored:?}");
    assert_eq!(mirrored.get("incr"), Some(&1), "{mirrored:?}");
    assert_eq!(
        mirrored.get("get"),
        None,
        "reads were mirrored: {mirrored:?}"
    );
    assert_eq!(value_on(&shadow, "k7").await.as_deref(), Some("v7"));
    let primary = main.command_calls().await.or_panic();
    assert_eq!(primary.get("get"), Some(&(KEYS as u64)), "{primary:?}");
    assert_eq!(primary.get("set"), Some(&(KEYS as u64)), "{primary:?}");
}

/// A twemproxy pool as a Service endpoint.
struct Pool(Twemproxy);

impl Upstream for Pool {
    fn name(&self) -> &str {
        "twemproxy"
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr
    }
}

#[tokio::test]
async fn a_twemproxy_pool_can_be_the_mirror() {
    let mut mesh = Mesh::new("redis-mirror-twem");
    let main = server(&mut mesh, RedisOptions::new()).await;
    let pool = RedisServer::start_many(&mut mesh, 2, &RedisOptions::new()).await;
    let addrs: Vec<SocketAddr> = pool.iter().map(|s| s.addr).collect();
    let proxy = Pool(
        Twemproxy::start(&addrs, mesh.upstream_addr(0))
            .await
            .or_panic(),
    );
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&main]);
    objects.extend(mesh.service_objects(
        "shadow",
        corridor_tests::manifests::ServicePort::new("redis", super::PORT),
        &[(&proxy, "v1")],
    ));
    objects.push(mirrored(&mesh, false));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;

    const KEYS: usize = 40;
    let mut conn = RespConn::connect(addr).await.or_panic();
    for i in 0..KEYS {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(
            conn.command(&["SET", &key, &value]).await.or_panic(),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            conn.command(&["GET", &key]).await.or_panic().as_str(),
            Some(value.as_str())
        );
    }
    let refs: Vec<&RedisServer> = pool.iter().collect();
    wait_for_keys(&refs, KEYS as i64).await;
    // twemproxy spread the mirrored writes over its pool, and reads went along too.
    for server in &pool {
        assert!(
            server.command(&["DBSIZE"]).await.or_panic().as_int() > Some(0),
            "{} got no mirrored key",
            server.addr
        );
    }
    eventually(PATIENCE, "the mirrored reads", || {
        let pool = &pool;
        async move {
            let mut gets = 0;
            for server in pool {
                gets += server
                    .command_calls()
                    .await?
                    .get("get")
                    .copied()
                    .unwrap_or(0);
            }
            if gets == KEYS as u64 {
                Ok(())
            } else {
                anyhow::bail!("{gets} GETs mirrored")
            }
        }
    })
    .await;
    assert_eq!(value_on(&main, "k7").await.as_deref(), Some("v7"));
}
