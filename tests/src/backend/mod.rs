//! Where the local stack's ports lead: in-memory adapters (the default) or any AWS-compatible
//! endpoint (AWS itself, moto, LocalStack), plus what the stack needs around them: a way to
//! receive and delete queue messages as the Lambda event source mapping does, and a way to look
//! at the results (for tests and for the stack's own drain on shutdown).

pub mod aws;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shared::ids::UserId;
use shared::message::Rejection;
use shared::ports::{
    Notifier, PortError, QuotaCounter, RankIndex, RejectionSink, SubmissionQueue, SubmissionStore,
    UserDirectory,
};

use crate::change_feed::ChangeFeed;
use shared::users::User;

/// A message handed to a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this delivery included.
    pub receive_count: u32,
    pub sent_at_ms: i64,
    /// The X-Ray trace header the sender attached (SQS's AWSTraceHeader system attribute).
    pub trace_header: Option<String>,
}

/// Receives and deletes queue messages (ReceiveMessage / DeleteMessageBatch).
#[async_trait]
pub trait MessageSource: Send + Sync {
    fn name(&self) -> &str;
    /// The queue's ARN, as event records name their source.
    fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:000000000000:{}", self.region(), self.name())
    }
    /// The queue's region, as event records carry it.
    fn region(&self) -> String {
        "local".to_owned()
    }
    /// Up to `max` messages, waiting up to `wait` for the first one.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, PortError>;
    async fn delete(&self, messages: &[ReceivedMessage]) -> Result<(), PortError>;
}

/// Messages parked in the dead-letter queues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetters {
    pub submissions: Vec<String>,
    pub rejections: Vec<String>,
}

/// Looking at the pipeline from outside: what a test asserts on, what an operator would check.
#[async_trait]
pub trait Observe: Send + Sync {
    /// Neither queue holds a visible or in-flight message.
    async fn is_drained(&self) -> Result<bool, PortError>;
    /// The bodies parked in each dead-letter queue.
    async fn dead_letters(&self) -> Result<DeadLetters, PortError>;
    /// Every notification published so far.
    async fn published(&self) -> Result<Vec<Rejection>, PortError>;
    /// How many submissions are stored.
    async fn stored_count(&self) -> Result<usize, PortError>;
    /// Puts a raw body on the submissions queue, bypassing ingest (poison-message tests).
    async fn send_raw_submission(&self, body: &str) -> Result<(), PortError>;
    /// Adds or replaces a user in the directory.
    async fn put_user(&self, user: &User) -> Result<(), PortError>;
    /// Replaces a user's directory entry with one no version can read (as a hand-written item).
    async fn corrupt_user(&self, user_id: &UserId) -> Result<(), PortError>;
    /// The operator's redrive: every parked message goes back to its queue. Returns how many.
    async fn redrive(&self) -> Result<usize, PortError>;
}

/// The ports of one backend and the means to drive and observe it.
#[derive(Clone)]
pub struct Backend {
    pub label: &'static str,
    pub submissions_queue: Arc<dyn SubmissionQueue>,
    pub store: Arc<dyn SubmissionStore>,
    pub directory: Arc<dyn UserDirectory>,
    pub rejections_sink: Arc<dyn RejectionSink>,
    pub notifier: Arc<dyn Notifier>,
    /// The per-user quota counter; `None` when the backend has no quotas table.
    pub quota_counter: Option<Arc<dyn QuotaCounter>>,
    pub submissions_source: Arc<dyn MessageSource>,
    pub rejections_source: Arc<dyn MessageSource>,
    pub observe: Arc<dyn Observe>,
    /// The rank index the boards are kept in and read from.
    pub rank_index: Arc<dyn RankIndex>,
    /// The submissions table's changes, which feed the rank index (its stream).
    pub changes: Arc<dyn ChangeFeed>,
    /// How long a failed message stays invisible before it is delivered again.
    pub redelivery_delay: Duration,
    /// The submissions queue's redrive limit, when known: the processor marks what it cannot
    /// finish on a message's last receive `failed` (the deployed processor's MAX_RECEIVE_COUNT).
    pub max_receive_count: Option<u32>,
}

/// Prints every notification the observer sees as one JSON line on stdout, as they arrive,
/// until the task is aborted.
pub async fn print_published(observe: Arc<dyn Observe>) {
    let mut printed = 0;
    loop {
        match observe.published().await {
            Ok(all) => {
                for rejection in &all[printed.min(all.len())..] {
                    println!("{}", shared::message::encode(rejection));
                }
                printed = all.len();
            }
            Err(error) => tracing::warn!(%error, "cannot read notifications"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
