//! What the store keeps for each submission, and the status the API reports from it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CorrelationId, SubmissionId, UserId};
use crate::message::QueuedSubmission;
use crate::rejection::RejectionReason;
use crate::submission::{ClientRef, HeroId, Score};

/// The processor's verdict on one submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    Rejected(RejectionReason),
}

/// One stored item per submission. Everything in it derives from the queue message and the
/// verdict, so writing it again for a redelivered message leaves exactly the same item.
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
}

impl SubmissionRecord {
    pub fn new(message: &QueuedSubmission, outcome: Outcome) -> Self {
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
        }
    }
}

/// The accepted records among `records`, each rewritten as rejected with `reason`: what an
/// operator's revocation stores. Rejected items carry no leaderboard keys, so writing these takes
/// the scores off every board; records already rejected are left as they are.
pub fn revoke_accepted(
    records: impl IntoIterator<Item = SubmissionRecord>,
    reason: RejectionReason,
) -> Vec<SubmissionRecord> {
    records
        .into_iter()
        .filter(|r| r.outcome == Outcome::Accepted)
        .map(|r| SubmissionRecord {
            outcome: Outcome::Rejected(reason),
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
}

impl From<Outcome> for SubmissionStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Accepted => SubmissionStatus::Accepted,
            Outcome::Rejected(reason) => SubmissionStatus::Rejected(reason),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(score: u32, outcome: Outcome) -> SubmissionRecord {
        example_record("mallory", "storm", score, outcome)
    }

    #[test]
    fn revoking_rewrites_only_the_accepted_records_and_keeps_everything_else() {
        let accepted = record(900, Outcome::Accepted);
        let already = record(5, Outcome::Rejected(RejectionReason::RateLimited));
        let revoked = revoke_accepted([accepted.clone(), already], RejectionReason::SuspendedUser);
        assert_eq!(
            revoked,
            [SubmissionRecord {
                outcome: Outcome::Rejected(RejectionReason::SuspendedUser),
                ..accepted
            }]
        );
    }
}
