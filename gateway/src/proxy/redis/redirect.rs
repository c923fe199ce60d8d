//! CLUSTER mode's two round trips of its own: learning a Redis Cluster's slots from
//! `CLUSTER SLOTS`, and following a MOVED or ASK to the node that now serves a key.

use std::sync::Arc;

use bytes::BytesMut;

use super::RedisListener;
use super::frame::Frame;
use super::pending::Follow;
use super::slots::{Redirect, SlotMap};
use super::upstream::text;
use crate::cluster::ClusterState;
use crate::redis::resp::{Value, encode_command};

/// Redirections followed for one command before giving up (a cluster in flux).
const MAX_REDIRECTS: usize = 3;

/// Follows a redirection: on MOVED updates the slot map and resends to the new primary,
/// on ASK sends `ASKING` and the command to the named node; then the same for the
/// reply, up to [`MAX_REDIRECTS`] times.
pub(super) async fn follow(f: Follow, first: Redirect) -> Frame {
    let Follow {
        listener: l,
        cluster,
        state,
        key,
        bytes,
    } = f;
    let mut redirect = first;
    for _ in 0..MAX_REDIRECTS {
        let (addr, asking) = match redirect {
            Redirect::Moved(slot, addr) => {
                if let Some(map) = l.slot_map(&cluster) {
                    l.set_slot_map(cluster.clone(), map.moved(slot, addr));
                }
                // A MOVED usually means a resharding: learn the whole map again in the
                // background, so the other moved slots need no redirection of their own.
                if l.may_refresh(&cluster) {
                    let (l, state, cluster) = (l.clone(), state.clone(), cluster.clone());
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
            Err(e) => return Value::error(format!("ERR upstream failure: {e}")).into(),
        };
        tracing::debug!(key = %String::from_utf8_lossy(&key), %addr, ?redirect, "following a redirection");
        let reply = if asking {
            conn.send_asking(&bytes)
        } else {
            conn.send(bytes.clone())
        };
        let frame = match reply.await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Value::error(format!("ERR upstream failure: {e}")).into(),
            Err(_) => {
                return Value::error("ERR upstream failure: the connection dropped the command")
                    .into();
            }
        };
        if !frame.is_error() {
            return frame;
        }
        let value = frame.into_value();
        match Redirect::of(&value) {
            Some(next) => redirect = next,
            None => return value.into(),
        }
    }
    Value::error("ERR too many redirections").into()
}

/// Learns a Redis Cluster's slots from the first seed that answers `CLUSTER SLOTS`.
pub(super) async fn discover(
    l: &Arc<RedisListener>,
    state: &Arc<ClusterState>,
) -> Result<SlotMap, Value> {
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
            Ok(Ok(Ok(reply))) => {
                let reply = reply.into_value();
                match SlotMap::from_cluster_slots(&reply, seed) {
                    Ok(m) => return Ok(m),
                    Err(e) => last = format!("{seed}: {e}: {}", text(&reply)),
                }
            }
            Ok(Ok(Err(e))) => last = e.to_string(),
            Ok(Err(_)) | Err(_) => last = format!("{seed}: no answer to CLUSTER SLOTS"),
        }
    }
    Err(Value::error(format!(
        "ERR cannot learn the cluster's slots: {last}"
    )))
}
