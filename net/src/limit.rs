//! Per-peer limits: a token bucket per key (request rate) and a concurrency cap, both
//! bounded in memory. Time is passed in (milliseconds), never read here.

use std::collections::{BTreeMap, VecDeque};

/// Token buckets per key: `rate` tokens per second, bursts up to `burst`; at most
/// `max_keys` keys tracked (the least recently seen is forgotten first).
#[derive(Debug)]
pub struct RateLimiter<K: Ord + Clone> {
    rate_per_s: u32,
    burst: u32,
    max_keys: usize,
    tick: u64,
    buckets: BTreeMap<K, Bucket>,
    /// (key, tick of that touch), oldest first; entries of keys touched again are stale.
    order: VecDeque<(K, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens × 1000 (milli-tokens), so refills are exact in integer arithmetic.
    milli: u64,
    at_ms: u64,
    seen: u64,
}

impl<K: Ord + Clone> RateLimiter<K> {
    /// A limiter of `rate_per_s` requests per second with bursts of `burst`.
    pub fn new(rate_per_s: u32, burst: u32, max_keys: usize) -> Self {
        RateLimiter {
            rate_per_s: rate_per_s.max(1),
            burst: burst.max(1),
            max_keys: max_keys.max(1),
            tick: 0,
            buckets: BTreeMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Takes one token for `key` at time `now_ms`: Ok, or Err(milliseconds until a token).
    pub fn check(&mut self, key: &K, now_ms: u64) -> Result<(), u64> {
        let cap = u64::from(self.burst) * 1000;
        self.tick += 1;
        let tick = self.tick;
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            milli: cap,
            at_ms: now_ms,
            seen: tick,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms);
        b.milli = (b.milli + elapsed.saturating_mul(u64::from(self.rate_per_s))).min(cap);
        b.at_ms = now_ms.max(b.at_ms);
        b.seen = tick;
        let out = if b.milli >= 1000 {
            b.milli -= 1000;
            Ok(())
        } else {
            Err((1000 - b.milli).div_ceil(u64::from(self.rate_per_s)))
        };
        self.order.push_back((key.clone(), tick));
        self.evict();
        out
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Forgets the least recently seen keys over the cap, and compacts the touch log.
    fn evict(&mut self) {
        while self.buckets.len() > self.max_keys {
            let Some((k, seen)) = self.order.pop_front() else {
                break;
            };
            if self.buckets.get(&k).is_some_and(|b| b.seen == seen) {
                self.buckets.remove(&k);
            }
        }
        if self.order.len() > 4 * self.max_keys {
            let mut live: Vec<(K, u64)> = self
                .buckets
                .iter()
                .map(|(k, b)| (k.clone(), b.seen))
                .collect();
            live.sort_by_key(|(_, s)| *s);
            self.order = live.into();
        }
    }
}

/// In-flight requests per key, capped.
#[derive(Debug, Default)]
pub struct Concurrency<K: Ord + Clone> {
    max: u32,
    inflight: BTreeMap<K, u32>,
}

impl<K: Ord + Clone> Concurrency<K> {
    /// At most `max` in flight per key.
    pub fn new(max: u32) -> Self {
        Concurrency {
            max: max.max(1),
            inflight: BTreeMap::new(),
        }
    }

    /// Starts one request for `key` unless it already has `max` in flight.
    pub fn start(&mut self, key: &K) -> bool {
        let n = self.inflight.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    /// Ends one request for `key`.
    pub fn end(&mut self, key: &K) {
        if let Some(n) = self.inflight.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.inflight.remove(key);
            }
        }
    }

    /// Requests in flight for `key`.
    pub fn inflight(&self, key: &K) -> u32 {
        self.inflight.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let mut r = RateLimiter::new(10, 3, 100);
        for _ in 0..3 {
            assert_eq!(r.check(&1u32, 0), Ok(()));
        }
        // Empty: one token takes 100 ms at 10/s.
        assert_eq!(r.check(&1u32, 0), Err(100));
        assert_eq!(r.check(&1u32, 50), Err(50));
        assert_eq!(r.check(&1u32, 100), Ok(()));
        // Another key has its own bucket.
        assert_eq!(r.check(&2u32, 100), Ok(()));
        // Refill never exceeds the burst.
        for _ in 0..3 {
            assert_eq!(r.check(&1u32, 10_000), Ok(()));
        }
        assert!(r.check(&1u32, 10_000).is_err());
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let mut r = RateLimiter::new(1, 1, 16);
        for k in 0..10_000u32 {
            let _ = r.check(&k, u64::from(k));
            assert!(r.len() <= 16);
            assert!(r.order.len() <= 4 * 16 + 1);
        }
        // A recently seen key keeps its (empty) bucket.
        assert!(r.check(&9_999, 9_999).is_err());
    }

    #[test]
    fn concurrency_caps_in_flight_per_key() {
        let mut c = Concurrency::new(2);
        assert!(c.start(&"a"));
        assert!(c.start(&"a"));
        assert!(!c.start(&"a"));
        assert!(c.start(&"b"));
        c.end(&"a");
        assert!(c.start(&"a"));
        c.end(&"a");
        c.end(&"a");
        c.end(&"a");
        assert_eq!(c.inflight(&"a"), 0);
    }
}
