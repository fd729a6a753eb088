//! A per-user burst limiter, per ingest instance, with no database round trip: a token bucket
//! per user, where each submission costs one token. It blunts a single client flooding one
//! instance; it is not a global quota (each warm Lambda instance keeps its own buckets).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use shared::config::BurstLimit;
use shared::ids::UserId;

/// Buckets kept at most; past this, buckets that have refilled completely are forgotten.
const MAX_TRACKED_USERS: usize = 100_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct BurstLimiter {
    limit: BurstLimit,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

impl BurstLimiter {
    pub fn new(limit: BurstLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens from the user's bucket, or says how long to wait before the request
    /// could pass.
    pub fn take(&self, user: &UserId, cost: u32, now: Instant) -> Result<(), Duration> {
        let BurstLimit { burst, per_second } = self.limit;
        let burst = f64::from(burst);
        let cost = f64::from(cost);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_USERS && !buckets.contains_key(user) {
            buckets.retain(|_, b| {
                b.tokens + per_second * now.duration_since(b.updated).as_secs_f64() < burst
            });
        }
        let bucket = buckets.entry(user.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refilled = per_second * now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.updated = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            return Ok(());
        }
        let missing = cost.min(burst) - bucket.tokens;
        let wait = if cost > burst || per_second <= 0.0 {
            // Never enough: the request is larger than the burst; say so with a long wait.
            Duration::from_secs(3600)
        } else {
            Duration::from_secs_f64(missing / per_second)
        };
        Err(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_second: f64) -> BurstLimiter {
        BurstLimiter::new(BurstLimit { burst, per_second })
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn a_burst_passes_and_the_next_submission_waits_for_a_refill() {
        let l = limiter(3, 1.0);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(&user("a"), 1, t), Ok(()));
        }
        let wait = l.take(&user("a"), 1, t).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(l.take(&user("a"), 1, t + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn users_have_separate_buckets() {
        let l = limiter(1, 1.0);
        let t = Instant::now();
        assert!(l.take(&user("a"), 1, t).is_ok());
        assert!(l.take(&user("a"), 1, t).is_err());
        assert!(l.take(&user("b"), 1, t).is_ok());
    }

    #[test]
    fn a_batch_costs_one_token_per_submission() {
        let l = limiter(100, 10.0);
        let t = Instant::now();
        assert!(l.take(&user("a"), 100, t).is_ok());
        let wait = l.take(&user("a"), 50, t).unwrap_err();
        assert!(wait >= Duration::from_secs(4), "{wait:?}");
        assert!(
            l.take(&user("a"), 101, t + Duration::from_secs(100))
                .is_err(),
            "larger than the burst"
        );
    }

    #[test]
    fn refills_never_exceed_the_burst() {
        let l = limiter(2, 100.0);
        let t = Instant::now();
        assert!(l.take(&user("a"), 2, t + Duration::from_secs(60)).is_ok());
        assert!(l.take(&user("a"), 1, t + Duration::from_secs(60)).is_err());
    }
}
