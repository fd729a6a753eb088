//! The ranker: the submissions table's changes in, the rank index's boards brought up to date.
//! Fed by the table's stream (a Lambda event source mapping on DynamoDB Streams) when deployed,
//! and by the in-memory store's change feed in the local stack.
//!
//! Every change is applied idempotently (an offer only ever improves an entry, a revocation only
//! moves its mark on), so a batch that fails is simply delivered again from its first record.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::board::{BoardChange, StoredChange};
use shared::lambda::by_deadline;
use shared::metrics::Metric;
use shared::ports::RankIndex;
use tokio::time::Instant;

/// One change as the feed delivers it: where it is in the feed, and what it is (or why it could
/// not be read).
#[derive(Clone, Debug)]
pub struct FeedRecord {
    /// The stream's sequence number: what a partial batch response names.
    pub sequence: String,
    pub change: Result<StoredChange, String>,
}

impl FeedRecord {
    /// A DynamoDB stream record as Lambda delivers it.
    pub fn from_stream(record: &EventRecord) -> Self {
        Self {
            sequence: record
                .change
                .sequence_number
                .clone()
                .unwrap_or_else(|| record.event_id.clone()),
            change: shared::aws::dynamodb::stored_change(record).map_err(|e| e.to_string()),
        }
    }
}

/// What became of one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RankSummary {
    pub records: usize,
    /// Board changes asked for (three per accepted item, three per revoked one).
    pub offers: usize,
    pub revocations: usize,
    /// Of the changes, those that changed a board: new bests and removed entries.
    pub board_writes: usize,
    /// Records whose images could not be read: logged in full and skipped, since delivering
    /// them again cannot make them readable and would hold up every later change of their shard.
    pub unreadable: usize,
    /// The first record not applied: the feed delivers it and everything after it again.
    pub retry_from: Option<String>,
}

impl RankSummary {
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::count("ChangeRecords", self.records),
            Metric::count("BoardOffers", self.offers),
            Metric::count("BoardRevocations", self.revocations),
            Metric::count("BoardWrites", self.board_writes),
            Metric::count("UnreadableChanges", self.unreadable),
            Metric::count(
                "FailedChangeBatches",
                usize::from(self.retry_from.is_some()),
            ),
        ]
    }

    /// The partial batch response: the first record to deliver again, if any.
    pub fn into_response(self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence) = self.retry_from {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            response.batch_item_failures.push(failure);
        }
        response
    }
}

pub struct Ranker {
    index: Arc<dyn RankIndex>,
}

impl Ranker {
    pub fn new(index: Arc<dyn RankIndex>) -> Self {
        Self { index }
    }

    /// Applies a batch's changes in feed order; work not done by `deadline` is handed back.
    pub async fn rank(&self, records: &[FeedRecord], deadline: Instant) -> RankSummary {
        let mut summary = RankSummary {
            records: records.len(),
            ..RankSummary::default()
        };
        let mut changes: Vec<BoardChange> = Vec::new();
        for record in records {
            match &record.change {
                Ok(change) => {
                    for board_change in change.board_changes() {
                        match board_change {
                            BoardChange::Offer { .. } => summary.offers += 1,
                            BoardChange::Revoke { .. } => summary.revocations += 1,
                        }
                        changes.push(board_change);
                    }
                }
                Err(error) => {
                    summary.unreadable += 1;
                    tracing::error!(
                        sequence = %record.sequence,
                        %error,
                        "a changed submissions item cannot be read; its boards are not updated"
                    );
                }
            }
        }
        if !changes.is_empty() {
            match by_deadline(deadline, "rank index", self.index.apply(&changes)).await {
                Ok(changed) => summary.board_writes = changed.iter().filter(|c| **c).count(),
                Err(error) => {
                    // Applying again is harmless, so the whole batch comes back.
                    summary.retry_from = records.first().map(|r| r.sequence.clone());
                    tracing::warn!(%error, changes = changes.len(), "the rank index did not take the batch; it will be delivered again");
                }
            }
        }
        tracing::info!(
            records = summary.records,
            offers = summary.offers,
            revocations = summary.revocations,
            board_writes = summary.board_writes,
            unreadable = summary.unreadable,
            retried = summary.retry_from.is_some(),
            "change batch ranked"
        );
        summary
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::board::{BoardRef, Entry};
    use shared::faults::{FaultPlan, Faulty};
    use shared::ids::{CorrelationId, SubmissionId, UserId};
    use shared::memory::MemoryRankIndex;
    use shared::record::{Outcome, SubmissionRecord};
    use shared::rejection::RejectionReason;
    use shared::submission::{HeroId, Score};
    use time::macros::datetime;

    use super::*;

    fn accepted(user: &str, score: u32) -> SubmissionRecord {
        SubmissionRecord {
            submission_id: SubmissionId::new_unique(),
            user_id: UserId::parse(user).unwrap(),
            hero_id: HeroId::parse("storm").unwrap(),
            score: Score::new(score).unwrap(),
            achieved_at: None,
            client_ref: None,
            received_at: datetime!(2026-12-02 12:00 UTC),
            correlation_id: CorrelationId::generate(),
            outcome: Outcome::Accepted,
            decided_at: datetime!(2026-12-02 12:00:01 UTC),
            notified_at: None,
        }
    }

    fn inserted(sequence: &str, record: &SubmissionRecord) -> FeedRecord {
        FeedRecord {
            sequence: sequence.to_owned(),
            change: Ok(StoredChange {
                old: None,
                new: Some(record.clone()),
            }),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    async fn board(index: &MemoryRankIndex, record: &SubmissionRecord) -> Vec<Entry> {
        let boards = BoardRef::containing(&record.hero_id, record.received_at);
        index
            .page(&boards[0], None, 100)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|r| r.entry)
            .collect()
    }

    #[tokio::test]
    async fn accepted_items_reach_their_boards_and_a_redelivery_writes_nothing() {
        let index = Arc::new(MemoryRankIndex::new());
        let ranker = Ranker::new(index.clone());
        let alice = accepted("alice", 90);
        let alice_lower = accepted("alice", 10);
        let batch = [inserted("1", &alice), inserted("2", &alice_lower)];
        let summary = ranker.rank(&batch, far()).await;
        assert_eq!(summary.offers, 6);
        assert_eq!(
            summary.board_writes, 3,
            "only the best writes, on each of three boards"
        );
        assert_eq!(summary.into_response().batch_item_failures.len(), 0);
        assert_eq!(
            board(&index, &alice).await,
            [Entry::from_record(&alice).unwrap()]
        );
        let again = ranker.rank(&batch, far()).await;
        assert_eq!(again.board_writes, 0);
    }

    #[tokio::test]
    async fn a_revocation_in_the_feed_takes_the_player_off() {
        let index = Arc::new(MemoryRankIndex::new());
        let ranker = Ranker::new(index.clone());
        let mallory = accepted("mallory", 500);
        let mut revoked = mallory.clone();
        revoked.outcome = Outcome::Rejected(RejectionReason::SuspendedUser);
        revoked.decided_at = datetime!(2026-12-02 13:00 UTC);
        let revocation = FeedRecord {
            sequence: "2".into(),
            change: Ok(StoredChange {
                old: Some(mallory.clone()),
                new: Some(revoked),
            }),
        };
        let summary = ranker
            .rank(&[inserted("1", &mallory), revocation], far())
            .await;
        assert_eq!((summary.offers, summary.revocations), (3, 3));
        assert_eq!(summary.board_writes, 6);
        assert!(board(&index, &mallory).await.is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_record_is_skipped_and_counted_and_the_rest_applied() {
        let index = Arc::new(MemoryRankIndex::new());
        let ranker = Ranker::new(index.clone());
        let bob = accepted("bob", 5);
        let broken = FeedRecord {
            sequence: "1".into(),
            change: Err("attribute `status` is missing".into()),
        };
        let summary = ranker.rank(&[broken, inserted("2", &bob)], far()).await;
        assert_eq!(summary.unreadable, 1);
        assert_eq!(summary.retry_from, None);
        assert_eq!(board(&index, &bob).await.len(), 1);
    }

    #[tokio::test]
    async fn a_failing_index_hands_the_batch_back_from_its_first_record() {
        let plan = FaultPlan::new();
        plan.fail_next_calls(1, shared::faults::throttled("rank index"));
        let memory = Arc::new(MemoryRankIndex::new());
        let index = Arc::new(Faulty::new(memory.clone(), plan));
        let ranker = Ranker::new(index);
        let carol = accepted("carol", 7);
        let batch = [inserted("41", &carol), inserted("42", &accepted("dave", 8))];
        let summary = ranker.rank(&batch, far()).await;
        assert_eq!(summary.retry_from.as_deref(), Some("41"));
        let response = summary.into_response();
        assert_eq!(
            response.batch_item_failures[0].item_identifier.as_deref(),
            Some("41")
        );
        // Delivered again, it goes through.
        let summary = ranker.rank(&batch, far()).await;
        assert_eq!(summary.retry_from, None);
        assert_eq!(board(&memory, &carol).await.len(), 2);
    }
}
