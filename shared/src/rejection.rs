//! Why the processor refused a submission: the processor's verdict and the notifier's `reason`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A rejection reason with a stable snake_case code (it appears in stored items, queue messages,
/// SNS message attributes and the status API; subscribers filter on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// The token's subject is not in the users directory.
    UnknownUser,
    /// The user exists but is suspended.
    SuspendedUser,
    /// The user exists but may not submit scores.
    MissingPermission,
    /// The user went over their submission quota for the window the submission was received in.
    RateLimited,
    /// The submission's id (from its `clientRef` or the request's `Idempotency-Key`) is already
    /// stored with another hero, score or `achievedAt`. The stored submission stands; this one is
    /// refused. Never a stored verdict: only notified.
    IdempotencyConflict,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 5] = [
        RejectionReason::UnknownUser,
        RejectionReason::SuspendedUser,
        RejectionReason::MissingPermission,
        RejectionReason::RateLimited,
        RejectionReason::IdempotencyConflict,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectionReason::UnknownUser => "unknown_user",
            RejectionReason::SuspendedUser => "suspended_user",
            RejectionReason::MissingPermission => "missing_permission",
            RejectionReason::RateLimited => "rate_limited",
            RejectionReason::IdempotencyConflict => "idempotency_conflict",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_match_serde() {
        for reason in RejectionReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.code()));
            assert_eq!(RejectionReason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(RejectionReason::SuspendedUser.code(), "suspended_user");
        assert_eq!(RejectionReason::RateLimited.code(), "rate_limited");
        assert_eq!(RejectionReason::from_code("nope"), None);
    }
}
