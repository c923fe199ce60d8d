//! Endpoint selection among the healthy endpoints of a cluster: a consistent-hash
//! table when the cluster has one and the request a key; else, among the gateway's
//! zone's endpoints when zone-aware (`locality`) or all of them, by the cluster's
//! policy. Every way skips endpoints outlier detection has ejected and those that
//! already failed this request, and falls back on them only when nothing else is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rand::Rng;

use super::{ClusterState, Endpoint, outlier};
use crate::model::cluster::LbPolicy;

/// Picks an endpoint for a request with hash `key` (if its route hashes) from a gateway
/// in zone `zone` (empty: unknown), avoiding `avoid` (endpoints that already failed this
/// request) and ejected endpoints while others exist.
pub fn pick<R: Rng + ?Sized>(
    cluster: &ClusterState,
    avoid: &[SocketAddr],
    key: Option<u64>,
    zone: &str,
    rng: &mut R,
) -> Option<Arc<Endpoint>> {
    let hosts = &cluster.healthy;
    match hosts.len() {
        0 => return None,
        1 => return Some(hosts[0].clone()),
        _ => {}
    }
    // Ejections are only read when the cluster detects outliers: one branch otherwise.
    let now = cluster.counters.detector.enabled().then(outlier::now_ms);
    let usable = |e: &Endpoint| !avoid.contains(&e.addr) && now.is_none_or(|t| !e.is_ejected(t));
    if let (Some(key), Some(table)) = (key, &cluster.hash)
        && let Some(e) = table.pick(key, hosts, usable)
    {
        return Some(e.clone());
    }
    let local = if cluster.config.zone_aware {
        cluster.zones.candidates(zone, usable, rng)
    } else {
        None
    };
    // One round-robin step per pick, whichever set it is taken from.
    let rr = match cluster.config.lb {
        LbPolicy::RoundRobin => cluster.counters.rr.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    local
        .and_then(|set| choose(cluster, set, &usable, rr, rng))
        .or_else(|| choose(cluster, hosts, &usable, rr, rng))
        // Every endpoint is ejected or failed already: an ejected one that has not
        // failed this request, rather than none.
        .or_else(|| {
            let not_tried = |e: &Endpoint| !avoid.contains(&e.addr);
            choose(cluster, hosts, &not_tried, rr, rng)
        })
        // Every endpoint failed this request already: reuse one rather than fail the try.
        .or_else(|| Some(hosts[0].clone()))
}

/// One pick by the cluster's policy among the `usable` endpoints of `hosts`.
fn choose<R: Rng + ?Sized>(
    cluster: &ClusterState,
    hosts: &[Arc<Endpoint>],
    usable: &dyn Fn(&Endpoint) -> bool,
    rr: usize,
    rng: &mut R,
) -> Option<Arc<Endpoint>> {
    let n = hosts.len();
    if n == 0 {
        return None;
    }
    let ok = |e: &&Arc<Endpoint>| usable(e);
    let chosen = match cluster.config.lb {
        LbPolicy::RoundRobin => (0..n).map(|i| &hosts[(rr + i) % n]).find(ok),
        // A hashing cluster's requests without a key spread at random, as in Envoy.
        LbPolicy::Random | LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. } => {
            let start = rng.random_range(0..n);
            (0..n).map(|i| &hosts[(start + i) % n]).find(ok)
        }
        LbPolicy::LeastRequest if n == 1 => hosts.first().filter(ok),
        LbPolicy::LeastRequest => {
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            let (ea, eb) = (&hosts[a], &hosts[b]);
            let (first, second) =
                if eb.active_rq.load(Ordering::Relaxed) < ea.active_rq.load(Ordering::Relaxed) {
                    (eb, ea)
                } else {
                    (ea, eb)
                };
            [first, second]
                .into_iter()
                .find(ok)
                .or_else(|| hosts.iter().find(ok))
        }
    };
    chosen.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::state;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn round_robin_cycles_over_healthy_endpoints() {
        let c = state(LbPolicy::RoundRobin, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<_> = (0..6)
            .map(|_| pick(&c, &[], None, "", &mut rng).unwrap().addr.port())
            .collect();
        assert_eq!(picks, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn retries_avoid_the_failed_endpoint() {
        for lb in [
            LbPolicy::RoundRobin,
            LbPolicy::Random,
            LbPolicy::LeastRequest,
        ] {
            let c = state(lb, 2);
            let mut rng = StdRng::seed_from_u64(7);
            for _ in 0..50 {
                let first = pick(&c, &[], None, "", &mut rng).unwrap();
                let second = pick(&c, &[first.addr], None, "", &mut rng).unwrap();
                assert_ne!(first.addr, second.addr, "{lb:?}");
            }
        }
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let c = state(LbPolicy::LeastRequest, 2);
        c.healthy[0].active_rq.store(10, Ordering::Relaxed);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            assert_eq!(pick(&c, &[], None, "", &mut rng).unwrap().addr.port(), 2);
        }
    }

    #[test]
    fn random_spreads_over_all_endpoints() {
        let c = state(LbPolicy::Random, 4);
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            seen[(pick(&c, &[], None, "", &mut rng).unwrap().addr.port() - 1) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    /// A zone-aware cluster: ports 1-2 in zone "a", 3-4 in zone "b".
    fn zoned() -> ClusterState {
        use crate::model::cluster::{EndpointSpec, Endpoints, Health};
        let mut config = crate::cluster::tests::cluster(LbPolicy::RoundRobin);
        config.zone_aware = true;
        config.outlier = Some(crate::cluster::outlier::OutlierConfig {
            consecutive_5xx: Some(1),
            consecutive_gateway: None,
            split_local_origin: false,
            consecutive_local_origin: None,
            interval: std::time::Duration::from_secs(10),
            base_ejection: std::time::Duration::from_secs(60),
            max_ejection: std::time::Duration::from_secs(60),
            max_ejection_percent: 100,
        });
        let eps = Endpoints {
            name: "c".into(),
            endpoints: (1..=4)
                .map(|p| EndpointSpec {
                    addr: SocketAddr::from(([127, 0, 0, 1], p)),
                    health: Health::Healthy,
                    zone: if p <= 2 { "a" } else { "b" }.into(),
                    labels: None,
                })
                .collect(),
        };
        ClusterState::build(Arc::new(config), Some(Arc::new(eps)), None)
    }

    fn ports(c: &ClusterState, zone: &str, n: usize) -> Vec<u16> {
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen: Vec<u16> = (0..n)
            .map(|_| pick(c, &[], None, zone, &mut rng).unwrap().addr.port())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    #[test]
    fn a_zone_aware_pick_stays_in_the_gateways_zone() {
        let c = zoned();
        assert_eq!(ports(&c, "a", 100), vec![1, 2]);
        assert_eq!(ports(&c, "b", 100), vec![3, 4]);
        // An unknown or unset zone: no preference.
        assert_eq!(ports(&c, "", 100), vec![1, 2, 3, 4]);
        assert_eq!(ports(&c, "z", 100), vec![1, 2, 3, 4]);
    }

    #[test]
    fn an_ejected_zone_spills_over() {
        use crate::cluster::outlier::Event;
        let c = zoned();
        c.healthy[0].report(Event::Answer(500));
        // One of two left in zone a: 1.4 × 50 % keeps 70 % local, the rest spills.
        assert_eq!(ports(&c, "a", 200), vec![2, 3, 4]);
        c.healthy[1].report(Event::Answer(500));
        assert_eq!(ports(&c, "a", 100), vec![3, 4]);
    }

    #[test]
    fn ejected_endpoints_get_no_pick_while_others_can_take_it() {
        use crate::cluster::outlier::Event;
        let mut c = zoned();
        Arc::get_mut(&mut c.config).unwrap().zone_aware = false;
        c.healthy[2].report(Event::Answer(503));
        assert_eq!(ports(&c, "a", 100), vec![1, 2, 4]);
        for e in &c.healthy {
            e.report(Event::Answer(500));
        }
        // All ejected: better an ejected endpoint than none.
        assert_eq!(ports(&c, "a", 100), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_hashing_cluster_sends_one_key_to_one_endpoint() {
        for lb in [
            LbPolicy::RingHash {
                minimum_ring_size: 1024,
            },
            LbPolicy::Maglev { table_size: 65537 },
        ] {
            let c = state(lb, 4);
            let mut rng = StdRng::seed_from_u64(1);
            let key = Some(crate::cluster::hash::hash64(b"k"));
            let first = pick(&c, &[], key, "", &mut rng).unwrap().addr;
            for _ in 0..100 {
                assert_eq!(pick(&c, &[], key, "", &mut rng).unwrap().addr, first);
            }
            // A retry avoiding it moves on; no key spreads.
            assert_ne!(pick(&c, &[first], key, "", &mut rng).unwrap().addr, first);
            assert_eq!(ports(&c, "", 200).len(), 4);
        }
    }

    #[test]
    fn no_healthy_endpoint_is_none() {
        let c = state(LbPolicy::RoundRobin, 0);
        assert!(pick(&c, &[], None, "", &mut StdRng::seed_from_u64(0)).is_none());
    }
}
