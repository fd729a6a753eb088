//! The notifier: reads the outbox and publishes each rejection not yet notified (SNS
//! PublishBatch, 10 at a time, with `userId` and `reason` message attributes), marks what it
//! published, and reports back to SQS only the records that failed.
//!
//! Effectively once: a rejection whose record is already marked notified is skipped, so a
//! redelivery or a second hand-over publishes nothing. What remains possible is a duplicate when
//! the notifier stops between a publish and its mark (a crash or a timeout in that window), or
//! when two deliveries of one rejection run at the same moment; subscribers de-duplicate on
//! `submissionId` and `reason`, and every copy of a notification is identical.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::future::join_all;
use shared::ids::SubmissionId;
use shared::lambda::{batch_response, by_deadline};
use shared::limits::NOTIFY_PUBLISH_BATCH;
use shared::message::{Rejection, decode};
use shared::metrics::Metric;
use shared::ports::{Notifier, SubmissionStore};
use shared::record::SubmissionKey;
use shared::rejection::RejectionReason;
use shared::retry::Backoff;
use time::OffsetDateTime;
use tokio::time::Instant;

/// What became of one batch; `failed_message_ids` go back to SQS for retry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NotifySummary {
    pub records: usize,
    pub published: usize,
    /// Records whose rejection was already notified: nothing published.
    pub already_notified: usize,
    /// Published, but the mark did not go through: a later hand-over may publish it again.
    pub unmarked: usize,
    pub malformed: usize,
    pub failed_message_ids: Vec<String>,
}

impl NotifySummary {
    /// The batch's figures as metrics (see `shared::metrics`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::count("Records", self.records),
            Metric::count("Published", self.published),
            Metric::count("AlreadyNotified", self.already_notified),
            Metric::count("UnmarkedNotifications", self.unmarked),
            Metric::count("Malformed", self.malformed),
            Metric::count("FailedRecords", self.failed_message_ids.len()),
        ]
    }

    pub fn into_response(self) -> SqsBatchResponse {
        batch_response(self.failed_message_ids)
    }
}

/// One notification: a stored rejection (marked in the outbox), or an idempotency conflict
/// (never stored, so it has no mark; each conflicting request is notified as it is processed).
fn is_outboxed(rejection: &Rejection) -> bool {
    rejection.reason != RejectionReason::IdempotencyConflict
}

/// Built once per cold start.
pub struct RejectionNotifier {
    notifier: Arc<dyn Notifier>,
    outbox: Arc<dyn SubmissionStore>,
    retry: Backoff,
}

impl RejectionNotifier {
    pub fn new(notifier: Arc<dyn Notifier>, outbox: Arc<dyn SubmissionStore>) -> Self {
        Self {
            notifier,
            outbox,
            retry: Backoff::default(),
        }
    }

    /// Handles one SQS batch; work still unanswered at `deadline` fails its records.
    pub async fn handle(&self, records: &[SqsMessage], deadline: Instant) -> NotifySummary {
        let mut summary = NotifySummary {
            records: records.len(),
            ..NotifySummary::default()
        };
        let mut parsed: Vec<(&str, Rejection)> = Vec::with_capacity(records.len());
        for record in records {
            let message_id = record.message_id.as_deref().unwrap_or_default();
            match decode::<Rejection>(record.body.as_deref()) {
                Ok(rejection) => parsed.push((message_id, rejection)),
                Err(error) => {
                    summary.malformed += 1;
                    tracing::error!(
                        message_id,
                        %error,
                        "malformed rejection message; it will be retried and then moved to the dead-letter queue"
                    );
                    summary.failed_message_ids.push(message_id.to_owned());
                }
            }
        }

        // A notification delivered twice in one batch is published once.
        let mut seen = HashSet::new();
        let unique: Vec<&Rejection> = parsed
            .iter()
            .map(|(_, r)| r)
            .filter(|r| seen.insert((r.submission_id, r.reason)))
            .collect();

        // The outbox: which of these rejections are already notified.
        let outboxed: Vec<SubmissionKey> = unique
            .iter()
            .filter(|r| is_outboxed(r))
            .map(|r| r.key())
            .collect();
        let (notified, unread) = if outboxed.is_empty() {
            (HashSet::new(), false)
        } else {
            match by_deadline(deadline, "store", self.outbox.get_many(&outboxed, deadline)).await {
                Ok(records) => (
                    records
                        .into_iter()
                        .filter(|(_, record)| record.notified_at.is_some())
                        .map(|(id, _)| id)
                        .collect::<HashSet<_>>(),
                    false,
                ),
                Err(error) => {
                    tracing::warn!(%error, records = outboxed.len(), "the outbox could not be read; those records will be retried");
                    (HashSet::new(), true)
                }
            }
        };
        let to_publish: Vec<Rejection> = unique
            .iter()
            .filter(|r| !is_outboxed(r) || (!unread && !notified.contains(&r.submission_id)))
            .map(|r| (*r).clone())
            .collect();
        let unpublished = self.publish_all(&to_publish, deadline).await;
        let published_outboxed: Vec<SubmissionKey> = to_publish
            .iter()
            .filter(|r| is_outboxed(r) && !unpublished.contains(&(r.submission_id, r.reason)))
            .map(Rejection::key)
            .collect();
        let unmarked = self.mark_all(published_outboxed, deadline).await;
        summary.unmarked = unmarked.len();

        for (message_id, rejection) in &parsed {
            let _span = tracing::info_span!(
                "rejection",
                correlation_id = %rejection.correlation_id,
                submission_id = %rejection.submission_id,
                user_id = %rejection.user_id,
            )
            .entered();
            let key = (rejection.submission_id, rejection.reason);
            if is_outboxed(rejection) && unread {
                summary.failed_message_ids.push((*message_id).to_owned());
            } else if is_outboxed(rejection) && notified.contains(&rejection.submission_id) {
                summary.already_notified += 1;
                tracing::info!(reason = %rejection.reason, "rejection already notified; not published again");
            } else if unpublished.contains(&key) {
                summary.failed_message_ids.push((*message_id).to_owned());
            } else {
                summary.published += 1;
                if unmarked.contains(&rejection.submission_id) {
                    tracing::warn!(reason = %rejection.reason, "rejection notified, but its mark did not go through");
                } else {
                    tracing::info!(reason = %rejection.reason, "rejection notified");
                }
            }
        }
        tracing::info!(
            records = summary.records,
            published = summary.published,
            already_notified = summary.already_notified,
            unmarked = summary.unmarked,
            malformed = summary.malformed,
            failed = summary.failed_message_ids.len(),
            "batch notified"
        );
        summary
    }

    /// Publishes in chunks of 10, all at once; returns what did not go out.
    async fn publish_all(
        &self,
        rejections: &[Rejection],
        deadline: Instant,
    ) -> HashSet<(SubmissionId, RejectionReason)> {
        let calls = rejections.chunks(NOTIFY_PUBLISH_BATCH).map(|chunk| async move {
            let failed: Vec<SubmissionId> =
                match by_deadline(deadline, "sns", self.notifier.publish(chunk)).await {
                    Ok(report) => report.failed,
                    Err(error) => {
                        tracing::warn!(%error, count = chunk.len(), "publish failed; the chunk will be retried");
                        chunk.iter().map(|r| r.submission_id).collect()
                    }
                };
            let failed: HashSet<SubmissionId> = failed.into_iter().collect();
            chunk
                .iter()
                .filter(|r| failed.contains(&r.submission_id))
                .map(|r| (r.submission_id, r.reason))
                .collect::<Vec<_>>()
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// Marks published rejections notified, trying failed marks again while time is left;
    /// returns the ids still unmarked. Every moment between a publish and its mark is a moment
    /// in which a crash publishes the batch again, so the first retry goes at once and only
    /// later ones back off. An unmarked rejection is not failed back to SQS: it was published,
    /// and publishing it again is what the mark is there to prevent.
    async fn mark_all(
        &self,
        mut pending: Vec<SubmissionKey>,
        deadline: Instant,
    ) -> HashSet<SubmissionId> {
        let at = OffsetDateTime::now_utc();
        let mut round = 0;
        loop {
            if pending.is_empty() {
                return HashSet::new();
            }
            let marking = self.outbox.mark_notified(&pending, at, deadline);
            let failed: HashSet<SubmissionId> = match by_deadline(deadline, "store", marking).await
            {
                Ok(report) => report.failed.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(%error, count = pending.len(), "marking notifications failed");
                    pending.iter().map(|key| key.submission_id).collect()
                }
            };
            round += 1;
            let again =
                !failed.is_empty() && (round == 1 || self.retry.pause(round - 1, deadline).await);
            if !again {
                return failed;
            }
            pending.retain(|key| failed.contains(&key.submission_id));
        }
    }
}
