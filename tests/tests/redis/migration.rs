//! Slot migrations behind the gateway (CLUSTER mode): a slot moved half way answers -ASK,
//! a moved slot -MOVED; plain redis-cli (no `-c`) and raw connections never see either,
//! alone or under a steady load of writes and reads on the moving slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use corridor_tests::redis::{RedisCli, Resp, RespConn, key_slot};
use corridor_tests::{PATIENCE, eventually};

use super::cluster::cluster_mesh;
use super::{OrPanic, value_on};

/// Connections writing and reading the moving slot during the loaded migration.
const CLIENTS: usize = 4;
/// Keys of the moving slot per client.
const KEYS_PER_CLIENT: usize = 10;
/// Keys moved per MIGRATE, so the migration takes several steps.
const KEYS_PER_STEP: usize = 5;
/// Commands the clients must complete between two migration steps, so traffic really
/// meets every stage of the migration.
const OPS_PER_STEP: u64 = 40;

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

#[tokio::test]
async fn a_slot_migration_under_load_gives_no_client_errors() {
    let (_mesh, cluster, addr) = cluster_mesh("redis-cluster-load").await;
    let masters = cluster.masters().await.or_panic();
    let (from, to) = (masters[0], masters[1]);
    let tag = cluster.key_on(from, "hot").await.or_panic();
    let slot = key_slot(tag.as_bytes());

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (stop, ops, tag) = (stop.clone(), ops.clone(), tag.clone());
        clients.push(tokio::spawn(async move {
            // Each client owns its keys, so it knows what every GET must return.
            let mut conn = RespConn::connect(addr).await?;
            let mut failures = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..KEYS_PER_CLIENT {
                    let key = format!("{{{tag}}}:{c}:{i}");
                    let value = format!("r{round}");
                    let set = conn.command(&["SET", &key, &value]).await?;
                    if set != Resp::Simple("OK".into()) {
                        failures.push(format!("SET {key} {value}: {set:?}"));
                    }
                    let get = conn.command(&["GET", &key]).await?;
                    if get.as_str() != Some(value.as_str()) {
                        failures.push(format!("GET {key} (want {value}): {get:?}"));
                    }
                    ops.fetch_add(2, Ordering::Relaxed);
                }
                round += 1;
            }
            anyhow::Ok(failures)
        }));
    }
    let progress = |what: String| {
        let ops = ops.clone();
        async move {
            let target = ops.load(Ordering::Relaxed) + OPS_PER_STEP;
            eventually(PATIENCE, &what, || {
                let ops = ops.clone();
                async move {
                    let done = ops.load(Ordering::Relaxed);
                    if done >= target {
                        Ok(())
                    } else {
                        anyhow::bail!("{done} of {target} commands done")
                    }
                }
            })
            .await;
        }
    };
    // Every client has written each of its keys once before the slot starts moving.
    progress("the clients to get going".into()).await;
    eventually(PATIENCE, "every key to exist", || {
        let cluster = &cluster;
        async move {
            let source = cluster
                .node(from)
                .ok_or_else(|| anyhow::anyhow!("no {from}"))?;
            let count = source
                .command(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
                .await?;
            match count.as_int() {
                Some(n) if n == (CLIENTS * KEYS_PER_CLIENT) as i64 => Ok(()),
                _ => anyhow::bail!("{count:?} keys in slot {slot}"),
            }
        }
    })
    .await;

    let migration = cluster.begin_migration(slot, to).await.or_panic();
    let mut steps = 0;
    while migration.move_keys(KEYS_PER_STEP).await.or_panic() > 0 {
        steps += 1;
        progress(format!("traffic after migration step {steps}")).await;
    }
    migration.finish(&cluster).await.or_panic();
    progress("traffic after the slot moved".into()).await;
    // And back again, in one go.
    cluster.migrate_slot(slot, from).await.or_panic();
    progress("traffic after the slot moved back".into()).await;

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(
            client
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r)
                .or_panic(),
        );
    }
    assert!(steps >= 2, "the migration took {steps} steps");
    assert!(
        failures.is_empty(),
        "{} client errors over {} commands, first ones: {:#?}",
        failures.len(),
        ops.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
}
