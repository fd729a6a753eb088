//! SQS adapter: the submissions queue (ingest's [`SubmissionQueue`], one SendMessage per request)
//! and the rejections queue (the processor's [`RejectionSink`], SendMessageBatch).
//!
//! Every message carries the sending invocation's X-Ray trace header (`_X_AMZN_TRACE_ID`, which
//! the Lambda runtime sets per invocation) as SQS's `AWSTraceHeader` system attribute, so the
//! Lambda functions the queue triggers continue the same trace: ingest, processor and notifier
//! show up as one trace in X-Ray.

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use futures::future::join_all;
use tokio::time::Instant;

use super::{
    EntryFailure, EntryRound, RETRY_BUDGET_WITHOUT_DEADLINE, Unfinished, build_error,
    retry_until_finished, sdk_error, with_context,
};
use crate::ids::SubmissionId;
use crate::limits::QUEUE_SEND_BATCH;
use crate::message::{QueuedRequest, Rejection, encode};
use crate::ports::{BatchReport, PortError, RejectionSink, SubmissionQueue};
use crate::retry::Backoff;

const SERVICE: &str = "sqs";

/// The message attribute that repeats the message's correlation id, so consumers and operators
/// can trace a message without parsing its body.
pub const CORRELATION_ID_ATTRIBUTE: &str = "correlationId";

/// The environment variable the Lambda runtime sets to the invocation's X-Ray trace header.
pub const TRACE_HEADER_VARIABLE: &str = "_X_AMZN_TRACE_ID";
/// SQS refuses longer system attribute values; a real trace header is about 100 characters.
const MAX_TRACE_HEADER_CHARS: usize = 1024;

/// The current invocation's trace header, when it is one SQS can carry.
fn current_trace_header() -> Option<String> {
    trace_header_from(std::env::var(TRACE_HEADER_VARIABLE).ok())
}

fn trace_header_from(value: Option<String>) -> Option<String> {
    value.filter(|v| v.starts_with("Root=") && v.len() <= MAX_TRACE_HEADER_CHARS && v.is_ascii())
}

fn trace_attribute() -> Result<Option<MessageSystemAttributeValue>, PortError> {
    current_trace_header()
        .map(|header| {
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|e| build_error(SERVICE, e))
        })
        .transpose()
}

/// One SQS queue. Sends a request as one message; sends rejections in SendMessageBatch chunks of
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
        let trace = trace_attribute()?;
        let entries = chunk
            .iter()
            .enumerate()
            .filter(|(index, _)| round.pending.contains(index))
            .map(|(index, message)| batch_entry(index, message, trace.as_ref()))
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
    trace: Option<&MessageSystemAttributeValue>,
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
        .set_message_system_attributes(trace.map(|trace| {
            [(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                trace.clone(),
            )]
            .into()
        }))
        .build()
        .map_err(|e| build_error(SERVICE, e))
}

/// Whether the one message of a request is still to be sent.
#[derive(Clone, Copy, Debug)]
struct Unsent(bool);

impl Unfinished for Unsent {
    fn is_finished(&self) -> bool {
        !self.0
    }
}

impl SqsQueue {
    /// One SendMessage call.
    async fn send_one(&self, body: &str, correlation_id: &str) -> Result<Unsent, PortError> {
        let correlation_id = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(correlation_id)
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(CORRELATION_ID_ATTRIBUTE, correlation_id)
            .set_message_system_attributes(
                trace_attribute()?.map(|trace| {
                    [(MessageSystemAttributeNameForSends::AwsTraceHeader, trace)].into()
                }),
            )
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        Ok(Unsent(false))
    }
}

#[async_trait]
impl SubmissionQueue for SqsQueue {
    /// One SendMessage, so the request is in the queue as a whole or not at all.
    async fn enqueue(&self, request: &QueuedRequest, deadline: Instant) -> Result<(), PortError> {
        let body = encode(request);
        let correlation_id = request.correlation_id.as_str();
        let outcome = retry_until_finished(&self.backoff, deadline, Unsent(true), |_| {
            self.send_one(&body, correlation_id)
        })
        .await;
        if outcome.work.is_finished() {
            return Ok(());
        }
        let error = outcome.error.unwrap_or(PortError::Timeout {
            service: SERVICE,
            detail: "no time left to send".to_owned(),
        });
        tracing::warn!(queue_url = %self.queue_url, %error, submissions = request.submissions.len(), "the request was not enqueued after retries");
        Err(with_context(
            error,
            &format!(
                "the request's {} submissions were not enqueued",
                request.submissions.len()
            ),
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

/// What a redrive moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Redriven {
    pub moved: usize,
}

/// Moves up to `max` messages from `from_url` (a dead-letter queue) back to `to_url`, with their
/// bodies and message attributes, as an SQS redrive (StartMessageMoveTask) does; for endpoints
/// without that call (emulators), and for operators who want a bounded move. Each message is sent
/// before it is deleted, so a failure part-way leaves a message in both queues at worst, which
/// the pipeline's idempotent processing absorbs; it never loses one.
pub async fn move_messages(
    client: &aws_sdk_sqs::Client,
    from_url: &str,
    to_url: &str,
    max: usize,
) -> Result<Redriven, PortError> {
    let mut redriven = Redriven::default();
    while redriven.moved < max {
        let want = (max - redriven.moved).min(QUEUE_SEND_BATCH);
        let received = client
            .receive_message()
            .queue_url(from_url)
            .max_number_of_messages(want as i32)
            .message_attribute_names("All")
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(redriven);
        }
        for message in messages {
            client
                .send_message()
                .queue_url(to_url)
                .message_body(message.body().unwrap_or_default())
                .set_message_attributes(message.message_attributes().cloned())
                .send()
                .await
                .map_err(|e| sdk_error(SERVICE, e))?;
            if let Some(receipt_handle) = message.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(from_url)
                    .receipt_handle(receipt_handle)
                    .send()
                    .await
                    .map_err(|e| sdk_error(SERVICE, e))?;
            }
            redriven.moved += 1;
        }
    }
    Ok(redriven)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trace_header_sqs_can_carry_is_passed_on() {
        let header = "Root=1-6b0f5ad2-e1a482b02347e42caa13fbd9;Parent=e6e7863db213ea5f;Sampled=1";
        assert_eq!(
            trace_header_from(Some(header.to_owned())).as_deref(),
            Some(header)
        );
        assert_eq!(trace_header_from(None), None);
        assert_eq!(trace_header_from(Some(String::new())), None);
        assert_eq!(trace_header_from(Some("garbage".to_owned())), None);
        assert_eq!(
            trace_header_from(Some(format!("Root={}", "1".repeat(2000)))),
            None
        );
    }

    /// moto drops the system attributes of SendMessageBatch entries, so the emulated run cannot
    /// show the processor-to-notifier hop of a trace; this shows what the entry carries.
    #[test]
    fn a_batch_entry_carries_the_trace_header_as_aws_trace_header() {
        let message = OutgoingMessage {
            submission_id: SubmissionId::new_unique(),
            correlation_id: "c-1",
            body: "{}".to_owned(),
        };
        let trace = MessageSystemAttributeValue::builder()
            .data_type("String")
            .string_value("Root=1-6b0f5ad2-e1a482b02347e42caa13fbd9")
            .build()
            .unwrap();
        let entry = batch_entry(3, &message, Some(&trace)).unwrap();
        let carried = &entry.message_system_attributes().unwrap()
            [&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(carried.string_value(), trace.string_value());
        assert!(
            batch_entry(3, &message, None)
                .unwrap()
                .message_system_attributes()
                .is_none()
        );
    }
}
