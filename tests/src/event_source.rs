//! Emulates the Lambda SQS event source mapping: receive a batch, invoke the handler with an
//! `SqsEvent`, delete the records that succeeded, and leave the failed ones to come back after
//! the visibility timeout (and, after the redrive limit, to the dead-letter queue).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{MessageSource, ReceivedMessage};

pub type HandlerFuture = Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>>;
/// An SQS-triggered function: a batch in, a partial batch response out.
pub type SqsHandler = Arc<dyn Fn(SqsEvent) -> HandlerFuture + Send + Sync>;

/// Pause after a failed receive before polling again.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How a consumer polls.
#[derive(Clone, Copy, Debug)]
pub struct PollSettings {
    pub batch_size: usize,
    pub wait: Duration,
    /// After the first message, how long to keep gathering up to `batch_size` (the mapping's
    /// MaximumBatchingWindowInSeconds); zero hands on what one receive returned.
    pub batching_window: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_secs(1),
            batching_window: Duration::ZERO,
        }
    }
}

/// Builds the event a Lambda function would receive for these messages.
pub fn sqs_event(source: &dyn MessageSource, messages: &[ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = HashMap::from([
                (
                    "ApproximateReceiveCount".to_owned(),
                    m.receive_count.to_string(),
                ),
                ("SentTimestamp".to_owned(), m.sent_at_ms.to_string()),
            ]);
            if let Some(trace) = &m.trace_header {
                record
                    .attributes
                    .insert("AWSTraceHeader".to_owned(), trace.clone());
            }
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(source.arn());
            record.aws_region = Some(source.region());
            record
        })
        .collect();
    event
}

/// Receives one batch and runs the handler on it. Returns how many records were received.
pub async fn poll_once(
    source: &dyn MessageSource,
    handler: &SqsHandler,
    settings: PollSettings,
) -> usize {
    let mut messages = match source.receive(settings.batch_size, settings.wait).await {
        Ok(messages) => messages,
        Err(error) => {
            tracing::warn!(%error, queue = source.name(), "receive failed; polling again shortly");
            tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
            return 0;
        }
    };
    if messages.is_empty() {
        return 0;
    }
    // The batching window: keep receiving until the batch is full or the window has passed.
    let window_ends = tokio::time::Instant::now() + settings.batching_window;
    while messages.len() < settings.batch_size {
        let left = window_ends.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match source
            .receive(settings.batch_size - messages.len(), left)
            .await
        {
            Ok(more) if more.is_empty() => {
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
            Ok(more) => messages.extend(more),
            Err(error) => {
                tracing::warn!(%error, queue = source.name(), "receive failed while batching; handing on what arrived");
                break;
            }
        }
    }
    let event = sqs_event(source, &messages);
    // Run the handler as its own task so that a panic fails the batch instead of the poller,
    // as a crashed Lambda invocation would.
    let response = match tokio::spawn((handler)(event)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, queue = source.name(), records = messages.len(), "handler crashed; the whole batch will be retried");
            return messages.len();
        }
    };
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<ReceivedMessage> = messages
        .iter()
        .filter(|m| !failed.contains(m.message_id.as_str()))
        .cloned()
        .collect();
    if let Err(error) = source.delete(&done).await {
        tracing::warn!(%error, queue = source.name(), "delete failed; those records will be processed again");
    }
    messages.len()
}

/// Polls until `stop` turns true, then returns. A batch being handled is always finished.
pub fn spawn_consumer(
    source: Arc<dyn MessageSource>,
    handler: SqsHandler,
    settings: PollSettings,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            poll_once(source.as_ref(), &handler, settings).await;
        }
    })
}
