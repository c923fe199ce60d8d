//! One data command: faults, then each key routed by prefix to a cluster and a server,
//! the command (or its per-key parts) queued on the server's pipelined connection in
//! arrival order, mirrors, and a future that waits for the replies, follows MOVED/ASK
//! and merges the parts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use rand::Rng;

use super::RedisListener;
use super::frame::Frame;
use super::pending::{Follow, Pending};
use super::placement::rendezvous;
use super::redirect::discover;
use super::slots::Shard;
use super::upstream::Pipelined;
use crate::cluster::ClusterState;
use crate::model::redis::{FaultKind, ReadPolicy, RedisMode};
use crate::redis::command::{CommandInfo, Kind, key_indices};
use crate::redis::resp::{Command, Value, encode_command};
use crate::redis::slot;

/// Size of the blocks commands are encoded into.
const ENCODE_BLOCK: usize = 16 * 1024;
/// Room below which a new encoding block is taken (most commands are smaller).
const ENCODE_MIN_ROOM: usize = 512;

/// Queues a data command (one that passed the arity check) and returns its pending
/// reply. Everything up to the queuing happens before the next command of the same
/// client is looked at, so a client's commands reach each server in order. `scratch`
/// is the connection's encoding buffer (reused, so encoding allocates nothing).
pub async fn dispatch(
    l: &Arc<RedisListener>,
    info: &'static CommandInfo,
    mut cmd: Command,
    scratch: &mut BytesMut,
) -> Pending {
    let started = Instant::now();
    let metered = |p: Pending, extra: Duration| p.metered(l, info, started, extra);
    let mut delay = None;
    for f in &l.config.faults {
        let applies =
            f.commands.is_empty() || f.commands.iter().any(|c| c.eq_ignore_ascii_case(info.name));
        if applies && (f.fraction >= 1.0 || rand::rng().random_bool(f.fraction)) {
            match f.kind {
                FaultKind::Error => {
                    return metered(
                        Pending::ready(Value::error("ERR Fault injected")),
                        Duration::ZERO,
                    );
                }
                FaultKind::Delay(d) => delay = Some(d),
            }
            break;
        }
    }
    let refuse = |text: String| metered(Pending::ready(Value::error(text)), Duration::ZERO);
    let first = match key_indices(info, &cmd.args).map(|mut k| k.next()) {
        Ok(Some(first)) => first,
        Ok(None) => return refuse(format!("ERR '{}' needs a key to be routed", info.name)),
        Err(e) => return metered(Pending::ready(e), Duration::ZERO),
    };
    // Keys that must be served together (EVAL's, PFCOUNT's) may not span servers or
    // slots: the command would run where the first one lives and miss the others.
    if matches!(info.kind, Kind::EvalKeys | Kind::Colocated)
        && !key_indices(info, &cmd.args)
            .is_ok_and(|keys| colocated(l, keys.map(|k| &cmd.args[k][..])))
    {
        return refuse(format!(
            "ERR CROSSSLOT the keys of '{}' don't hash to the same server or slot",
            info.name
        ));
    }
    let extra = delay.unwrap_or_default();
    if !matches!(info.kind, Kind::MultiGet | Kind::MultiSum | Kind::MultiSet) {
        // EVAL's keys must live together: route on the first, and in a Redis Cluster
        // let the server say CROSSSLOT for the others.
        let (args, wire) = (std::mem::take(&mut cmd.args), cmd.wire.take());
        let part = send(l, info, args, wire, first, scratch).await;
        return match delay {
            None => metered(part, extra),
            Some(d) => metered(
                Pending::boxed(async move {
                    tokio::time::sleep(d).await;
                    part.await
                }),
                extra,
            ),
        };
    }
    let single: &[u8] = match info.kind {
        Kind::MultiGet => b"GET",
        Kind::MultiSet => b"SET",
        _ => &cmd.args[0],
    };
    let single = Bytes::copy_from_slice(single);
    let width = if info.kind == Kind::MultiSet { 2 } else { 1 };
    let mut parts = Vec::new();
    if let Ok(keys) = key_indices(info, &cmd.args) {
        for k in keys {
            let mut args = Vec::with_capacity(1 + width);
            args.push(single.clone());
            args.extend(cmd.args[k..k + width].iter().cloned());
            parts.push(send(l, info, args, None, 1, scratch).await);
        }
    }
    let kind = info.kind;
    metered(
        Pending::boxed(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let replies = join_all(parts).await.into_iter().map(Frame::into_value);
            merge(kind, replies.collect())
        }),
        extra,
    )
}

/// Routes `args` on the key at `key_at`, queues it, mirrors it, and returns its pending
/// reply (not metered: the caller counts the whole command). `wire`, when the client's
/// bytes for `args` are at hand, is sent instead of encoding `args` again.
async fn send(
    l: &Arc<RedisListener>,
    info: &'static CommandInfo,
    mut args: Vec<Bytes>,
    wire: Option<Bytes>,
    key_at: usize,
    scratch: &mut BytesMut,
) -> Pending {
    let Some(route) = l.config.route_for(&args[key_at]) else {
        return Pending::ready(Value::error("ERR no upstream host"));
    };
    if route.remove_prefix {
        for k in key_positions(info, &args, key_at) {
            let stripped = args[k].slice(route.prefix.len().min(args[k].len())..);
            args[k] = stripped;
        }
    }
    // One block serves many commands: each is split off it, and it is replaced only
    // when used up (reserving per command would allocate per command, since the
    // previous command still holds its part until it is written).
    if scratch.capacity() < ENCODE_MIN_ROOM {
        scratch.reserve(ENCODE_BLOCK);
    }
    match wire.filter(|_| !route.remove_prefix) {
        Some(wire) => scratch.extend_from_slice(&wire),
        None => encode_command(&args, scratch),
    }
    let bytes = scratch.split().freeze();
    let key = args.swap_remove(key_at);
    for m in &route.mirrors {
        if (m.exclude_read_commands && !info.write)
            || !(m.fraction >= 1.0 || rand::rng().random_bool(m.fraction))
        {
            continue;
        }
        let (l, cluster, bytes, key) = (l.clone(), m.cluster.clone(), bytes.clone(), key.clone());
        tokio::spawn(async move {
            if let Ok((conn, _)) = target(&l, &cluster, &key, true).await {
                let _ = conn.send(bytes).await;
            }
        });
    }
    let (conn, state) = match target(l, &route.cluster, &key, info.write).await {
        Ok(found) => found,
        Err(e) => return Pending::ready(e),
    };
    if !l.config.redirection && state.config.redis.mode != RedisMode::Cluster {
        return Pending::upstream(conn.send(bytes), None);
    }
    let reply = conn.send(bytes.clone());
    let follow = Follow {
        listener: l.clone(),
        cluster: route.cluster.clone(),
        state,
        key,
        bytes,
    };
    Pending::upstream(reply, Some(Box::new(follow)))
}

/// The argument positions holding keys of a single (or per-key) command, for prefix removal.
fn key_positions(info: &CommandInfo, args: &[Bytes], first: usize) -> Vec<usize> {
    match info.kind {
        Kind::EvalKeys => key_indices(info, args)
            .map(|k| k.collect())
            .unwrap_or_default(),
        _ => vec![first],
    }
}

/// The connection for `key` in `cluster`: the hashed server (PROXY mode) or a node of
/// the key's slot (CLUSTER mode; the slot map is learnt on first use): the primary for
/// writes, for reads as the read policy says.
async fn target(
    l: &Arc<RedisListener>,
    cluster: &Arc<str>,
    key: &[u8],
    write: bool,
) -> Result<(Pipelined, Arc<ClusterState>), Value> {
    let snapshot = l.shared.snapshot.load_full();
    let Some(state) = snapshot.clusters.get(&**cluster).cloned() else {
        return Err(Value::error("ERR no upstream host"));
    };
    let addr = match state.config.redis.mode {
        RedisMode::Proxy => {
            let hashed = if l.config.hashtagging {
                slot::hash_tag(key)
            } else {
                key
            };
            rendezvous(&state, hashed).ok_or_else(|| Value::error("ERR no upstream host"))?
        }
        RedisMode::Cluster => {
            let map = match l.slot_map(cluster) {
                Some(m) => m,
                None => {
                    let m = discover(l, &state).await?;
                    l.set_slot_map(cluster.clone(), m);
                    l.slot_map(cluster)
                        .ok_or_else(|| Value::error("ERR no upstream host"))?
                }
            };
            let shard = map
                .shard(slot::slot(key))
                .ok_or_else(|| Value::error("ERR no node serves this key's slot"))?;
            if write {
                shard.primary
            } else {
                read_node(l.config.read_policy, shard)?
            }
        }
    };
    let conn = l
        .connection(addr, &state)
        .await
        .map_err(|e| Value::error(format!("ERR upstream failure: {e}")))?;
    Ok((conn, state))
}

/// The node a read goes to under `policy`.
fn read_node(policy: ReadPolicy, shard: &Shard) -> Result<SocketAddr, Value> {
    let mut rng = rand::rng();
    let replica = (!shard.replicas.is_empty())
        .then(|| shard.replicas[rng.random_range(0..shard.replicas.len())]);
    Ok(match policy {
        ReadPolicy::Master | ReadPolicy::PreferMaster => shard.primary,
        ReadPolicy::Replica => {
            replica.ok_or_else(|| Value::error("ERR no replica serves this key's slot"))?
        }
        ReadPolicy::PreferReplica => replica.unwrap_or(shard.primary),
        ReadPolicy::Any => {
            let n = shard.replicas.len() + 1;
            match rng.random_range(0..n) {
                0 => shard.primary,
                i => shard.replicas[i - 1],
            }
        }
    })
}

/// Whether every key goes to the same cluster and there to the same server (PROXY mode)
/// or slot (CLUSTER mode).
fn colocated<'k>(l: &RedisListener, mut keys: impl Iterator<Item = &'k [u8]>) -> bool {
    let snapshot = l.shared.snapshot.load();
    let place = |key: &[u8]| {
        let route = l.config.route_for(key)?;
        let key = if route.remove_prefix {
            &key[route.prefix.len().min(key.len())..]
        } else {
            key
        };
        let state = snapshot.clusters.get(&*route.cluster)?;
        let at = match state.config.redis.mode {
            RedisMode::Proxy => {
                let hashed = if l.config.hashtagging {
                    slot::hash_tag(key)
                } else {
                    key
                };
                (rendezvous(state, hashed), 0)
            }
            RedisMode::Cluster => (None, slot::slot(key)),
        };
        Some((route.cluster.clone(), at))
    };
    let Some(first) = keys.next().map(place) else {
        return true;
    };
    keys.all(|k| place(k) == first)
}

/// One reply from the parts of a split command.
fn merge(kind: Kind, mut replies: Vec<Value>) -> Value {
    match kind {
        // Per-key errors stay in their places.
        Kind::MultiGet => Value::Array(replies),
        Kind::MultiSet => replies
            .into_iter()
            .find(Value::is_error)
            .unwrap_or_else(Value::ok),
        Kind::MultiSum => {
            let mut sum = 0i64;
            for r in replies {
                match r {
                    Value::Integer(n) => sum = sum.saturating_add(n),
                    e if e.is_error() => return e,
                    other => return Value::error(format!("ERR unexpected reply {other:?}")),
                }
            }
            Value::Integer(sum)
        }
        _ => replies
            .pop()
            .unwrap_or_else(|| Value::error("ERR no reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_where_the_read_policy_says() {
        let primary: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let replica: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let shard = Shard {
            primary,
            replicas: vec![replica],
        };
        let lonely = Shard {
            primary,
            replicas: Vec::new(),
        };
        assert_eq!(read_node(ReadPolicy::Master, &shard).unwrap(), primary);
        assert_eq!(read_node(ReadPolicy::Replica, &shard).unwrap(), replica);
        assert!(
            read_node(ReadPolicy::Replica, &lonely).is_err(),
            "no replica to read from"
        );
        assert_eq!(
            read_node(ReadPolicy::PreferReplica, &shard).unwrap(),
            replica
        );
        assert_eq!(
            read_node(ReadPolicy::PreferReplica, &lonely).unwrap(),
            primary
        );
        let picks: std::collections::BTreeSet<SocketAddr> = (0..64)
            .map(|_| read_node(ReadPolicy::Any, &shard).unwrap())
            .collect();
        assert_eq!(picks.len(), 2, "ANY reads from both");
    }

    #[test]
    fn split_replies_merge_as_the_whole_command_would_answer() {
        let e = Value::error("ERR boom");
        assert_eq!(
            merge(Kind::MultiGet, vec![Value::bulk("a"), e.clone()]),
            Value::Array(vec![Value::bulk("a"), e.clone()])
        );
        assert_eq!(
            merge(Kind::MultiSet, vec![Value::ok(), Value::ok()]),
            Value::ok()
        );
        assert_eq!(merge(Kind::MultiSet, vec![Value::ok(), e.clone()]), e);
        assert_eq!(
            merge(
                Kind::MultiSum,
                vec![Value::Integer(1), Value::Integer(0), Value::Integer(1)]
            ),
            Value::Integer(2)
        );
        assert_eq!(merge(Kind::MultiSum, vec![Value::Integer(1), e.clone()]), e);
    }
}
