//! What the store keeps for each submission, and the status the API reports from it.
//!
//! The record is also the notification outbox: a rejected record carries whether its rejection
//! was notified, and the notification is built from the record alone, so every copy of it is
//! identical.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CorrelationId, SubmissionId, UserId};
use crate::message::{MESSAGE_VERSION, QueuedSubmission, Rejection};
use crate::rejection::RejectionReason;
use crate::submission::{ClientRef, HeroId, Score};

/// The processor's verdict on one submission, or that it gave up deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Rejected(RejectionReason),
    /// Not a verdict: the processor could not decide by the message's last receive, and SQS
    /// parked the message in the dead-letter queue. A redrive decides it, replacing this marker.
    Failed(FailureReason),
}

impl Outcome {
    /// Accepted or rejected: final, never changed by a redelivery or a retry.
    pub fn is_verdict(self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// Why the processor gave up on a submission (stable snake_case codes, shown in the status API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The users directory could not be read.
    DirectoryUnavailable,
    /// The user's directory entry exists but cannot be read.
    UnreadableUserEntry,
    /// The per-user quota could not be counted.
    QuotaUnavailable,
    /// The submissions table did not take the record.
    StoreUnavailable,
}

impl FailureReason {
    pub const ALL: [FailureReason; 4] = [
        FailureReason::DirectoryUnavailable,
        FailureReason::UnreadableUserEntry,
        FailureReason::QuotaUnavailable,
        FailureReason::StoreUnavailable,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FailureReason::DirectoryUnavailable => "directory_unavailable",
            FailureReason::UnreadableUserEntry => "unreadable_user_entry",
            FailureReason::QuotaUnavailable => "quota_unavailable",
            FailureReason::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a submission's record is kept: the submissions table's key, the player and then the
/// submission id. Every reader knows both: a status read is the caller's own, and the pipeline's
/// messages carry the user. Ids do not collide across players (fresh ids are UUIDv7, derived
/// ones UUIDv5 over the user), so an id alone still names one submission in reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubmissionKey {
    pub user_id: UserId,
    pub submission_id: SubmissionId,
}

impl SubmissionKey {
    pub fn new(user_id: UserId, submission_id: SubmissionId) -> Self {
        Self {
            user_id,
            submission_id,
        }
    }
}

/// One stored item per submission, written once (a conditional put): the first verdict stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionRecord {
    pub submission_id: SubmissionId,
    pub user_id: UserId,
    pub hero_id: HeroId,
    pub score: Score,
    pub achieved_at: Option<OffsetDateTime>,
    pub client_ref: Option<ClientRef>,
    pub received_at: OffsetDateTime,
    pub correlation_id: CorrelationId,
    pub outcome: Outcome,
    /// When the processor decided: the `rejectedAt` every notification of a rejection carries.
    pub decided_at: OffsetDateTime,
    /// When the rejection was published; `None` until the notifier marks it (the outbox flag).
    pub notified_at: Option<OffsetDateTime>,
}

impl SubmissionRecord {
    pub fn key(&self) -> SubmissionKey {
        SubmissionKey::new(self.user_id.clone(), self.submission_id)
    }

    pub fn new(message: &QueuedSubmission, outcome: Outcome, decided_at: OffsetDateTime) -> Self {
        Self {
            submission_id: message.submission_id,
            user_id: message.principal.subject.clone(),
            hero_id: message.submission.hero_id.clone(),
            score: message.submission.score,
            achieved_at: message.submission.achieved_at,
            client_ref: message.submission.client_ref.clone(),
            received_at: message.received_at,
            correlation_id: message.correlation_id.clone(),
            outcome,
            decided_at,
            notified_at: None,
        }
    }

    /// Whether `message` is the same submission: same owner, hero, score and `achievedAt`. The
    /// same id with another payload is an idempotency conflict, and the stored one stands.
    pub fn same_payload(&self, message: &QueuedSubmission) -> bool {
        self.user_id == message.principal.subject
            && self.hero_id == message.submission.hero_id
            && self.score == message.submission.score
            && self.achieved_at == message.submission.achieved_at
    }

    /// The notification of this record's rejection, built from the record alone so that every
    /// copy is identical; `None` for other outcomes.
    pub fn rejection(&self) -> Option<Rejection> {
        let Outcome::Rejected(reason) = self.outcome else {
            return None;
        };
        Some(Rejection {
            v: MESSAGE_VERSION,
            submission_id: self.submission_id,
            user_id: self.user_id.clone(),
            hero_id: self.hero_id.clone(),
            score: self.score,
            reason,
            rejected_at: self.decided_at,
            correlation_id: self.correlation_id.clone(),
        })
    }

    /// The rejection still to notify: rejected and not yet marked notified.
    pub fn unnotified_rejection(&self) -> Option<Rejection> {
        self.notified_at
            .is_none()
            .then(|| self.rejection())
            .flatten()
    }
}

/// The accepted records among `records`, each rewritten as rejected with `reason`: what an
/// operator's revocation stores. The ranker reads each accepted item turned rejected in the
/// table's stream and takes the player off that item's boards, for good as of `revoked_at`
/// (`crate::board::StoredChange`); records already rejected are left as they are. The operator's
/// action is the only one that changes a verdict, and it is not notified through the pipeline:
/// the rewritten records count as notified at `revoked_at`, so no redelivery notifies them.
pub fn revoke_accepted(
    records: impl IntoIterator<Item = SubmissionRecord>,
    reason: RejectionReason,
    revoked_at: OffsetDateTime,
) -> Vec<SubmissionRecord> {
    records
        .into_iter()
        .filter(|r| r.outcome == Outcome::Accepted)
        .map(|r| SubmissionRecord {
            outcome: Outcome::Rejected(reason),
            decided_at: revoked_at,
            notified_at: Some(revoked_at),
            ..r
        })
        .collect()
}

/// A submission's status as `GET /v1/submissions/{id}` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum SubmissionStatus {
    Pending,
    Accepted,
    Rejected(RejectionReason),
    Failed(FailureReason),
}

impl From<Outcome> for SubmissionStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Accepted => SubmissionStatus::Accepted,
            Outcome::Rejected(reason) => SubmissionStatus::Rejected(reason),
            Outcome::Failed(reason) => SubmissionStatus::Failed(reason),
        }
    }
}

/// A record for unit tests across the crate: a fresh id, received at 2026-12-01 08:00 UTC.
#[cfg(test)]
pub(crate) fn example_record(
    user: &str,
    hero: &str,
    score: u32,
    outcome: Outcome,
) -> SubmissionRecord {
    SubmissionRecord {
        submission_id: SubmissionId::new_unique(),
        user_id: UserId::parse(user).unwrap(),
        hero_id: HeroId::parse(hero).unwrap(),
        score: Score::new(score).unwrap(),
        achieved_at: None,
        client_ref: None,
        received_at: time::macros::datetime!(2026-12-01 08:00:00 UTC),
        correlation_id: CorrelationId::generate(),
        outcome,
        decided_at: time::macros::datetime!(2026-12-01 08:00:01 UTC),
        notified_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(score: u32, outcome: Outcome) -> SubmissionRecord {
        example_record("mallory", "storm", score, outcome)
    }

    #[test]
    fn a_rejection_is_built_from_the_record_alone_and_is_the_same_every_time() {
        let record = record(5, Outcome::Rejected(RejectionReason::SuspendedUser));
        let first = record.unnotified_rejection().unwrap();
        assert_eq!(record.unnotified_rejection(), Some(first.clone()));
        assert_eq!(first.rejected_at, record.decided_at);
        assert_eq!(first.correlation_id, record.correlation_id);
        let notified = SubmissionRecord {
            notified_at: Some(record.decided_at),
            ..record.clone()
        };
        assert_eq!(notified.unnotified_rejection(), None);
        assert_eq!(notified.rejection(), Some(first));
        assert_eq!(self::record(5, Outcome::Accepted).rejection(), None);
    }

    #[test]
    fn failure_codes_are_stable() {
        for reason in FailureReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.code()));
            assert_eq!(FailureReason::from_code(reason.code()), Some(reason));
        }
        assert!(!Outcome::Failed(FailureReason::StoreUnavailable).is_verdict());
        assert!(Outcome::Accepted.is_verdict());
    }

    #[test]
    fn revoking_rewrites_only_the_accepted_records_and_keeps_everything_else() {
        let accepted = record(900, Outcome::Accepted);
        let already = record(5, Outcome::Rejected(RejectionReason::RateLimited));
        let at = time::macros::datetime!(2026-12-02 09:00:00 UTC);
        let revoked = revoke_accepted(
            [accepted.clone(), already],
            RejectionReason::SuspendedUser,
            at,
        );
        assert_eq!(
            revoked,
            [SubmissionRecord {
                outcome: Outcome::Rejected(RejectionReason::SuspendedUser),
                decided_at: at,
                notified_at: Some(at),
                ..accepted
            }]
        );
        assert_eq!(revoked[0].unnotified_rejection(), None);
    }
}
