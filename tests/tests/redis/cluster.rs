//! A RedisDestination in CLUSTER mode in front of a real three-node Redis Cluster: the
//! client is plain `redis-cli` (no `-c`) or a raw connection, so only the gateway knows
//! about slots. Keys land on the master owning their slot, MGET spans slots, the mesh
//! holds the nodes' password, reads go to replicas under the REPLICA read policy, and a
//! service can move from one server to a cluster with no change on the client side.
//! Slot migrations are in `migration`.

use std::net::SocketAddr;

use corridor_tests::redis::{RedisCli, RedisCluster, RedisOptions, Resp, RespConn, key_slot};
use corridor_tests::{Mesh, PATIENCE, eventually, manifests};
use serde_json::{Value, json};

use super::{OrPanic, aeraki, gateway_addr, redis_objects, server, start, value_on};

/// A CLUSTER-mode RedisDestination for `host`, with upstream `auth` if given.
fn cluster_destination(mesh: &Mesh, host: &str, auth: Option<Value>) -> Value {
    let mut redis = json!({ "mode": "CLUSTER" });
    if let Some(auth) = auth {
        redis["auth"] = auth;
    }
    aeraki(
        mesh,
        "RedisDestination",
        host,
        json!({ "host": host, "trafficPolicy": { "connectionPool": { "redis": redis } } }),
    )
}

/// `sessions` (port `tcp-redis-sessions`) whose endpoints are the nodes of a fresh
/// three-master cluster, with a CLUSTER-mode RedisDestination.
pub(super) async fn cluster_mesh(tag: &str) -> (Mesh, RedisCluster, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let cluster = RedisCluster::start(&mut mesh, 3).await.or_panic();
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let mut objects = redis_objects(&mesh, "sessions", "tcp-redis-sessions", &nodes);
    objects.push(cluster_destination(&mesh, "sessions", None));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "sessions").await;
    (mesh, cluster, addr)
}

/// Writes one key per master through `cli` and checks each landed on its slot's master.
async fn one_key_per_master(cluster: &RedisCluster, cli: &RedisCli, prefix: &str) {
    let masters = cluster.masters().await.or_panic();
    assert_eq!(masters.len(), 3);
    let mut keys = Vec::new();
    for (i, master) in masters.iter().enumerate() {
        let key = cluster.key_on(*master, prefix).await.or_panic();
        let value = format!("{prefix}{i}");
        assert_eq!(
            cli.run(&["SET", &key, &value]).await.or_panic(),
            "OK",
            "SET {key}"
        );
        let owner = cluster.node(*master).or_panic();
        assert_eq!(
            value_on(owner, &key).await,
            Some(value),
            "{key} on {master}"
        );
        keys.push(key);
    }
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    assert_eq!(
        cli.run(&mget).await.or_panic(),
        format!("{prefix}0\n{prefix}1\n{prefix}2")
    );
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
async fn the_mesh_authenticates_to_every_cluster_node() {
    let mut mesh = Mesh::new("redis-cluster-auth");
    let options = RedisOptions::new().password("cluster-pw");
    let cluster = RedisCluster::start_with(&mut mesh, 3, 0, options)
        .await
        .or_panic();
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let mut objects = redis_objects(&mesh, "sessions", "redis", &nodes);
    let auth = json!({ "secret": { "name": "cluster-auth" } });
    objects.push(cluster_destination(&mesh, "sessions", Some(auth)));
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "cluster-auth", "namespace": mesh.ns },
        "stringData": { "password": "cluster-pw" },
    }));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "sessions").await;
    // The client has no password; discovery, routing and every node's connection use
    // the mesh's.
    one_key_per_master(&cluster, &RedisCli::new(addr), "auth:").await;
    let anonymous = RespConn::connect(cluster.seed())
        .await
        .or_panic()
        .command(&["CLUSTER", "SLOTS"])
        .await
        .or_panic();
    assert!(
        anonymous
            .as_error()
            .is_some_and(|e| e.starts_with("NOAUTH")),
        "the cluster does not require the password: {anonymous:?}"
    );
}

#[tokio::test]
async fn a_single_server_can_become_a_cluster_under_the_same_client_config() {
    let mut mesh = Mesh::new("redis-to-cluster");
    let single = server(&mut mesh, RedisOptions::new()).await;
    let objects = redis_objects(&mesh, "cache", "redis", &[&single]);
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    let cli = RedisCli::new(addr);
    assert_eq!(cli.run(&["SET", "before", "single"]).await.or_panic(), "OK");
    assert_eq!(value_on(&single, "before").await.as_deref(), Some("single"));
    // A client connected all along, like an application's connection pool.
    let mut long_lived = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        long_lived
            .command(&["GET", "before"])
            .await
            .or_panic()
            .as_str(),
        Some("single")
    );

    // Staging becomes production: the same service now fronts a Redis Cluster.
    let cluster = RedisCluster::start(&mut mesh, 3).await.or_panic();
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let mut objects = redis_objects(&mesh, "cache", "redis", &nodes);
    objects.push(cluster_destination(&mesh, "cache", None));
    mesh.write("redis.yaml", &manifests::yaml(objects));
    let (cluster_ref, single_ref, cli_ref) = (&cluster, &single, &cli);
    eventually(
        PATIENCE,
        "writes through the gateway to reach the cluster",
        || async move {
            let reply = cli_ref.run(&["SET", "probe", "x"]).await?;
            let owner = cluster_ref.owner(key_slot(b"probe")).await?;
            let node = cluster_ref
                .node(owner)
                .ok_or_else(|| anyhow::anyhow!("no node {owner}"))?;
            match node.command(&["MGET", "probe"]).await?.as_array() {
                Some([v]) if v.as_str() == Some("x") => Ok(()),
                _ => {
                    single_ref.command(&["DEL", "probe"]).await?;
                    anyhow::bail!("SET probe answered {reply:?} and did not reach {owner}")
                }
            }
        },
    )
    .await;
    one_key_per_master(&cluster, &cli, "moved:").await;
    // The connection opened before the switch is served by the cluster too.
    for i in 0..10 {
        let key = format!("old-conn:{i}");
        let reply = long_lived.command(&["SET", &key, "kept"]).await.or_panic();
        assert_eq!(
            reply,
            Resp::Simple("OK".into()),
            "SET {key} on the old connection"
        );
        let owner = cluster.owner(key_slot(key.as_bytes())).await.or_panic();
        let node = cluster.node(owner).or_panic();
        assert_eq!(value_on(node, &key).await.as_deref(), Some("kept"), "{key}");
    }
    assert_eq!(value_on(&single, "old-conn:0").await, None);
}

#[tokio::test]
async fn reads_go_to_replicas_when_the_read_policy_says_so() {
    let mut mesh = Mesh::new("redis-cluster-replicas");
    let cluster = RedisCluster::start_with(&mut mesh, 3, 1, RedisOptions::new())
        .await
        .or_panic();
    let nodes: Vec<_> = cluster.nodes.iter().collect();
    let mut objects = redis_objects(&mesh, "sessions", "redis", &nodes);
    objects.push(cluster_destination(&mesh, "sessions", None));
    objects.push(aeraki(
        &mesh,
        "RedisService",
        "sessions",
        json!({ "host": ["sessions"], "settings": { "readPolicy": "REPLICA" } }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "sessions").await;

    const READS: usize = 10;
    let slots = cluster.slots().await.or_panic();
    let mut conn = RespConn::connect(addr).await.or_panic();
    for range in &slots {
        let key = cluster.key_on(range.master, "r:").await.or_panic();
        let set = conn.command(&["SET", &key, "x"]).await.or_panic();
        assert_eq!(set, Resp::Simple("OK".into()), "SET {key}");
        // Replication is asynchronous: the first reads may come before the write.
        let key_ref = &key;
        eventually(
            PATIENCE,
            &format!("{key} readable through the gateway"),
            || async move {
                let reply = RespConn::connect(addr)
                    .await?
                    .command(&["GET", key_ref])
                    .await?;
                match reply.as_str() {
                    Some("x") => Ok(()),
                    _ => anyhow::bail!("GET {key_ref} answered {reply:?}"),
                }
            },
        )
        .await;
        for _ in 0..READS {
            let reply = conn.command(&["GET", &key]).await.or_panic();
            assert_eq!(reply.as_str(), Some("x"), "GET {key}");
        }
    }
    // Writes on the masters, reads on the replicas.
    for range in &slots {
        let master = cluster.node(range.master).or_panic();
        let calls = master.command_calls().await.or_panic();
        assert_eq!(calls.get("set"), Some(&1), "{}: {calls:?}", range.master);
        assert_eq!(
            calls.get("get"),
            None,
            "a read reached master {}: {calls:?}",
            range.master
        );
        let replica = cluster.node(range.replicas[0]).or_panic();
        let calls = replica.command_calls().await.or_panic();
        let gets = calls.get("get").copied().unwrap_or(0);
        assert!(
            gets >= READS as u64,
            "{} served {gets} reads: {calls:?}",
            range.replicas[0]
        );
    }
}
