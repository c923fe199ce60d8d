//! A Redis Cluster's slot map: which primary serves each of the 16,384 slots, learnt
//! with `CLUSTER SLOTS` from any reachable node and corrected by MOVED redirections.

use std::net::{IpAddr, SocketAddr};

use crate::redis::resp::Value;

/// Slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// Who serves every slot: a primary and its replicas per shard (a `CLUSTER SLOTS` range).
#[derive(Debug, Clone)]
pub struct SlotMap {
    shards: Vec<Shard>,
    /// Index into `shards` per slot (`u16::MAX`: no node claims it).
    by_slot: Vec<u16>,
}

/// The nodes serving a range of slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The primary (writes, and reads by default).
    pub primary: SocketAddr,
    /// Replicas, for reads when the read policy allows.
    pub replicas: Vec<SocketAddr>,
}

const UNCLAIMED: u16 = u16::MAX;

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply. Nodes announced with an empty host (a node that
    /// does not know its own address) are taken to be at `asked`'s IP, as Redis clients do.
    pub fn from_cluster_slots(reply: &Value, asked: SocketAddr) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let mut map = SlotMap {
            shards: Vec::new(),
            by_slot: vec![UNCLAIMED; SLOTS],
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err("a CLUSTER SLOTS range is not an array".into());
            };
            let (Some(Value::Integer(start)), Some(Value::Integer(end)), Some(node)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err("a CLUSTER SLOTS range lacks start, end or node".into());
            };
            let shard = Shard {
                primary: node_addr(node, asked.ip())?,
                replicas: fields[3..]
                    .iter()
                    .map(|n| node_addr(n, asked.ip()))
                    .collect::<Result<_, _>>()?,
            };
            let (start, end) = (slot_index(*start)?, slot_index(*end)?);
            if start > end {
                return Err(format!("CLUSTER SLOTS range {start}-{end} is backwards"));
            }
            let index = map.shard_index(shard);
            for s in &mut map.by_slot[start..=end] {
                *s = index;
            }
        }
        Ok(map)
    }

    fn shard_index(&mut self, shard: Shard) -> u16 {
        if let Some(i) = self.shards.iter().position(|s| *s == shard) {
            return u16::try_from(i).unwrap_or(UNCLAIMED);
        }
        self.shards.push(shard);
        u16::try_from(self.shards.len() - 1).unwrap_or(UNCLAIMED)
    }

    /// The nodes serving `slot`.
    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        let i = *self.by_slot.get(usize::from(slot))?;
        self.shards.get(usize::from(i))
    }

    /// The primary serving `slot`.
    pub fn primary(&self, slot: u16) -> Option<SocketAddr> {
        self.shard(slot).map(|s| s.primary)
    }

    /// A copy with `slot` moved to primary `addr` (a MOVED redirection): to the shard
    /// `addr` already leads, else to a new shard without replicas.
    pub fn moved(&self, slot: u16, addr: SocketAddr) -> SlotMap {
        let mut next = self.clone();
        let existing = next.shards.iter().find(|s| s.primary == addr).cloned();
        let index = next.shard_index(existing.unwrap_or(Shard {
            primary: addr,
            replicas: Vec::new(),
        }));
        if let Some(s) = next.by_slot.get_mut(usize::from(slot)) {
            *s = index;
        }
        next
    }
}

fn slot_index(v: i64) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|s| *s < SLOTS)
        .ok_or_else(|| format!("slot {v} out of range"))
}

/// `[host, port, id, ...]` of a CLUSTER SLOTS node.
fn node_addr(node: &Value, fallback: IpAddr) -> Result<SocketAddr, String> {
    let Value::Array(parts) = node else {
        return Err("a CLUSTER SLOTS node is not an array".into());
    };
    let (Some(host), Some(Value::Integer(port))) = (parts.first(), parts.get(1)) else {
        return Err("a CLUSTER SLOTS node lacks host or port".into());
    };
    let port = u16::try_from(*port).map_err(|_| format!("port {port} out of range"))?;
    let host = match host {
        Value::Bulk(b) | Value::Simple(b) => String::from_utf8_lossy(b).into_owned(),
        other => return Err(format!("a CLUSTER SLOTS host is {other:?}")),
    };
    let ip = if host.is_empty() {
        fallback
    } else {
        host.parse()
            .map_err(|_| format!("host {host:?} is not an IP address"))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// A redirection in an error reply: `MOVED <slot> <host:port>` or `ASK <slot> <host:port>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// The slot lives there now.
    Moved(u16, SocketAddr),
    /// Ask that node this once (a slot being migrated).
    Ask(u16, SocketAddr),
}

impl Redirect {
    /// The redirection an error reply carries, if any.
    pub fn of(reply: &Value) -> Option<Redirect> {
        let Value::Error(text) = reply else {
            return None;
        };
        let text = std::str::from_utf8(text).ok()?;
        let mut words = text.split_whitespace();
        let kind = words.next()?;
        let slot: u16 = words.next()?.parse().ok()?;
        let addr: SocketAddr = words.next()?.parse().ok()?;
        match kind {
            "MOVED" => Some(Redirect::Moved(slot, addr)),
            "ASK" => Some(Redirect::Ask(slot, addr)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Bulk(Bytes::from(host.to_string())),
            Value::Integer(port),
            Value::Bulk(Bytes::from_static(b"id")),
        ])
    }

    #[test]
    fn cluster_slots_map_every_range_to_its_primary() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Integer(0),
                Value::Integer(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Integer(5461),
                Value::Integer(16383),
                node("", 7001),
            ]),
        ]);
        let asked: SocketAddr = "127.0.0.9:7001".parse().unwrap();
        let m = SlotMap::from_cluster_slots(&reply, asked).unwrap();
        assert_eq!(m.primary(0), Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(m.primary(5460), Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!(
            m.primary(16383),
            Some("127.0.0.9:7001".parse().unwrap()),
            "an empty host is the asked node's IP"
        );
        assert_eq!(
            m.shard(1).unwrap().replicas,
            vec!["127.0.0.1:7003".parse::<SocketAddr>().unwrap()]
        );
        assert!(m.shard(16383).unwrap().replicas.is_empty());
        let moved = m.moved(0, "127.0.0.1:7002".parse().unwrap());
        assert_eq!(moved.primary(0), Some("127.0.0.1:7002".parse().unwrap()));
        assert!(SlotMap::from_cluster_slots(&Value::Integer(1), asked).is_err());
    }

    #[test]
    fn moved_and_ask_errors_are_redirections() {
        let e = |s: &str| Value::Error(Bytes::from(s.to_string()));
        assert_eq!(
            Redirect::of(&e("MOVED 3999 127.0.0.1:6381")),
            Some(Redirect::Moved(3999, "127.0.0.1:6381".parse().unwrap()))
        );
        assert_eq!(
            Redirect::of(&e("ASK 1 127.0.0.1:6382")),
            Some(Redirect::Ask(1, "127.0.0.1:6382".parse().unwrap()))
        );
        assert_eq!(Redirect::of(&e("ERR wrong type")), None);
    }
}
