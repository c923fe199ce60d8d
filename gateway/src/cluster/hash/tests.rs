use super::*;
use crate::cluster::tests::state;
use crate::model::cluster::LbPolicy;

fn addrs(hosts: &[Arc<Endpoint>]) -> Vec<SocketAddr> {
    hosts.iter().map(|e| e.addr).collect()
}

/// Which endpoint (port) each of `keys` lands on.
fn owners(table: &HashTable, hosts: &[Arc<Endpoint>], keys: &[u64]) -> Vec<u16> {
    keys.iter()
        .map(|k| table.pick(*k, hosts, |_| true).unwrap().addr.port())
        .collect()
}

fn keys() -> Vec<u64> {
    (0..2000u32)
        .map(|i| hash64(format!("user-{i}").as_bytes()))
        .collect()
}

fn tables(hosts: &[Arc<Endpoint>]) -> [HashTable; 2] {
    [
        HashTable::ring(&addrs(hosts), DEFAULT_MIN_RING_SIZE),
        HashTable::maglev(&addrs(hosts), 65537),
    ]
}

#[test]
fn one_key_always_lands_on_the_same_endpoint() {
    let c = state(LbPolicy::Random, 5);
    for table in tables(&c.healthy) {
        let k = hash64(b"alice");
        let first = owners(&table, &c.healthy, &[k])[0];
        assert!((0..100).all(|_| owners(&table, &c.healthy, &[k])[0] == first));
    }
}

#[test]
fn keys_spread_over_every_endpoint() {
    let c = state(LbPolicy::Random, 4);
    for table in tables(&c.healthy) {
        let mut seen = [0u32; 4];
        for p in owners(&table, &c.healthy, &keys()) {
            seen[usize::from(p - 1)] += 1;
        }
        // 500 expected each; a table this size stays well within ±40 %.
        assert!(seen.iter().all(|&n| (300..700).contains(&n)), "{seen:?}");
    }
}

#[test]
fn removing_an_endpoint_moves_only_its_keys_on_the_ring() {
    let five = state(LbPolicy::Random, 5);
    let four: Vec<Arc<Endpoint>> = five.healthy[..4].to_vec();
    let before = owners(
        &HashTable::ring(&addrs(&five.healthy), DEFAULT_MIN_RING_SIZE),
        &five.healthy,
        &keys(),
    );
    let after = owners(
        &HashTable::ring(&addrs(&four), DEFAULT_MIN_RING_SIZE),
        &four,
        &keys(),
    );
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a);
    assert!(moved.clone().count() > 0);
    // Every key that moved was on the removed endpoint (port 5).
    assert!(moved.into_iter().all(|(b, _)| *b == 5));
}

#[test]
fn removing_an_endpoint_moves_about_its_share_on_maglev() {
    let five = state(LbPolicy::Random, 5);
    let four: Vec<Arc<Endpoint>> = five.healthy[..4].to_vec();
    let before = owners(
        &HashTable::maglev(&addrs(&five.healthy), 65537),
        &five.healthy,
        &keys(),
    );
    let after = owners(&HashTable::maglev(&addrs(&four), 65537), &four, &keys());
    let moved_others = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != 5 && b != a)
        .count();
    // Maglev is close to minimal disruption: a few percent of the others' keys move.
    assert!(moved_others < keys().len() / 10, "{moved_others}");
}

#[test]
fn maglev_fills_every_slot_evenly() {
    let c = state(LbPolicy::Random, 3);
    let HashTable::Maglev(table) = HashTable::maglev(&addrs(&c.healthy), 65537) else {
        unreachable!()
    };
    let mut count = [0usize; 3];
    for i in &table {
        count[*i as usize] += 1;
    }
    // Maglev gives each endpoint M/n slots, give or take one.
    assert!(
        count.iter().all(|&n| n.abs_diff(65537 / 3) <= 1),
        "{count:?}"
    );
}

#[test]
fn an_unusable_endpoint_is_passed_over() {
    let c = state(LbPolicy::Random, 3);
    for table in tables(&c.healthy) {
        for k in keys().into_iter().take(200) {
            let e = table.pick(k, &c.healthy, |e| e.addr.port() != 2).unwrap();
            assert_ne!(e.addr.port(), 2);
        }
        assert!(table.pick(1, &c.healthy, |_| false).is_none());
    }
}

#[test]
fn the_ring_has_at_least_its_minimum_size() {
    let c = state(LbPolicy::Random, 3);
    let HashTable::Ring(points) = HashTable::ring(&addrs(&c.healthy), 1000) else {
        unreachable!()
    };
    assert_eq!(points.len(), 3 * 1000);
    assert!(points.windows(2).all(|w| w[0] <= w[1]));
}
