//! A RedisDestination in CLUSTER mode in front of a real three-node Redis Cluster: the
//! client is plain `redis-cli` (no `-c`) or a raw connection, so only the gateway knows
//! about slots. Keys land on the master owning their slot, MGET spans slots, and a slot
//! migration is followed (ASK while it runs, MOVED after) without the client seeing it.

use std::net::SocketAddr;

use corridor_tests::Mesh;
use corridor_tests::redis::{RedisCli, RedisCluster, Resp, RespConn, key_slot};
use serde_json::json;

use super::{OrPanic, aeraki, gateway_addr, redis_objects, start, value_on};

/// `sessions` (port `tcp-redis-sessions`) whose endpoints are the nodes of a fresh
/// three-master cluster, with a CLUSTER-mode RedisDestination.
async fn cluster_mesh(tag: &str) -> (Mesh, RedisCluster, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let cluster = RedisCluster::start(&mut mesh, 3).await.or_panic();
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let mut objects = redis_objects(&mesh, "sessions", "tcp-redis-sessions", &nodes);
    objects.push(aeraki(
        &mesh,
        "RedisDestination",
        "sessions",
        json!({
            "host": "sessions",
            "trafficPolicy": { "connectionPool": { "redis": { "mode": "CLUSTER" } } },
        }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "sessions").await;
    (mesh, cluster, addr)
}

#[tokio::test]
async fn keys_land_on_the_master_owning_their_slot() {
    let (_mesh, cluster, addr) = cluster_mesh("redis-cluster-slots").await;
    let masters = cluster.masters().await.or_panic();
    assert_eq!(masters.len(), 3);
    let cli = RedisCli::new(addr);
    let mut keys = Vec::new();
    for (i, master) in masters.iter().enumerate() {
        // Two keys per master, one of them with a hash tag naming another key's slot.
        let key = cluster.key_on(*master, "user:").await.or_panic();
        let tagged = format!("{{{key}}}:profile");
        assert_eq!(key_slot(tagged.as_bytes()), key_slot(key.as_bytes()));
        for (k, v) in [(&key, format!("v{i}")), (&tagged, format!("p{i}"))] {
            assert_eq!(cli.run(&["SET", k, &v]).await.or_panic(), "OK", "SET {k}");
            let owner = cluster.node(*master).or_panic();
            assert_eq!(
                value_on(owner, k).await,
                Some(v),
                "{k} on its slot's master {master}"
            );
        }
        keys.push(key);
    }
    // Each master holds exactly its two keys.
    for master in &masters {
        let node = cluster.node(*master).or_panic();
        let size = node.command(&["DBSIZE"]).await.or_panic();
        assert_eq!(size, Resp::Integer(2), "{master}");
    }
    // Reads come back through the gateway, and MGET spans the three masters' slots.
    assert_eq!(cli.run(&["GET", &keys[1]]).await.or_panic(), "v1");
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("user:missing");
    assert_eq!(cli.run(&mget).await.or_panic(), "v0\nv1\nv2\n");
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    assert_eq!(cli.run(&del).await.or_panic(), "3");
    let mut mset = vec!["MSET"];
    for key in &keys {
        mset.extend([key.as_str(), "again"]);
    }
    assert_eq!(cli.run(&mset).await.or_panic(), "OK");
    for (key, master) in keys.iter().zip(&masters) {
        let owner = cluster.node(*master).or_panic();
        assert_eq!(value_on(owner, key).await.as_deref(), Some("again"));
    }
}

#[tokio::test]
async fn a_slot_migration_is_followed_without_client_errors() {
    let (_mesh, cluster, addr) = cluster_mesh("redis-cluster-migrate").await;
    let masters = cluster.masters().await.or_panic();
    let (from, to) = (masters[0], masters[1]);
    let key = cluster.key_on(from, "moving:").await.or_panic();
    let slot = key_slot(key.as_bytes());
    let cli = RedisCli::new(addr).typed();
    assert_eq!(cli.run(&["SET", &key, "v1"]).await.or_panic(), "OK");
    // A long-lived connection too: its upstream connections stay open across the move.
    let mut conn = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        conn.command(&["GET", &key]).await.or_panic().as_str(),
        Some("v1")
    );

    // Half way: the key is on the new owner, the slot still on the old one (-ASK).
    let migration = cluster.begin_migration(slot, to).await.or_panic();
    assert_eq!(migration.move_keys(100).await.or_panic(), 1);
    let source = cluster.node(from).or_panic();
    let ask = source.command(&["GET", &key]).await.or_panic();
    assert_eq!(ask.as_error(), Some(format!("ASK {slot} {to}").as_str()));
    assert_eq!(
        cli.run(&["GET", &key]).await.or_panic(),
        "\"v1\"",
        "GET during the migration"
    );
    assert_eq!(
        conn.command(&["GET", &key]).await.or_panic().as_str(),
        Some("v1")
    );
    // A new key of the migrating slot goes to the importing node (ASK, then ASKING).
    let sibling = format!("{{{key}}}:new");
    assert_eq!(cli.run(&["SET", &sibling, "fresh"]).await.or_panic(), "OK");
    // The importing node holds both keys of the slot now (it answers reads of them only
    // after ASKING, so count them instead).
    let target = cluster.node(to).or_panic();
    let count = target
        .command(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
        .await
        .or_panic();
    assert_eq!(count, Resp::Integer(2), "keys of slot {slot} on {to}");

    // Done: the old owner answers -MOVED, the gateway follows.
    migration.finish(&cluster).await.or_panic();
    assert_eq!(cluster.owner(slot).await.or_panic(), to);
    let moved = source.command(&["GET", &key]).await.or_panic();
    assert_eq!(
        moved.as_error(),
        Some(format!("MOVED {slot} {to}").as_str())
    );
    assert_eq!(
        cli.run(&["GET", &key]).await.or_panic(),
        "\"v1\"",
        "GET after the migration"
    );
    assert_eq!(
        conn.command(&["SET", &key, "v2"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.command(&["GET", &key]).await.or_panic().as_str(),
        Some("v2")
    );
    assert_eq!(value_on(target, &key).await.as_deref(), Some("v2"));
    assert_eq!(value_on(target, &sibling).await.as_deref(), Some("fresh"));
    let other = cluster.key_on(masters[2], "other:").await.or_panic();
    assert_eq!(cli.run(&["SET", &other, "o"]).await.or_panic(), "OK");
    assert_eq!(
        cli.run(&["MGET", &key, &sibling, &other]).await.or_panic(),
        "1) \"v2\"\n2) \"fresh\"\n3) \"o\""
    );
    // Nothing was written to the old owner along the way.
    assert_eq!(
        source.command(&["DBSIZE"]).await.or_panic(),
        Resp::Integer(0)
    );
}
