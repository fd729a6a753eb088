//! The notifier: publishes each rejection to subscribers (SNS PublishBatch, 10 at a time, with
//! `userId` and `reason` message attributes) and reports back to SQS only the records that failed.

use std::collections::HashSet;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::future::join_all;
use shared::ids::SubmissionId;
use shared::lambda::batch_response;
use shared::limits::NOTIFY_PUBLISH_BATCH;
use shared::message::{Rejection, decode};
use shared::metrics::Metric;
use shared::ports::Notifier;

/// What became of one batch; `failed_message_ids` go back to SQS for retry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NotifySummary {
    pub records: usize,
    pub published: usize,
    pub malformed: usize,
    pub failed_message_ids: Vec<String>,
}

impl NotifySummary {
    /// The batch's figures as metrics (see `shared::metrics`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::count("Records", self.records),
            Metric::count("Published", self.published),
            Metric::count("Malformed", self.malformed),
            Metric::count("FailedRecords", self.failed_message_ids.len()),
        ]
    }

    pub fn into_response(self) -> SqsBatchResponse {
        batch_response(self.failed_message_ids)
    }
}

/// Built once per cold start.
pub struct RejectionNotifier {
    notifier: Arc<dyn Notifier>,
}

impl RejectionNotifier {
    pub fn new(notifier: Arc<dyn Notifier>) -> Self {
        Self { notifier }
    }

    pub async fn handle(&self, records: &[SqsMessage]) -> NotifySummary {
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

        // A rejection delivered twice in one batch is published once.
        let mut seen = HashSet::new();
        let unique: Vec<Rejection> = parsed
            .iter()
            .filter(|(_, r)| seen.insert(r.submission_id))
            .map(|(_, r)| r.clone())
            .collect();
        let unpublished = self.publish_all(&unique).await;

        for (message_id, rejection) in &parsed {
            let _span = tracing::info_span!(
                "rejection",
                correlation_id = %rejection.correlation_id,
                submission_id = %rejection.submission_id,
                user_id = %rejection.user_id,
            )
            .entered();
            if unpublished.contains(&rejection.submission_id) {
                summary.failed_message_ids.push((*message_id).to_owned());
            } else {
                summary.published += 1;
                tracing::info!(reason = %rejection.reason, "rejection notified");
            }
        }
        tracing::info!(
            records = summary.records,
            published = summary.published,
            malformed = summary.malformed,
            failed = summary.failed_message_ids.len(),
            "batch notified"
        );
        summary
    }

    async fn publish_all(&self, rejections: &[Rejection]) -> HashSet<SubmissionId> {
        let calls = rejections.chunks(NOTIFY_PUBLISH_BATCH).map(|chunk| async move {
            match self.notifier.publish(chunk).await {
                Ok(report) => report.failed,
                Err(error) => {
                    tracing::warn!(%error, count = chunk.len(), "publish failed; the chunk will be retried");
                    chunk.iter().map(|r| r.submission_id).collect()
                }
            }
        });
        join_all(calls).await.into_iter().flatten().collect()
    }
}
