//! Endpoint selection among the healthy endpoints of a cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rand::Rng;

use super::{ClusterState, Endpoint};
use crate::model::cluster::LbPolicy;

/// Picks an endpoint by the cluster's policy, avoiding `avoid` (endpoints that already
/// failed this request) when another healthy endpoint exists.
pub fn pick<R: Rng + ?Sized>(
    cluster: &ClusterState,
    avoid: &[SocketAddr],
    rng: &mut R,
) -> Option<Arc<Endpoint>> {
    let hosts = &cluster.healthy;
    let n = hosts.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        return Some(hosts[0].clone());
    }
    let ok = |e: &Arc<Endpoint>| !avoid.contains(&e.addr);
    let chosen = match cluster.config.lb {
        LbPolicy::RoundRobin => {
            let start = cluster.counters.rr.fetch_add(1, Ordering::Relaxed);
            (0..n).map(|i| &hosts[(start + i) % n]).find(|e| ok(e))
        }
        LbPolicy::Random => {
            let start = rng.random_range(0..n);
            (0..n).map(|i| &hosts[(start + i) % n]).find(|e| ok(e))
        }
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
                .find(|e| ok(e))
                .or_else(|| hosts.iter().find(|e| ok(e)))
        }
    };
    // Every healthy endpoint failed already: reuse one rather than fail the try.
    Some(chosen.unwrap_or(&hosts[0]).clone())
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
            .map(|_| pick(&c, &[], &mut rng).unwrap().addr.port())
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
                let first = pick(&c, &[], &mut rng).unwrap();
                let second = pick(&c, &[first.addr], &mut rng).unwrap();
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
            assert_eq!(pick(&c, &[], &mut rng).unwrap().addr.port(), 2);
        }
    }

    #[test]
    fn random_spreads_over_all_endpoints() {
        let c = state(LbPolicy::Random, 4);
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            seen[(pick(&c, &[], &mut rng).unwrap().addr.port() - 1) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn no_healthy_endpoint_is_none() {
        let c = state(LbPolicy::RoundRobin, 0);
        assert!(pick(&c, &[], &mut StdRng::seed_from_u64(0)).is_none());
    }
}
