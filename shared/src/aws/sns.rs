//! SNS adapter: the notifier's [`Notifier`], publishing rejections to the rejections topic with
//! PublishBatch. Subscribers filter on the `userId` and `reason` message attributes.

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use futures::future::join_all;
use tokio::time::Instant;

use super::{
    EntryFailure, EntryRound, RETRY_BUDGET_WITHOUT_DEADLINE, build_error, retry_until_finished,
    sdk_error,
};
use crate::ids::SubmissionId;
use crate::limits::NOTIFY_PUBLISH_BATCH;
use crate::message::{Rejection, encode};
use crate::ports::{BatchReport, Notifier, PortError};
use crate::retry::Backoff;

const SERVICE: &str = "sns";

/// Message attribute naming the rejected user; subscribers' filter policies match on it.
pub const USER_ID_ATTRIBUTE: &str = "userId";
/// Message attribute holding the rejection reason code (`unknown_user`, ...).
pub const REASON_ATTRIBUTE: &str = "reason";

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
    pub backoff: Backoff,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
            backoff: Backoff::default(),
        }
    }

    /// Publishes one chunk, retrying failed entries; returns the ids still unpublished.
    async fn publish_chunk(
        &self,
        chunk: &[Rejection],
        deadline: Instant,
    ) -> (Vec<SubmissionId>, Option<PortError>) {
        let outcome = retry_until_finished(
            &self.backoff,
            deadline,
            EntryRound::new(chunk.len()),
            |round| self.publish_entries(chunk, round),
        )
        .await;
        let undelivered_indexes = outcome.work.undelivered();
        let undelivered = chunk
            .iter()
            .enumerate()
            .filter(|(index, _)| undelivered_indexes.contains(index))
            .map(|(_, rejection)| rejection.submission_id)
            .collect();
        (
            undelivered,
            outcome.error.or_else(|| outcome.work.failure(SERVICE)),
        )
    }

    /// One PublishBatch call with the chunk's pending entries; entry ids are chunk indexes.
    async fn publish_entries(
        &self,
        chunk: &[Rejection],
        round: EntryRound,
    ) -> Result<EntryRound, PortError> {
        let entries = chunk
            .iter()
            .enumerate()
            .filter(|(index, _)| round.pending.contains(index))
            .map(|(index, rejection)| batch_entry(index, rejection))
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        let failures: Vec<EntryFailure> = output
            .failed()
            .iter()
            .map(|failed| EntryFailure {
                id: failed.id().to_owned(),
                sender_fault: failed.sender_fault(),
                code: failed.code().to_owned(),
                message: failed.message().map(str::to_owned),
            })
            .collect();
        let successful_ids = output.successful().iter().filter_map(|s| s.id());
        Ok(round.after_attempt(successful_ids, &failures))
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| build_error(SERVICE, e))
}

fn batch_entry(index: usize, rejection: &Rejection) -> Result<PublishBatchRequestEntry, PortError> {
    PublishBatchRequestEntry::builder()
        .id(index.to_string())
        .message(encode(rejection))
        .message_attributes(
            USER_ID_ATTRIBUTE,
            string_attribute(rejection.user_id.as_str())?,
        )
        .message_attributes(REASON_ATTRIBUTE, string_attribute(rejection.reason.code())?)
        .build()
        .map_err(|e| build_error(SERVICE, e))
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        let deadline = Instant::now() + RETRY_BUDGET_WITHOUT_DEADLINE;
        let chunks = rejections
            .chunks(NOTIFY_PUBLISH_BATCH)
            .map(|chunk| self.publish_chunk(chunk, deadline));
        let mut failed = Vec::new();
        let mut first_error = None;
        for (undelivered, error) in join_all(chunks).await {
            failed.extend(undelivered);
            first_error = first_error.or(error);
        }
        if !failed.is_empty() {
            tracing::warn!(
                topic_arn = %self.topic_arn,
                unpublished = failed.len(),
                of = rejections.len(),
                error = ?first_error,
                "notifications were not published after retries"
            );
        }
        match first_error {
            // Nothing went through: the caller learns why, not just which.
            Some(error) if !rejections.is_empty() && failed.len() == rejections.len() => Err(error),
            _ => Ok(BatchReport { failed }),
        }
    }
}
