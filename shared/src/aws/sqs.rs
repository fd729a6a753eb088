//! SQS adapter: the submissions queue (ingest's [`SubmissionQueue`]) and the rejections queue
//! (the processor's [`RejectionSink`]), both sent with SendMessageBatch.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use futures::future::join_all;
use tokio::time::Instant;

use super::{
    EntryFailure, EntryRound, RETRY_BUDGET_WITHOUT_DEADLINE, build_error, retry_until_finished,
    sdk_error, with_context,
};
use crate::ids::SubmissionId;
use crate::limits::QUEUE_SEND_BATCH;
use crate::message::{QueuedSubmission, Rejection, encode};
use crate::ports::{BatchReport, PortError, RejectionSink, SubmissionQueue};
use crate::retry::Backoff;

const SERVICE: &str = "sqs";

/// The message attribute that repeats the message's correlation id, so consumers and operators
/// can trace a message without parsing its body.
pub const CORRELATION_ID_ATTRIBUTE: &str = "correlationId";

/// One SQS queue. Sends each request's messages in SendMessageBatch chunks of
/// [`QUEUE_SEND_BATCH`], concurrently, and retries failed entries that were not the sender's fault.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub backoff: Backoff,
}

/// A message ready to send.
struct OutgoingMessage<'a> {
    submission_id: SubmissionId,
    correlation_id: &'a str,
    body: String,
}

/// Messages that did not go through, and the error that says why.
struct SendOutcome {
    undelivered: Vec<SubmissionId>,
    error: Option<PortError>,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            backoff: Backoff::default(),
        }
    }

    async fn send_all(&self, messages: &[OutgoingMessage<'_>]) -> SendOutcome {
        let deadline = Instant::now() + RETRY_BUDGET_WITHOUT_DEADLINE;
        let chunks = messages
            .chunks(QUEUE_SEND_BATCH)
            .map(|chunk| self.send_chunk(chunk, deadline));
        let mut outcome = SendOutcome {
            undelivered: Vec::new(),
            error: None,
        };
        for chunk_outcome in join_all(chunks).await {
            outcome.undelivered.extend(chunk_outcome.undelivered);
            outcome.error = outcome.error.or(chunk_outcome.error);
        }
        if !outcome.undelivered.is_empty() {
            tracing::warn!(
                queue_url = %self.queue_url,
                undelivered = outcome.undelivered.len(),
                of = messages.len(),
                error = ?outcome.error,
                "messages were not sent after retries"
            );
        }
        outcome
    }

    async fn send_chunk(&self, chunk: &[OutgoingMessage<'_>], deadline: Instant) -> SendOutcome {
        let outcome = retry_until_finished(
            &self.backoff,
            deadline,
            EntryRound::new(chunk.len()),
            |round| self.send_entries(chunk, round),
        )
        .await;
        let undelivered_indexes = outcome.work.undelivered();
        SendOutcome {
            undelivered: chunk
                .iter()
                .enumerate()
                .filter(|(index, _)| undelivered_indexes.contains(index))
                .map(|(_, message)| message.submission_id)
                .collect(),
            error: outcome.error.or_else(|| outcome.work.failure(SERVICE)),
        }
    }

    /// One SendMessageBatch call with the chunk's pending entries; entry ids are chunk indexes.
    async fn send_entries(
        &self,
        chunk: &[OutgoingMessage<'_>],
        round: EntryRound,
    ) -> Result<EntryRound, PortError> {
        let entries = chunk
            .iter()
            .enumerate()
            .filter(|(index, _)| round.pending.contains(index))
            .map(|(index, message)| batch_entry(index, message))
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
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
        Ok(round.after_attempt(output.successful().iter().map(|s| s.id()), &failures))
    }
}

fn batch_entry(
    index: usize,
    message: &OutgoingMessage<'_>,
) -> Result<SendMessageBatchRequestEntry, PortError> {
    let correlation_id = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(message.correlation_id)
        .build()
        .map_err(|e| build_error(SERVICE, e))?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body)
        .message_attributes(CORRELATION_ID_ATTRIBUTE, correlation_id)
        .build()
        .map_err(|e| build_error(SERVICE, e))
}

#[async_trait]
impl SubmissionQueue for SqsQueue {
    async fn enqueue(&self, messages: &[QueuedSubmission]) -> Result<(), PortError> {
        let outgoing: Vec<OutgoingMessage<'_>> = messages
            .iter()
            .map(|message| OutgoingMessage {
                submission_id: message.submission_id,
                correlation_id: message.correlation_id.as_str(),
                body: encode(message),
            })
            .collect();
        let outcome = self.send_all(&outgoing).await;
        if outcome.undelivered.is_empty() {
            return Ok(());
        }
        let context = format!(
            "{} of {} messages were not enqueued",
            outcome.undelivered.len(),
            messages.len()
        );
        Err(with_context(
            outcome.error.unwrap_or(PortError::Unavailable {
                service: SERVICE,
                detail: "no reason given".to_owned(),
            }),
            &context,
        ))
    }
}

#[async_trait]
impl RejectionSink for SqsQueue {
    async fn send(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        let outgoing: Vec<OutgoingMessage<'_>> = rejections
            .iter()
            .map(|rejection| OutgoingMessage {
                submission_id: rejection.submission_id,
                correlation_id: rejection.correlation_id.as_str(),
                body: encode(rejection),
            })
            .collect();
        let outcome = self.send_all(&outgoing).await;
        match outcome.error {
            // Nothing went through: the caller learns why, not just which.
            Some(error)
                if !rejections.is_empty() && outcome.undelivered.len() == rejections.len() =>
            {
                Err(error)
            }
            _ => Ok(BatchReport {
                failed: outcome.undelivered,
            }),
        }
    }
}
