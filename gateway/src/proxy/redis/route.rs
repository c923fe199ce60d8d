//! One data command: faults, then each key routed by prefix to a cluster and a server,
//! the command (or its per-key parts) queued on the server's pipelined connection in
//! arrival order, mirrors, and a future that waits for the replies, follows MOVED/ASK
//! and merges the parts.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use futures::future::{BoxFuture, FutureExt, join_all};
use metrics::{Counter, Histogram};
use rand::Rng;

use super::RedisListener;
use super::slots::{Redirect, Shard, SlotMap};
use super::upstream::{Pipelined, Reply, text};
use crate::cluster::ClusterState;
use crate::model::redis::{FaultKind, PrefixRoute, ReadPolicy, RedisMode};
use crate::redis::command::{CommandInfo, Kind, key_indices};
use crate::redis::resp::{Command, Value, encode_command};
use crate::redis::slot;
use crate::telemetry::metrics::{
    Metrics, REDIS_COMMAND_ERROR, REDIS_COMMAND_LATENCY, REDIS_COMMAND_SUCCESS, REDIS_COMMAND_TOTAL,
};

/// Redirections followed for one command before giving up (a cluster in flux).
const MAX_REDIRECTS: usize = 3;

/// A reply on its way: ready now, or when the upstream answers.
pub type Pending = BoxFuture<'static, Value>;

/// Queues a data command (one that passed the arity check) and returns its reply's
/// future. Everything up to the queuing happens before the next command of the same
/// client is looked at, so a client's commands reach each server in order.
pub async fn dispatch(
    l: &Arc<RedisListener>,
    info: &'static CommandInfo,
    mut cmd: Command,
) -> Pending {
    let started = Instant::now();
    let mut delay = None;
    for f in &l.config.faults {
        let applies =
            f.commands.is_empty() || f.commands.iter().any(|c| c.eq_ignore_ascii_case(info.name));
        if applies && (f.fraction >= 1.0 || rand::rng().random_bool(f.fraction)) {
            match f.kind {
                FaultKind::Error => {
                    return ready(l, info, started, Value::error("ERR Fault injected"));
                }
                FaultKind::Delay(d) => delay = Some(d),
            }
            break;
        }
    }
    let keys: Vec<usize> = match key_indices(info, &cmd.args) {
        Ok(k) => k.collect(),
        Err(e) => return ready(l, info, started, e),
    };
    let Some(&first) = keys.first() else {
        return ready(
            l,
            info,
            started,
            Value::error(format!("ERR '{}' needs a key to be routed", info.name)),
        );
    };
    // Keys that must be served together (EVAL's, PFCOUNT's) may not span servers or
    // slots: the command would run where the first one lives and miss the others.
    if matches!(info.kind, Kind::EvalKeys | Kind::Colocated)
        && !colocated(l, keys.iter().map(|&k| &cmd.args[k][..]))
    {
        let text = format!(
            "ERR CROSSSLOT the keys of '{}' don't hash to the same server or slot",
            info.name
        );
        return ready(l, info, started, Value::error(text));
    }
    let parts = match info.kind {
        Kind::MultiGet | Kind::MultiSum | Kind::MultiSet => {
            let single: &[u8] = match info.kind {
                Kind::MultiGet => b"GET",
                Kind::MultiSet => b"SET",
                _ => &cmd.args[0],
            };
            let width = if info.kind == Kind::MultiSet { 2 } else { 1 };
            let mut parts = Vec::with_capacity(keys.len());
            for &k in &keys {
                let mut args = Vec::with_capacity(1 + width);
                args.push(Bytes::copy_from_slice(single));
                args.extend(cmd.args[k..k + width].iter().cloned());
                parts.push(send(l, info, args, 1).await);
            }
            parts
        }
        _ => {
            // EVAL's keys must live together: route on the first, and in a Redis
            // Cluster let the server say CROSSSLOT for the others.
            vec![send(l, info, std::mem::take(&mut cmd.args), first).await]
        }
    };
    let kind = info.kind;
    let l = l.clone();
    async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let replies = join_all(parts).await;
        let reply = merge(kind, replies);
        l.metrics
            .record(info.name, !reply.is_error(), started.elapsed());
        reply
    }
    .boxed()
}

fn ready(l: &RedisListener, info: &CommandInfo, started: Instant, reply: Value) -> Pending {
    l.metrics
        .record(info.name, !reply.is_error(), started.elapsed());
    futures::future::ready(reply).boxed()
}

/// Routes `args` on the key at `key_at`, queues it, mirrors it, and returns the future
/// of its reply (redirections followed).
async fn send(
    l: &Arc<RedisListener>,
    info: &'static CommandInfo,
    mut args: Vec<Bytes>,
    key_at: usize,
) -> Pending {
    let Some(route) = l.config.route_for(&args[key_at]).cloned() else {
        return futures::future::ready(Value::error("ERR no upstream host")).boxed();
    };
    if route.remove_prefix {
        for k in key_positions(info, &args, key_at) {
            let stripped = args[k].slice(route.prefix.len().min(args[k].len())..);
            args[k] = stripped;
        }
    }
    let mut bytes = BytesMut::new();
    encode_command(&args, &mut bytes);
    let bytes = bytes.freeze();
    let key = args[key_at].clone();
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
    let sent = match target(l, &route.cluster, &key, info.write).await {
        Ok((conn, state)) => Ok((conn.send(bytes.clone()), state)),
        Err(e) => Err(e),
    };
    let (l, op_timeout) = (l.clone(), l.config.op_timeout);
    async move {
        let (reply, state) = match sent {
            Ok(s) => s,
            Err(e) => return e,
        };
        match tokio::time::timeout(op_timeout, follow(&l, &route, state, &key, bytes, reply)).await
        {
            Ok(v) => v,
            Err(_) => Value::error(format!("ERR upstream timed out after {op_timeout:?}")),
        }
    }
    .boxed()
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

/// Waits for a reply; on MOVED updates the slot map and resends to the new primary, on
/// ASK sends `ASKING` and the command to the named node once.
async fn follow(
    l: &Arc<RedisListener>,
    route: &PrefixRoute,
    state: Arc<ClusterState>,
    key: &[u8],
    bytes: Bytes,
    first: Reply,
) -> Value {
    let mut reply = first;
    for _ in 0..=MAX_REDIRECTS {
        let value = match reply.await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Value::error(format!("ERR upstream failure: {e}")),
            Err(_) => {
                return Value::error("ERR upstream failure: the connection dropped the command");
            }
        };
        let redirect = if l.config.redirection || state.config.redis.mode == RedisMode::Cluster {
            Redirect::of(&value)
        } else {
            None
        };
        let Some(redirect) = redirect else {
            return value;
        };
        let (addr, asking) = match redirect {
            Redirect::Moved(slot, addr) => {
                if let Some(map) = l.slot_map(&route.cluster) {
                    l.set_slot_map(route.cluster.clone(), map.moved(slot, addr));
                }
                // A MOVED usually means a resharding: learn the whole map again in the
                // background, so the other moved slots need no redirection of their own.
                if l.may_refresh(&route.cluster) {
                    let (l, state, cluster) = (l.clone(), state.clone(), route.cluster.clone());
                    tokio::spawn(async move {
                        match discover(&l, &state).await {
                            Ok(map) => l.set_slot_map(cluster, map),
                            Err(e) => {
                                tracing::debug!(%cluster, error = ?e, "slot map refresh failed")
                            }
                        }
                    });
                }
                (addr, false)
            }
            Redirect::Ask(_, addr) => (addr, true),
        };
        let conn = match l.connection(addr, &state).await {
            Ok(c) => c,
            Err(e) => return Value::error(format!("ERR upstream failure: {e}")),
        };
        reply = if asking {
            conn.send_asking(&bytes)
        } else {
            conn.send(bytes.clone())
        };
        tracing::debug!(key = %String::from_utf8_lossy(key), %addr, ?redirect, "following a redirection");
    }
    Value::error("ERR too many redirections")
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

/// The server for `key` by rendezvous hashing over the healthy endpoints: every key
/// has one, and removing a server moves only that server's keys.
fn rendezvous(state: &ClusterState, key: &[u8]) -> Option<SocketAddr> {
    state
        .healthy
        .iter()
        .max_by_key(|e| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            e.addr.hash(&mut h);
            h.finish()
        })
        .map(|e| e.addr)
}

/// Learns a Redis Cluster's slots from the first seed that answers `CLUSTER SLOTS`.
async fn discover(l: &Arc<RedisListener>, state: &Arc<ClusterState>) -> Result<SlotMap, Value> {
    let mut last = String::from("no seed endpoint");
    for seed in state.healthy.iter().map(|e| e.addr) {
        let conn = match l.connection(seed, state).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let mut out = BytesMut::new();
        encode_command(&[b"CLUSTER".as_slice(), b"SLOTS"], &mut out);
        match tokio::time::timeout(l.config.op_timeout, conn.send(out.freeze())).await {
            Ok(Ok(Ok(reply))) => match SlotMap::from_cluster_slots(&reply, seed) {
                Ok(m) => return Ok(m),
                Err(e) => last = format!("{seed}: {e}: {}", text(&reply)),
            },
            Ok(Ok(Err(e))) => last = e.to_string(),
            Ok(Err(_)) | Err(_) => last = format!("{seed}: no answer to CLUSTER SLOTS"),
        }
    }
    Err(Value::error(format!(
        "ERR cannot learn the cluster's slots: {last}"
    )))
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

/// Per-command counters and latency (`command` label: the lower-case name).
#[derive(Debug)]
pub struct CommandMetrics {
    registry: Arc<Metrics>,
    listener: String,
    by_command: DashMap<&'static str, Handles>,
}

#[derive(Debug, Clone)]
struct Handles {
    total: Counter,
    success: Counter,
    error: Counter,
    latency: Histogram,
}

impl CommandMetrics {
    /// Metrics of listener `listener`.
    pub fn new(registry: &Arc<Metrics>, listener: &str) -> CommandMetrics {
        CommandMetrics {
            registry: registry.clone(),
            listener: listener.to_string(),
            by_command: DashMap::new(),
        }
    }

    /// Counts one command.
    pub fn record(&self, command: &'static str, ok: bool, took: Duration) {
        if let Some(h) = self.by_command.get(command) {
            return h.record(ok, took);
        }
        let h = self
            .by_command
            .entry(command)
            .or_insert_with(|| {
                let labels = || {
                    vec![
                        metrics::Label::new("listener", self.listener.clone()),
                        metrics::Label::new("command", command),
                    ]
                };
                Handles {
                    total: self.registry.counter(REDIS_COMMAND_TOTAL, labels()),
                    success: self.registry.counter(REDIS_COMMAND_SUCCESS, labels()),
                    error: self.registry.counter(REDIS_COMMAND_ERROR, labels()),
                    latency: self.registry.histogram(REDIS_COMMAND_LATENCY, labels()),
                }
            })
            .clone();
        h.record(ok, took);
    }
}

impl Handles {
    fn record(&self, ok: bool, took: Duration) {
        self.total.increment(1);
        if ok {
            self.success.increment(1)
        } else {
            self.error.increment(1)
        }
        self.latency.record(took.as_secs_f64() * 1000.0);
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
