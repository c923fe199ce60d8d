//! Consistent hashing: ring hash (Karger's ring of virtual nodes) and Maglev (a lookup
//! table filled from per-endpoint permutations). Both are built once per cluster
//! version in `ClusterState::build`, off the hot path; a pick is a binary search (ring)
//! or one index (Maglev).
//!
//! Endpoints are placed by their address, so every gateway replica running this code
//! places them alike, and an endpoint leaving moves only the keys it held (ring), or
//! about its share of them (Maglev).

use std::net::SocketAddr;
use std::sync::Arc;

use super::Endpoint;

/// Envoy's default `minimum_ring_size`.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Most points on one ring (8 bytes each): bounds memory per cluster to 8 MiB. Only a
/// cluster of more than 1,024 endpoints at the default size gets fewer points each.
pub const MAX_RING_POINTS: u64 = 1 << 20;
/// Envoy's default Maglev table size (a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// Keys tried on a Maglev table before giving up on an unusable endpoint: each retry
/// re-hashes the key, landing on another endpoint with probability (n-1)/n.
const MAGLEV_PROBES: u64 = 16;

/// 64-bit FNV-1a with a final avalanche (splitmix64): stable across processes and
/// releases, which a `Hasher` with random keys is not.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A consistent-hash lookup over a cluster's healthy endpoints (indices into them).
#[derive(Debug)]
pub enum HashTable {
    /// Sorted (position, endpoint) points; a position is the top 32 bits of a hash.
    Ring(Vec<(u32, u32)>),
    /// Slot → endpoint.
    Maglev(Vec<u32>),
}

impl HashTable {
    /// A ring on which every endpoint has `min_size` points. Envoy spreads that number
    /// over all the endpoints instead; a count per endpoint that does not depend on how
    /// many there are means an endpoint leaving or joining moves only its own keys.
    pub fn ring(hosts: &[SocketAddr], min_size: u64) -> HashTable {
        if hosts.is_empty() {
            return HashTable::Ring(Vec::new());
        }
        let n = hosts.len() as u64;
        let per_host = min_size.min(MAX_RING_POINTS / n).max(1);
        let mut points = Vec::with_capacity((per_host * n) as usize);
        for (i, addr) in hosts.iter().enumerate() {
            let name = addr.to_string();
            for replica in 0..per_host {
                let position = hash64(format!("{name}_{replica}").as_bytes()) >> 32;
                points.push((position as u32, i as u32));
            }
        }
        points.sort_unstable();
        HashTable::Ring(points)
    }

    /// A Maglev table of `size` slots (a prime, so every skip walks the whole table).
    pub fn maglev(hosts: &[SocketAddr], size: u64) -> HashTable {
        if hosts.is_empty() || size == 0 {
            return HashTable::Maglev(Vec::new());
        }
        let m = size;
        let perms: Vec<(u64, u64)> = hosts
            .iter()
            .map(|a| {
                let name = a.to_string();
                let offset = hash64(format!("{name}#offset").as_bytes()) % m;
                let skip = if m > 1 {
                    hash64(format!("{name}#skip").as_bytes()) % (m - 1) + 1
                } else {
                    1
                };
                (offset, skip)
            })
            .collect();
        let mut table = vec![u32::MAX; m as usize];
        let mut next = vec![0u64; hosts.len()];
        let mut filled = 0u64;
        'fill: loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                let mut slot = (offset + next[i] * skip) % m;
                while table[slot as usize] != u32::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % m;
                }
                table[slot as usize] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        HashTable::Maglev(table)
    }

    /// The endpoint for `key`: the first `usable` one from the key's place on.
    pub fn pick<'a>(
        &self,
        key: u64,
        hosts: &'a [Arc<Endpoint>],
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<&'a Arc<Endpoint>> {
        match self {
            HashTable::Ring(points) => {
                if points.is_empty() {
                    return None;
                }
                let position = (key >> 32) as u32;
                let start = points.partition_point(|p| p.0 < position);
                (0..points.len())
                    .map(|i| &hosts[points[(start + i) % points.len()].1 as usize])
                    .find(|e| usable(e))
            }
            HashTable::Maglev(table) => {
                if table.is_empty() {
                    return None;
                }
                let len = table.len() as u64;
                (0..MAGLEV_PROBES)
                    .map(|probe| {
                        let k = if probe == 0 { key } else { mix(key ^ probe) };
                        &hosts[table[(k % len) as usize] as usize]
                    })
                    .find(|e| usable(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
