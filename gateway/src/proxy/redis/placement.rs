//! Which server of a PROXY-mode cluster holds a key: rendezvous hashing over the healthy
//! endpoints, with a hash fixed by this file rather than by the Rust release, so that
//! every gateway replica, of any version, sends a key to the same server.

use std::net::{IpAddr, SocketAddr};

use crate::cluster::ClusterState;

/// The server for `key` by rendezvous hashing over the healthy endpoints: every key
/// has one, and removing a server moves only that server's keys. The hash is a
/// specified one (FNV-1a, then a 64-bit finalizer), not `std`'s, so every gateway
/// replica and every release places a key on the same server.
pub(super) fn rendezvous(state: &ClusterState, key: &[u8]) -> Option<SocketAddr> {
    if let [only] = &state.healthy[..] {
        return Some(only.addr);
    }
    highest_score(key, state.healthy.iter().map(|e| e.addr))
}

/// The address whose hash with `key` is highest.
fn highest_score(key: &[u8], addrs: impl Iterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let key_hash = fnv1a(key, FNV_OFFSET);
    addrs.max_by_key(|addr| {
        let ip = match addr.ip() {
            IpAddr::V4(a) => fnv1a(&a.octets(), key_hash),
            IpAddr::V6(a) => fnv1a(&a.octets(), key_hash),
        };
        mix64(fnv1a(&addr.port().to_be_bytes(), ip))
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a over `bytes`, continuing from `h`.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The splitmix64 finalizer: FNV's low bits mix poorly, and rendezvous hashing compares
/// whole values.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_keys_evenly_and_moves_only_a_removed_servers_keys() {
        let servers: Vec<SocketAddr> = (0..3)
            .map(|i| SocketAddr::from(([10, 0, 0, 1 + i], 6379)))
            .collect();
        let keys: Vec<String> = (0..3000).map(|i| format!("user:{i}")).collect();
        let place = |key: &str, among: &[SocketAddr]| {
            highest_score(key.as_bytes(), among.iter().copied()).unwrap()
        };
        let mut per_server = std::collections::BTreeMap::new();
        for k in &keys {
            *per_server.entry(place(k, &servers)).or_insert(0) += 1;
        }
        for (server, n) in &per_server {
            assert!((850..=1150).contains(n), "{server}: {n} of 3000 keys");
        }
        for k in &keys {
            let before = place(k, &servers);
            if before != servers[2] {
                assert_eq!(place(k, &servers[..2]), before, "{k} moved");
            }
        }
        // Pinned (computed independently): a new hash would move every key of every
        // running mesh, and replicas of different releases would disagree.
        assert_eq!(fnv1a(b"user:42", FNV_OFFSET), 0x6c15_1ea4_dcd2_21c2);
        assert_eq!(place("user:42", &servers), servers[2]);
        assert_eq!(place("user:7", &servers), servers[1]);
        assert_eq!(place("session:abc", &servers), servers[0]);
    }
}
