//! Hash slots and the `CLUSTER SLOTS` map: which master serves a key.

use std::net::SocketAddr;

use anyhow::{Context, anyhow};

use super::resp::Resp;

/// Slots in a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has a
/// non-empty one, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One entry of `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot (inclusive).
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The master serving it.
    pub master: SocketAddr,
    /// The master's node id.
    pub master_id: String,
    /// Its replicas.
    pub replicas: Vec<SocketAddr>,
}

impl SlotRange {
    /// Whether `slot` is in this range.
    pub fn contains(&self, slot: u16) -> bool {
        (self.start..=self.end).contains(&slot)
    }
}

/// The master serving `slot` in `slots`.
pub(super) fn owner_in(slots: &[SlotRange], slot: u16) -> anyhow::Result<SocketAddr> {
    slots
        .iter()
        .find(|r| r.contains(slot))
        .map(|r| r.master)
        .ok_or_else(|| anyhow!("slot {slot} is not served"))
}

/// `CLUSTER SLOTS` reply → ranges sorted by start slot.
pub(super) fn parse_slots(reply: &Resp) -> anyhow::Result<Vec<SlotRange>> {
    let mut ranges = Vec::new();
    for entry in reply.as_array().context("not an array")? {
        let fields = entry.as_array().context("entry not an array")?;
        let int = |i: usize| -> anyhow::Result<u16> {
            let n = fields
                .get(i)
                .and_then(Resp::as_int)
                .context("missing slot number")?;
            Ok(u16::try_from(n)?)
        };
        let node = |item: &Resp| -> anyhow::Result<(SocketAddr, String)> {
            let node = item.as_array().context("node not an array")?;
            let ip = node.first().and_then(Resp::as_str).context("node ip")?;
            let port = node.get(1).and_then(Resp::as_int).context("node port")?;
            let id = node.get(2).and_then(Resp::as_str).unwrap_or_default();
            Ok((
                SocketAddr::new(ip.parse()?, u16::try_from(port)?),
                id.to_string(),
            ))
        };
        let (master, master_id) = node(fields.get(2).context("no master")?)?;
        let replicas = fields
            .iter()
            .skip(3)
            .map(|r| node(r).map(|(a, _)| a))
            .collect::<anyhow::Result<_>>()?;
        ranges.push(SlotRange {
            start: int(0)?,
            end: int(1)?,
            master,
            master_id,
            replicas,
        });
    }
    ranges.sort_by_key(|r| r.start);
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cluster_slots_parse_into_sorted_ranges() {
        let bulk = |s: &str| Resp::Bulk(Some(s.as_bytes().to_vec()));
        let node = |ip: &str, port: i64, id: &str| {
            Resp::Array(Some(vec![bulk(ip), Resp::Integer(port), bulk(id)]))
        };
        let reply = Resp::Array(Some(vec![
            Resp::Array(Some(vec![
                Resp::Integer(5461),
                Resp::Integer(16383),
                node("127.1.250.2", 7000, "b"),
                node("127.1.250.3", 7000, "c"),
            ])),
            Resp::Array(Some(vec![
                Resp::Integer(0),
                Resp::Integer(5460),
                node("127.1.250.1", 7000, "a"),
            ])),
        ]));
        let slots = parse_slots(&reply).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(slots[0].start, 0);
        assert_eq!(slots[0].master_id, "a");
        assert_eq!(slots[1].replicas, vec![addr("127.1.250.3:7000")]);
        assert_eq!(owner_in(&slots, 9000).ok(), Some(addr("127.1.250.2:7000")));
    }
}
