//! The per-user submission quota the processor enforces: at most `limit` submissions per user in
//! each fixed window of time. A submission belongs to the window its message's `receivedAt` falls
//! in, so a redelivered message is counted against the same window again. (A client retry is a
//! new message, maybe in a later window; the processor keeps the verdict of a stored record
//! instead of counting it again.)
//!
//! Counting is idempotent: a window remembers the ids it admitted, an id it admitted before is
//! admitted again, and an id it refused stays refused (the set never shrinks within a window).

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::ids::{SubmissionId, UserId};
use crate::limits::{MAX_USER_QUOTA_LIMIT, MAX_USER_QUOTA_WINDOW, QUOTA_RETENTION};

/// How many submissions a user may make per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// Submissions admitted per user and window (1 to [`MAX_USER_QUOTA_LIMIT`]).
    pub limit: u32,
    /// The window's length (at least one second); windows start at multiples of it since the epoch.
    pub window: Duration,
}

/// Why a [`QuotaPolicy`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaPolicyError {
    #[error("the limit must be between 1 and {MAX_USER_QUOTA_LIMIT}, not {0}")]
    Limit(u32),
    #[error(
        "the window must be a whole number of seconds from 1 to {max}, not {0:?}",
        max = MAX_USER_QUOTA_WINDOW.as_secs()
    )]
    Window(Duration),
}

impl QuotaPolicy {
    pub fn new(limit: u32, window: Duration) -> Result<Self, QuotaPolicyError> {
        if !(1..=MAX_USER_QUOTA_LIMIT).contains(&limit) {
            return Err(QuotaPolicyError::Limit(limit));
        }
        if window.as_secs() == 0 || window.subsec_nanos() != 0 || window > MAX_USER_QUOTA_WINDOW {
            return Err(QuotaPolicyError::Window(window));
        }
        Ok(Self { limit, window })
    }

    /// The window a submission received at `received_at` by `user_id` counts against.
    pub fn window_of(&self, user_id: &UserId, received_at: OffsetDateTime) -> QuotaWindow {
        let length = self.window.as_secs().max(1) as i64;
        let seconds = received_at.unix_timestamp();
        QuotaWindow {
            user_id: user_id.clone(),
            start: seconds.div_euclid(length) * length,
            length_seconds: length,
        }
    }
}

/// One user's counting window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuotaWindow {
    pub user_id: UserId,
    /// Unix seconds at which the window starts.
    pub start: i64,
    pub length_seconds: i64,
}

impl QuotaWindow {
    /// Unix seconds after which the window's counts may be forgotten: its end plus
    /// [`QUOTA_RETENTION`], so redeliveries of its messages still find them.
    pub fn expires_at(&self) -> i64 {
        self.kept_until(QUOTA_RETENTION)
    }

    /// Unix seconds `retention` after the window's end.
    pub fn kept_until(&self, retention: Duration) -> i64 {
        self.start + self.length_seconds + retention.as_secs() as i64
    }
}

/// The verdict of the counting rule for one window, given the ids it has already admitted:
/// ids admitted before are admitted again, and new ids are admitted in order while room is left.
/// Returns the admitted ids and the ids newly added to the window.
pub fn admit_into(
    counted: &HashSet<SubmissionId>,
    limit: u32,
    ids: &[SubmissionId],
) -> (HashSet<SubmissionId>, Vec<SubmissionId>) {
    let mut room = (limit as usize).saturating_sub(counted.len());
    let mut admitted = HashSet::new();
    let mut added = Vec::new();
    for id in ids {
        if counted.contains(id) || admitted.contains(id) {
            admitted.insert(*id);
        } else if room > 0 {
            room -= 1;
            admitted.insert(*id);
            added.push(*id);
        }
    }
    (admitted, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ids(n: usize) -> Vec<SubmissionId> {
        (0..n).map(|_| SubmissionId::new_unique()).collect()
    }

    #[test]
    fn a_policy_needs_a_usable_limit_and_whole_second_window() {
        assert!(QuotaPolicy::new(10, Duration::from_secs(60)).is_ok());
        assert_eq!(
            QuotaPolicy::new(0, Duration::from_secs(60)),
            Err(QuotaPolicyError::Limit(0))
        );
        assert_eq!(
            QuotaPolicy::new(MAX_USER_QUOTA_LIMIT + 1, Duration::from_secs(60)),
            Err(QuotaPolicyError::Limit(MAX_USER_QUOTA_LIMIT + 1))
        );
        assert!(QuotaPolicy::new(1, Duration::ZERO).is_err());
        assert!(QuotaPolicy::new(1, Duration::from_millis(1500)).is_err());
        assert!(QuotaPolicy::new(1, MAX_USER_QUOTA_WINDOW).is_ok());
        assert!(QuotaPolicy::new(1, MAX_USER_QUOTA_WINDOW + Duration::from_secs(1)).is_err());
        assert!(QuotaPolicy::new(1, Duration::from_secs(u64::MAX)).is_err());
    }

    #[test]
    fn windows_are_aligned_to_their_length_and_belong_to_one_user() {
        let policy = QuotaPolicy::new(5, Duration::from_secs(60)).unwrap();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let first = policy.window_of(&alice, datetime!(2026-11-22 10:00:00 UTC));
        let same = policy.window_of(&alice, datetime!(2026-11-22 10:00:59.999 UTC));
        let next = policy.window_of(&alice, datetime!(2026-11-22 10:01:00 UTC));
        assert_eq!(first, same);
        assert_eq!(next.start - first.start, 60);
        assert_eq!(first.start % 60, 0);
        assert_ne!(
            first,
            policy.window_of(&bob, datetime!(2026-11-22 10:00:00 UTC))
        );
        assert_eq!(
            first.expires_at(),
            first.start + 60 + QUOTA_RETENTION.as_secs() as i64
        );
        // Before the epoch, windows still start at or before the instant.
        let early = policy.window_of(&alice, datetime!(1969-12-31 23:59:30 UTC));
        assert_eq!(early.start, -60);
    }

    #[test]
    fn new_ids_are_admitted_in_order_until_the_limit() {
        let batch = ids(5);
        let (admitted, added) = admit_into(&HashSet::new(), 3, &batch);
        assert_eq!(added, batch[..3].to_vec());
        assert_eq!(admitted, batch[..3].iter().copied().collect());
    }

    #[test]
    fn counting_again_gives_the_same_verdict() {
        let batch = ids(5);
        let (first, added) = admit_into(&HashSet::new(), 3, &batch);
        let counted: HashSet<_> = added.into_iter().collect();
        // A redelivery of the whole batch, in another order, changes nothing.
        let mut again = batch.clone();
        again.reverse();
        let (second, added_again) = admit_into(&counted, 3, &again);
        assert_eq!(first, second);
        assert!(added_again.is_empty());
    }

    #[test]
    fn a_duplicate_in_one_call_takes_one_place() {
        let batch = ids(2);
        let twice = [batch[0], batch[0], batch[1]];
        let (admitted, added) = admit_into(&HashSet::new(), 2, &twice);
        assert_eq!(added, batch);
        assert_eq!(admitted.len(), 2);
    }
}
