//! A latency objective: `p99<5ms`, `p50<2ms`, `p99.9<20ms`.

use std::{fmt, str::FromStr, time::Duration};

/// A percentile of latency that must stay under a bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// The percentile, above 0 and at most 100.
    pub percentile: f64,
    /// The bound (exclusive).
    pub max: Duration,
}

/// Why an objective does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not an objective like p99<5ms: {reason}")]
pub struct SloError {
    text: String,
    reason: String,
}

impl Slo {
    /// `p99`, `p99.9`, ...
    pub fn name(&self) -> String {
        format!("p{}", self.percentile)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}<{}",
            self.name(),
            humantime::format_duration(self.max)
        )
    }
}

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(text: &str) -> Result<Self, SloError> {
        let fail = |reason: &str| SloError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (left, right) = compact.split_once('<').ok_or_else(|| fail("no '<'"))?;
        let percentile: f64 = left
            .strip_prefix('p')
            .ok_or_else(|| fail("the percentile starts with 'p'"))?
            .parse()
            .map_err(|_| fail("the percentile is not a number"))?;
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(fail("the percentile is not above 0 and at most 100"));
        }
        let max = humantime::parse_duration(right).map_err(|e| fail(&e.to_string()))?;
        if max.is_zero() {
            return Err(fail("the bound is zero"));
        }
        Ok(Self { percentile, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_with_any_percentile_and_unit() {
        for (text, percentile, max) in [
            ("p99<5ms", 99.0, Duration::from_millis(5)),
            ("p50<2ms", 50.0, Duration::from_millis(2)),
            ("p99.9<20ms", 99.9, Duration::from_millis(20)),
            (" p99.99 < 500us ", 99.99, Duration::from_micros(500)),
            ("p100<1s", 100.0, Duration::from_secs(1)),
        ] {
            let slo: Slo = text.parse().unwrap();
            assert_eq!(slo, Slo { percentile, max }, "{text}");
        }
    }

    #[test]
    fn an_objective_prints_as_it_is_written() {
        assert_eq!(
            "p99.9<20ms".parse::<Slo>().unwrap().to_string(),
            "p99.9<20ms"
        );
        assert_eq!(
            "p50<1500us".parse::<Slo>().unwrap().to_string(),
            "p50<1ms 500us"
        );
    }

    #[test]
    fn malformed_objectives_say_why() {
        for (text, reason) in [
            ("p99>5ms", "no '<'"),
            ("99<5ms", "starts with 'p'"),
            ("pxx<5ms", "not a number"),
            ("p0<5ms", "above 0"),
            ("p101<5ms", "at most 100"),
            ("p99<5", "unit"),
            ("p99<0ms", "zero"),
        ] {
            let e = text.parse::<Slo>().unwrap_err().to_string();
            assert!(e.contains(reason), "{text}: {e}");
        }
    }
}
