//! The answer cache, CoreDNS's `cache` plugin in its defaults: positive answers for the
//! least TTL they carry, denials (NXDOMAIN, NODATA) for their SOA's negative TTL, each
//! capped; served TTLs count down with the time spent in the cache.
//!
//! Time is a parameter so the tests can age entries without sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use metrics::{Counter, Gauge, Label};

use super::Forwarded;
use crate::metrics::{
    CACHE_ENTRIES, CACHE_EVICTIONS, CACHE_HITS, CACHE_MISSES, CACHE_REQUESTS, Metrics,
};

/// CoreDNS's cap on positive answers: a resolver's TTL of days must not pin a stale
/// address for days here.
pub(super) const SUCCESS_CAP: u32 = 3600;
/// CoreDNS's cap on denials: a name created upstream shows up within half an hour at most.
pub(super) const DENIAL_CAP: u32 = 1800;
/// Entries looked at to choose one to evict when full. A sample, not a scan, keeps the
/// insert cheap under the lock; CoreDNS itself evicts at random.
const EVICTION_SAMPLE: usize = 16;

/// What the cache is keyed on: the question, case folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    name: Name,
    qtype: RecordType,
}

impl Key {
    pub(super) fn new(name: &Name, qtype: RecordType) -> Self {
        let mut name = name.to_lowercase();
        // `a.com` and `a.com.` are the same question on the wire.
        name.set_fqdn(true);
        Key { name, qtype }
    }
}

/// The two kinds of cached answer, as CoreDNS labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Success,
    Denial,
}

#[derive(Debug)]
struct Entry {
    answer: Arc<Forwarded>,
    stored: Instant,
    /// Seconds it may be served, from `stored`.
    ttl: u32,
    kind: Kind,
}

impl Entry {
    fn expires(&self) -> Instant {
        self.stored + Duration::from_secs(u64::from(self.ttl))
    }
}

/// The metric handles of one kind.
#[derive(Debug)]
struct KindMetrics {
    entries: Gauge,
    hits: Counter,
    evictions: Counter,
}

/// A bounded, TTL-honouring cache of upstream answers.
#[derive(Debug)]
pub(super) struct Cache {
    capacity: usize,
    entries: Mutex<HashMap<Key, Entry>>,
    requests: Counter,
    misses: Counter,
    success: KindMetrics,
    denial: KindMetrics,
}

impl Cache {
    pub(super) fn new(capacity: usize, server: &str, metrics: &Metrics) -> Self {
        let labels = |kind: Option<&'static str>| {
            let mut labels = vec![Label::new("server", server.to_string())];
            if let Some(kind) = kind {
                labels.push(Label::new("type", kind));
            }
            labels.push(Label::new("zones", "."));
            labels.push(Label::new("view", ""));
            labels
        };
        let kind = |name: &'static str| KindMetrics {
            entries: metrics.gauge(CACHE_ENTRIES, labels(Some(name))),
            hits: metrics.counter(CACHE_HITS, labels(Some(name))),
            evictions: metrics.counter(CACHE_EVICTIONS, labels(Some(name))),
        };
        Cache {
            capacity,
            entries: Mutex::new(HashMap::new()),
            requests: metrics.counter(CACHE_REQUESTS, labels(None)),
            misses: metrics.counter(CACHE_MISSES, labels(None)),
            success: kind("success"),
            denial: kind("denial"),
        }
    }

    /// The cached answer with its TTLs aged to `now`, if there is one that has not expired.
    pub(super) fn get(&self, key: &Key, now: Instant) -> Option<Forwarded> {
        self.requests.increment(1);
        let found = {
            let mut entries = self.lock();
            match entries.get(key) {
                Some(entry) if now < entry.expires() => Some((
                    Arc::clone(&entry.answer),
                    entry.stored,
                    entry.ttl,
                    entry.kind,
                )),
                Some(_) => {
                    if let Some(expired) = entries.remove(key) {
                        self.metrics(expired.kind).entries.decrement(1);
                    }
                    None
                }
                None => None,
            }
        };
        let Some((answer, stored, ttl, kind)) = found else {
            self.misses.increment(1);
            return None;
        };
        self.metrics(kind).hits.increment(1);
        let age =
            u32::try_from(now.saturating_duration_since(stored).as_secs()).unwrap_or(u32::MAX);
        // Positive while unexpired, since age < ttl.
        let remaining = ttl.saturating_sub(age);
        let mut answer = Forwarded::clone(&answer);
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(age).min(remaining);
        }
        Some(answer)
    }

    /// Stores `answer` for the question if its kind and TTLs allow.
    pub(super) fn insert(&self, key: Key, answer: &Forwarded, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let Some((kind, ttl)) = classify(answer) else {
            return;
        };
        let entry = Entry {
            answer: Arc::new(answer.clone()),
            stored: now,
            ttl,
            kind,
        };
        let mut entries = self.lock();
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            self.evict_one(&mut entries, now);
        }
        if let Some(old) = entries.insert(key, entry) {
            self.metrics(old.kind).entries.decrement(1);
        }
        self.metrics(kind).entries.increment(1);
    }

    /// Drops an expired entry if the sample holds one, else the one expiring first.
    fn evict_one(&self, entries: &mut HashMap<Key, Entry>, now: Instant) {
        let victim = entries
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, entry)| entry.expires())
            .map(|(key, entry)| (key.clone(), entry.expires() <= now));
        let Some((key, expired)) = victim else {
            return;
        };
        if let Some(evicted) = entries.remove(&key) {
            let metrics = self.metrics(evicted.kind);
            metrics.entries.decrement(1);
            // Only live answers pushed out for room count, as in CoreDNS.
            if !expired {
                metrics.evictions.increment(1);
            }
        }
    }

    fn metrics(&self, kind: Kind) -> &KindMetrics {
        match kind {
            Kind::Success => &self.success,
            Kind::Denial => &self.denial,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // Nothing panics while holding the lock; if something did, the map is still a
        // valid map.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries held (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Lowers every TTL in a fresh upstream answer to the time it will be cached for, as
/// CoreDNS does: clients then see the same TTL whether the answer came from the upstream
/// or the cache, and never one that jumps from the upstream's 86400 to the cap.
pub(super) fn clamp_ttls(answer: &mut Forwarded) {
    let Some((_, ttl)) = classify(answer) else {
        return;
    };
    for record in answer
        .answers
        .iter_mut()
        .chain(answer.authorities.iter_mut())
        .chain(answer.additionals.iter_mut())
    {
        record.ttl = record.ttl.min(ttl);
    }
}

/// Whether an answer may be cached, as what, and for how many seconds.
fn classify(answer: &Forwarded) -> Option<(Kind, u32)> {
    let (kind, ttl) = match answer.rcode {
        ResponseCode::NoError if !answer.answers.is_empty() => {
            let ttl = answer
                .answers
                .iter()
                .chain(&answer.authorities)
                .chain(&answer.additionals)
                .map(|record| record.ttl)
                .min()?;
            (Kind::Success, ttl.min(SUCCESS_CAP))
        }
        // NODATA or NXDOMAIN: only with an SOA to say for how long (RFC 2308 §5).
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let ttl = answer.authorities.iter().find_map(negative_ttl)?;
            (Kind::Denial, ttl.min(DENIAL_CAP))
        }
        // SERVFAIL, REFUSED and the rest are about this moment, not about the name.
        _ => return None,
    };
    (ttl > 0).then_some((kind, ttl))
}

/// RFC 2308 §5: a denial lives for the lesser of the SOA record's TTL and its MINIMUM.
fn negative_ttl(record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
        _ => None,
    }
}
