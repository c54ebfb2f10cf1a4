//! Token buckets: per API key and route (`burst` requests at once, refilled at `per_second`),
//! and per client address for failed authentications.
//! State is per process; with several replicas each enforces the limit on its own share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(120);

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says after how many whole seconds one will be there.
    pub fn check(&self, key_id: &str, route: &str) -> Result<(), u64> {
        self.check_at(key_id, route, Instant::now())
    }

    /// Whether a token is there, without taking it (a check before costly work whose
    /// outcome decides whether it is taken, as failed authentications are).
    pub fn peek(&self, key_id: &str, route: &str) -> Result<(), u64> {
        self.take_at(key_id, route, Instant::now(), false)
    }

    fn check_at(&self, key_id: &str, route: &str, now: Instant) -> Result<(), u64> {
        self.take_at(key_id, route, now, true)
    }

    fn take_at(&self, key_id: &str, route: &str, now: Instant, take: bool) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE);
        }
        let bucket = buckets
            .entry((key_id.to_owned(), route.to_owned()))
            .or_insert(Bucket {
                tokens: self.burst,
                updated: now,
            });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_key_and_route() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("k", "/r", t0).is_ok());
        }
        assert_eq!(limiter.check_at("k", "/r", t0), Err(1));
        // Another route and another key have their own buckets.
        assert!(limiter.check_at("k", "/other", t0).is_ok());
        assert!(limiter.check_at("k2", "/r", t0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(limiter
            .check_at("k", "/r", t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .check_at("k", "/r", t0 + Duration::from_millis(500))
            .is_err());
    }
}
