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
    Notifier, PortError, QuotaCounter, RejectionSink, SubmissionQueue, SubmissionStore,
    UserDirectory,
};
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
}

/// Receives and deletes queue messages (ReceiveMessage / DeleteMessageBatch).
#[async_trait]
pub trait MessageSource: Send + Sync {
    fn name(&self) -> &str;
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
    /// How long a failed message stays invisible before it is delivered again.
    pub redelivery_delay: Duration,
    /// The submissions queue's redrive limit, when known: the processor marks what it cannot
    /// finish on a message's last receive `failed` (the deployed processor's MAX_RECEIVE_COUNT).
    pub max_receive_count: Option<u32>,
}
