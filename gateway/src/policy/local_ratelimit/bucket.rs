//! Envoy's token bucket, shared by every local rate limit form.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use corridor_proto::envoy::r#type::v3::TokenBucket as PbTokenBucket;

use crate::model::{ModelError, duration};

/// Envoy's token bucket: starts full, gains `per_fill` tokens every `interval` up to `max`.
#[derive(Debug)]
pub(super) struct Bucket {
    max: u32,
    per_fill: u32,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: u32,
    /// When the last whole interval was credited.
    filled: Instant,
}

impl Bucket {
    pub(super) fn new(b: &PbTokenBucket) -> Result<Bucket, ModelError> {
        if b.max_tokens == 0 {
            return Err(ModelError::invalid(
                "token_bucket.max_tokens",
                "must be greater than 0",
            ));
        }
        let per_fill = b.tokens_per_fill.as_ref().map_or(1, |v| v.value);
        if per_fill == 0 {
            return Err(ModelError::invalid(
                "token_bucket.tokens_per_fill",
                "must be greater than 0",
            ));
        }
        let interval = duration(
            b.fill_interval
                .as_ref()
                .ok_or(ModelError::Missing("token_bucket.fill_interval"))?,
            "token_bucket.fill_interval",
        )?;
        if interval.is_zero() {
            return Err(ModelError::invalid(
                "token_bucket.fill_interval",
                "must be positive",
            ));
        }
        Ok(Bucket {
            max: b.max_tokens,
            per_fill,
            interval,
            state: Mutex::new(State {
                tokens: b.max_tokens,
                filled: Instant::now(),
            }),
        })
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(super) fn take(&self, now: Instant) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        let fills = now.saturating_duration_since(s.filled).as_nanos() / self.interval.as_nanos();
        if fills > 0 {
            let gained = u64::try_from(fills)
                .unwrap_or(u64::MAX)
                .saturating_mul(u64::from(self.per_fill));
            s.tokens = u32::try_from((u64::from(s.tokens) + gained).min(u64::from(self.max)))
                .unwrap_or(self.max);
            let credited = u32::try_from(fills).unwrap_or(u32::MAX);
            s.filled = s
                .filled
                .checked_add(self.interval.saturating_mul(credited))
                .unwrap_or(now);
        }
        if s.tokens == 0 {
            return false;
        }
        s.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corridor_proto::google::protobuf::{Duration as PbDuration, UInt32Value};

    #[test]
    fn a_bucket_empties_and_refills_by_whole_intervals() {
        let b = Bucket::new(&PbTokenBucket {
            max_tokens: 2,
            tokens_per_fill: Some(UInt32Value { value: 1 }),
            fill_interval: Some(PbDuration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .unwrap();
        let t0 = Instant::now();
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "empty after max_tokens calls");
        assert!(
            !b.take(t0 + Duration::from_millis(900)),
            "no token before a whole interval"
        );
        assert!(b.take(t0 + Duration::from_millis(1100)));
        assert!(!b.take(t0 + Duration::from_millis(1200)));
        // A long pause refills only up to max.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && !b.take(later));
    }
}
