//! Per-project token buckets, in process. Each hub replica limits on its own: with N replicas behind a load
//! balancer a project gets about N times the configured rate, which is what a limit meant to stop floods needs,
//! without a Redis round trip per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use uuid::Uuid;

const SHARDS: usize = 16;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    shards: Vec<Mutex<HashMap<Uuid, Bucket>>>,
}

impl RateLimiter {
    /// `per_sec == 0` disables limiting.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes `n` tokens for `project`; on refusal returns the seconds until `n` tokens are available.
    pub fn take(&self, project: &Uuid, n: u32) -> Result<(), u64> {
        self.take_at(project, n, Instant::now())
    }

    fn take_at(&self, project: &Uuid, n: u32, now: Instant) -> Result<(), u64> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let shard = &self.shards[(project.as_u128() % SHARDS as u128) as usize];
        let mut buckets = shard.lock().expect("rate limiter lock");
        let bucket = buckets.entry(*project).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.updated = now;
        let want = f64::from(n);
        if bucket.tokens >= want {
            bucket.tokens -= want;
            Ok(())
        } else {
            let missing = want.min(self.burst) - bucket.tokens;
            Err((missing / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_refuses_until_refilled() {
        let limiter = RateLimiter::new(10, 20);
        let p = Uuid::from_u128(1);
        let t0 = Instant::now();
        assert!(limiter.take_at(&p, 20, t0).is_ok());
        assert_eq!(limiter.take_at(&p, 5, t0), Err(1));
        assert!(limiter.take_at(&Uuid::from_u128(2), 5, t0).is_ok(), "projects have separate buckets");
        assert!(limiter.take_at(&p, 5, t0 + Duration::from_millis(600)).is_ok());
        assert_eq!(limiter.take_at(&p, 20, t0 + Duration::from_millis(600)), Err(2));
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = RateLimiter::new(0, 0);
        assert!(limiter.take(&Uuid::nil(), 1_000_000).is_ok());
    }
}
