//! Emulates the Lambda SQS event source mapping over a [`MemoryQueue`]: receive a batch, invoke
//! the handler with an `SqsEvent`, delete the records that succeeded, and leave the failed ones
//! to come back after the visibility timeout (and to the dead-letter list in the end).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::memory::{MemoryQueue, QueuedMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub type HandlerFuture = Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>>;
/// An SQS-triggered function: a batch in, a partial batch response out.
pub type SqsHandler = Arc<dyn Fn(SqsEvent) -> HandlerFuture + Send + Sync>;

/// How a consumer polls.
#[derive(Clone, Copy, Debug)]
pub struct PollSettings {
    pub batch_size: usize,
    pub wait: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_millis(200),
        }
    }
}

/// Builds the event a Lambda function would receive for these messages.
pub fn sqs_event(queue: &MemoryQueue, messages: &[QueuedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(format!("{}#{}", m.message_id, m.receive_count));
            record.body = Some(m.body.clone());
            record.attributes = HashMap::from([
                (
                    "ApproximateReceiveCount".to_owned(),
                    m.receive_count.to_string(),
                ),
                (
                    "SentTimestamp".to_owned(),
                    (m.sent_at.unix_timestamp_nanos() / 1_000_000).to_string(),
                ),
            ]);
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn =
                Some(format!("arn:aws:sqs:local:000000000000:{}", queue.name()));
            record.aws_region = Some("local".to_owned());
            record
        })
        .collect();
    event
}

/// Receives one batch and runs the handler on it. Returns how many records were received.
pub async fn poll_once(queue: &MemoryQueue, handler: &SqsHandler, settings: PollSettings) -> usize {
    let messages = queue.receive(settings.batch_size, settings.wait).await;
    if messages.is_empty() {
        return 0;
    }
    let event = sqs_event(queue, &messages);
    // Run the handler as its own task so that a panic fails the batch instead of the poller,
    // as a crashed Lambda invocation would.
    let invocation = tokio::spawn((handler)(event));
    match invocation.await {
        Ok(response) => {
            let failed: std::collections::HashSet<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for message in &messages {
                if !failed.contains(message.message_id.as_str()) {
                    queue.delete(&message.message_id);
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, queue = queue.name(), records = messages.len(), "handler crashed; the whole batch will be retried");
        }
    }
    messages.len()
}

/// Polls until `stop` turns true, then returns. A batch being handled is always finished.
pub fn spawn_consumer(
    queue: Arc<MemoryQueue>,
    handler: SqsHandler,
    settings: PollSettings,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            poll_once(&queue, &handler, settings).await;
        }
    })
}
