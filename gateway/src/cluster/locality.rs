//! Zone-aware picking: with the cluster's switch on and the gateway's zone known, picks
//! stay in the gateway's zone while enough of it is usable, and spill over to the other
//! zones as it empties (ejections, retries avoiding an endpoint, endpoints gone).
//!
//! "Enough" follows Envoy's priority spill-over: a zone with `a` usable endpoints out of
//! `t` takes `min(1, 1.4 × a / t)` of the traffic, so it keeps all of it until more
//! than about 28 % of it is unusable, and none once it is empty.

use std::sync::Arc;

use rand::Rng;

use super::Endpoint;

/// Envoy's overprovisioning factor (140 %), in percent.
const OVERPROVISIONING_PERCENT: usize = 140;

/// A cluster's healthy endpoints grouped by zone, built with the cluster.
#[derive(Debug, Default)]
pub struct Zones {
    buckets: Vec<(Arc<str>, Vec<Arc<Endpoint>>)>,
}

impl Zones {
    /// Groups `hosts` by their zone.
    pub fn new(hosts: &[Arc<Endpoint>]) -> Zones {
        let mut buckets: Vec<(Arc<str>, Vec<Arc<Endpoint>>)> = Vec::new();
        for h in hosts {
            match buckets.iter_mut().find(|(z, _)| *z == h.zone) {
                Some((_, b)) => b.push(h.clone()),
                None => buckets.push((h.zone.clone(), vec![h.clone()])),
            }
        }
        Zones { buckets }
    }

    /// The endpoints of `zone`, if any.
    pub fn of(&self, zone: &str) -> Option<&[Arc<Endpoint>]> {
        self.buckets
            .iter()
            .find(|(z, _)| &**z == zone)
            .map(|(_, b)| b.as_slice())
    }

    /// The endpoints to pick from: the gateway's zone's when this pick stays local,
    /// `None` for every healthy endpoint. `own` empty: no preference.
    pub fn candidates<R: Rng + ?Sized>(
        &self,
        own: &str,
        usable: impl Fn(&Endpoint) -> bool,
        rng: &mut R,
    ) -> Option<&[Arc<Endpoint>]> {
        if own.is_empty() {
            return None;
        }
        let local = self.of(own)?;
        let available = local.iter().filter(|e| usable(e)).count();
        stays_local(available, local.len(), rng).then_some(local)
    }
}

/// Whether a pick stays in a zone with `available` usable endpoints out of `total`.
fn stays_local<R: Rng + ?Sized>(available: usize, total: usize, rng: &mut R) -> bool {
    if available == 0 || total == 0 {
        return false;
    }
    let share = available * OVERPROVISIONING_PERCENT;
    let whole = total * 100;
    share >= whole || rng.random_range(0..whole) < share
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn local_share(available: usize, total: usize) -> f64 {
        let mut rng = StdRng::seed_from_u64(5);
        let n = 10_000;
        let local = (0..n)
            .filter(|_| stays_local(available, total, &mut rng))
            .count();
        local as f64 / f64::from(n)
    }

    #[test]
    fn a_healthy_zone_keeps_all_its_traffic() {
        assert_eq!(local_share(4, 4), 1.0);
        // 3 of 4 usable: 1.4 × 0.75 ≥ 1, still all local.
        assert_eq!(local_share(3, 4), 1.0);
    }

    #[test]
    fn a_degraded_zone_spills_in_proportion() {
        // 1 of 4 usable: 1.4 × 0.25 = 35 % stays local.
        let share = local_share(1, 4);
        assert!((0.32..0.38).contains(&share), "{share}");
    }

    #[test]
    fn an_empty_zone_spills_everything() {
        assert_eq!(local_share(0, 4), 0.0);
        assert_eq!(local_share(0, 0), 0.0);
    }
}
