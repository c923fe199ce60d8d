//! Which rate to try next: multiply until a step misses, then bisect.

/// The state of a capacity search.
#[derive(Debug, Clone)]
pub(super) struct Search {
    rate: u64,
    max: u64,
    factor: f64,
    precision: f64,
    /// The highest rate met so far.
    best: Option<u64>,
    /// The lowest rate missed so far.
    missed: Option<u64>,
    steps: usize,
}

/// No search runs longer than this many steps, whatever its flags.
const MAX_STEPS: usize = 40;

impl Search {
    /// A search from `start`, multiplying by `factor` up to `max`, bisecting to
    /// `precision` (a share of the best rate).
    pub(super) fn new(start: u64, max: u64, factor: f64, precision: f64) -> Self {
        Self {
            rate: start,
            max,
            factor,
            precision,
            best: None,
            missed: None,
            steps: 0,
        }
    }

    /// The highest rate met so far.
    pub(super) fn best(&self) -> Option<u64> {
        self.best
    }

    /// Takes the verdict of the step at the current rate; returns the next rate, or
    /// `None` when the search is over.
    pub(super) fn next(&mut self, met: bool) -> Option<u64> {
        self.steps += 1;
        if met {
            self.best = self.best.max(Some(self.rate));
        } else {
            self.missed = Some(self.missed.map_or(self.rate, |m| m.min(self.rate)));
        }
        if self.steps >= MAX_STEPS {
            return None;
        }
        self.rate = match (self.best, self.missed) {
            // Still climbing.
            (_, None) if self.rate >= self.max => return None,
            (_, None) => ((self.rate as f64 * self.factor).ceil() as u64)
                .max(self.rate + 1)
                .min(self.max),
            // Even the start rate missed.
            (None, Some(_)) => return None,
            (Some(best), Some(missed)) => {
                let close = ((best as f64 * self.precision).ceil() as u64).max(1);
                if missed.saturating_sub(best) <= close {
                    return None;
                }
                best + (missed - best) / 2
            }
        };
        Some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rates a search tries against a target that holds up to `capacity`.
    fn rates(start: u64, max: u64, capacity: u64) -> (Vec<u64>, Option<u64>) {
        let mut search = Search::new(start, max, 2.0, 0.05);
        let mut tried = vec![start];
        let mut rate = start;
        while let Some(next) = search.next(rate <= capacity) {
            tried.push(next);
            rate = next;
        }
        (tried, search.best())
    }

    #[test]
    fn it_climbs_then_bisects_to_within_the_precision() {
        let (tried, best) = rates(100, 1_000_000, 1234);
        assert_eq!(&tried[..6], [100, 200, 400, 800, 1600, 1200]);
        let best = best.unwrap();
        assert!(
            best <= 1234 && best as f64 >= 1234.0 * 0.95,
            "{best} {tried:?}"
        );
        assert!(tried.len() < 12, "{tried:?}");
    }

    #[test]
    fn it_stops_at_the_max_rate() {
        let (tried, best) = rates(100, 1000, u64::MAX);
        assert_eq!(tried, [100, 200, 400, 800, 1000]);
        assert_eq!(best, Some(1000));
    }

    #[test]
    fn a_missed_start_rate_ends_the_search_with_nothing() {
        let (tried, best) = rates(100, 1000, 50);
        assert_eq!(tried, [100]);
        assert_eq!(best, None);
    }

    #[test]
    fn low_rates_bisect_down_to_one_call_per_second() {
        let (tried, best) = rates(1, 1000, 6);
        assert_eq!(best, Some(6), "{tried:?}");
    }
}
