//! Retry policy: exponential backoff with full jitter, bounded by attempts and a deadline.

use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            cap: Duration::from_secs(2),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The longest wait before retry number `retry` (1 for the first retry): `base * 2^(retry-1)`, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A full-jitter wait: uniform in `0..=ceiling(retry)`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry).as_micros() as u64;
        Duration::from_micros(rand::rng().random_range(0..=ceiling))
    }

    /// The wait before retry number `retry`, or `None` when attempts are used up or the wait
    /// would end past `deadline`.
    pub fn next_delay(&self, retry: u32, now: Instant, deadline: Instant) -> Option<Duration> {
        if retry >= self.max_attempts {
            return None;
        }
        let delay = self.delay(retry);
        (now + delay < deadline).then_some(delay)
    }

    /// Waits before retry number `retry` and says whether to make it: false, without waiting,
    /// when attempts are used up or the wait would end past `deadline`.
    pub async fn pause(&self, retry: u32, deadline: Instant) -> bool {
        match self.next_delay(retry, Instant::now(), deadline) {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(75),
            max_attempts: 10,
        };
        let ceilings: Vec<u128> = (1..=5).map(|r| b.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [10, 20, 40, 75, 75]);
        assert_eq!(
            b.ceiling(400),
            Duration::from_millis(75),
            "large retry numbers do not overflow"
        );
    }

    #[test]
    fn delays_stay_within_their_ceiling() {
        let b = Backoff::default();
        for retry in 1..=8 {
            for _ in 0..50 {
                assert!(b.delay(retry) <= b.ceiling(retry));
            }
        }
    }

    #[test]
    fn retries_stop_at_the_attempt_limit_and_the_deadline() {
        let b = Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
            max_attempts: 3,
        };
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert!(b.next_delay(1, now, far).is_some());
        assert!(b.next_delay(2, now, far).is_some());
        assert_eq!(b.next_delay(3, now, far), None, "three attempts in all");
        assert_eq!(b.next_delay(1, now, now), None, "no time left");
    }

    #[tokio::test]
    async fn a_pause_says_whether_to_retry() {
        let b = Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_attempts: 3,
        };
        let far = Instant::now() + Duration::from_secs(10);
        assert!(b.pause(1, far).await);
        let before = Instant::now();
        assert!(!b.pause(3, far).await, "attempts used up");
        assert!(!b.pause(1, Instant::now()).await, "no time left");
        // A refusal that waited out the 10 s to the deadline shows; a busy machine holding
        // this thread up for a moment does not.
        assert!(
            before.elapsed() < Duration::from_secs(5),
            "refusals do not wait"
        );
    }
}
