//! The AWS backend: the SDK adapters against whatever endpoint the standard AWS configuration
//! names (AWS itself, moto, LocalStack), with SQS receive/delete for the event-source emulation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use shared::aws::dynamodb::{DynamoQuotaCounter, DynamoSubmissionStore, DynamoUserDirectory};
use shared::aws::provision::{
    ProvisionError, QueueProvisioning, ensure_queue_with_dead_letters, ensure_stack,
    subscribe_queue_to_topic,
};
use shared::aws::sns::SnsNotifier;
use shared::aws::sqs::{SqsQueue, move_messages};
use shared::aws::{AwsClients, sdk_error};
use shared::config::{
    ConfigError, EnvSource, QUOTAS_TABLE, RANK_INDEX_URL, REJECTIONS_QUEUE_URL,
    REJECTIONS_TOPIC_ARN, SUBMISSIONS_QUEUE_URL, SUBMISSIONS_TABLE, USERS_TABLE,
};
use shared::ids::UserId;
use shared::limits::SDK_ATTEMPT_TIMEOUT;
use shared::message::{Rejection, decode};
use shared::ports::{PortError, QuotaCounter, RankIndex};
use shared::redis_index::RedisRankIndex;
use shared::redis_quota::RedisQuotaCounter;
use shared::users::User;

use super::{Backend, DeadLetters, MessageSource, Observe, ReceivedMessage};
use crate::change_feed::DynamoStreamFeed;
use crate::emulate::moto::Moto;

/// Optional: the dead-letter queues, read by the stack's observers.
pub const SUBMISSIONS_DLQ_URL: &str = "SUBMISSIONS_DLQ_URL";
pub const REJECTIONS_DLQ_URL: &str = "REJECTIONS_DLQ_URL";

/// SQS returns at most 10 messages per receive.
const SQS_MAX_RECEIVE: usize = 10;
/// SQS long polling waits at most 20 seconds.
const SQS_MAX_WAIT_SECONDS: u64 = 20;

/// Names of the pipeline's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsResources {
    pub submissions_table: String,
    pub users_table: String,
    /// Optional: without it the stack cannot enforce the per-user quota.
    pub quotas_table: Option<String>,
    pub submissions_queue_url: String,
    pub submissions_dlq_url: Option<String>,
    pub rejections_queue_url: String,
    pub rejections_dlq_url: Option<String>,
    pub rejections_topic_arn: String,
    /// A queue subscribed to the topic without a filter, where observers read notifications.
    pub notifications_tap_url: Option<String>,
}

impl AwsResources {
    /// The resources the Lambda functions' own variables name.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let required = |name: &'static str, expected: &'static str| {
            env.var(name).ok_or(ConfigError::Missing { name, expected })
        };
        Ok(Self {
            submissions_table: required(SUBMISSIONS_TABLE, "the submissions table name")?,
            users_table: required(USERS_TABLE, "the users table name")?,
            quotas_table: env.var(QUOTAS_TABLE),
            submissions_queue_url: required(SUBMISSIONS_QUEUE_URL, "the submissions queue URL")?,
            submissions_dlq_url: env.var(SUBMISSIONS_DLQ_URL),
            rejections_queue_url: required(REJECTIONS_QUEUE_URL, "the rejections queue URL")?,
            rejections_dlq_url: env.var(REJECTIONS_DLQ_URL),
            rejections_topic_arn: required(REJECTIONS_TOPIC_ARN, "the rejections SNS topic ARN")?,
            notifications_tap_url: None,
        })
    }

    /// Creates whatever is missing of the pipeline's tables, queues (with DLQs and redrive) and
    /// topic, named `{prefix}-...`, plus a notifications tap queue subscribed to the topic.
    pub async fn provision(
        clients: &AwsClients,
        prefix: &str,
        queues: QueueProvisioning,
    ) -> Result<Self, ProvisionError> {
        let stack = ensure_stack(clients, prefix, queues).await?;
        let tap = ensure_queue_with_dead_letters(
            &clients.sqs,
            &format!("{prefix}-notifications-tap"),
            queues,
        )
        .await?;
        subscribe_queue_to_topic(clients, &stack.rejections_topic_arn, &tap.queue_url, &[]).await?;
        Ok(Self {
            submissions_table: stack.submissions_table,
            users_table: stack.users_table,
            quotas_table: Some(stack.quotas_table),
            submissions_queue_url: stack.submissions_queue.queue_url,
            submissions_dlq_url: Some(stack.submissions_queue.dead_letter_queue_url),
            rejections_queue_url: stack.rejections_queue.queue_url,
            rejections_dlq_url: Some(stack.rejections_queue.dead_letter_queue_url),
            rejections_topic_arn: stack.rejections_topic_arn,
            notifications_tap_url: Some(tap.queue_url),
        })
    }

    /// The same names as the Lambda functions' environment variables.
    pub fn as_env(&self) -> serde_json::Value {
        serde_json::json!({
            SUBMISSIONS_TABLE: self.submissions_table,
            USERS_TABLE: self.users_table,
            QUOTAS_TABLE: self.quotas_table,
            SUBMISSIONS_QUEUE_URL: self.submissions_queue_url,
            SUBMISSIONS_DLQ_URL: self.submissions_dlq_url,
            REJECTIONS_QUEUE_URL: self.rejections_queue_url,
            REJECTIONS_DLQ_URL: self.rejections_dlq_url,
            REJECTIONS_TOPIC_ARN: self.rejections_topic_arn,
        })
    }
}

/// A long poll waits up to `wait` for its answer, beyond the clients' usual attempt timeout.
fn long_poll_timeouts(wait: Duration) -> aws_sdk_sqs::config::Builder {
    let limit = wait.min(Duration::from_secs(SQS_MAX_WAIT_SECONDS)) + SDK_ATTEMPT_TIMEOUT;
    aws_sdk_sqs::config::Builder::default().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(limit)
            .operation_timeout(limit + SDK_ATTEMPT_TIMEOUT)
            .build(),
    )
}

/// Receives from and deletes in one SQS queue.
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    name: String,
    /// The queue's ARN and region when known (event records name them).
    identity: Option<(String, String)>,
}

impl SqsSource {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let name = queue_url.rsplit('/').next().unwrap_or_default().to_owned();
        Self {
            client,
            queue_url,
            name,
            identity: None,
        }
    }

    /// The queue's ARN and region, for the event records.
    pub fn with_arn(mut self, arn: impl Into<String>, region: impl Into<String>) -> Self {
        self.identity = Some((arn.into(), region.into()));
        self
    }
}

#[async_trait]
impl MessageSource for SqsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn arn(&self) -> String {
        match &self.identity {
            Some((arn, _)) => arn.clone(),
            None => format!("arn:aws:sqs:local:000000000000:{}", self.name),
        }
    }

    fn region(&self) -> String {
        match &self.identity {
            Some((_, region)) => region.clone(),
            None => "local".to_owned(),
        }
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, PortError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_MAX_RECEIVE) as i32)
            .wait_time_seconds(wait.as_secs().min(SQS_MAX_WAIT_SECONDS) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .customize()
            .config_override(long_poll_timeouts(wait))
            .send()
            .await
            .map_err(|e| sdk_error("sqs", e))?;
        Ok(output
            .messages()
            .iter()
            .map(|m| {
                let attribute =
                    |name: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&name));
                ReceivedMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    sent_at_ms: attribute(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    trace_header: attribute(MessageSystemAttributeName::AwsTraceHeader).cloned(),
                }
            })
            .collect())
    }

    async fn delete(&self, messages: &[ReceivedMessage]) -> Result<(), PortError> {
        for chunk in messages.chunks(SQS_MAX_RECEIVE) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .map_err(|e| PortError::Refused {
                            service: "sqs",
                            detail: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error("sqs", e))?;
            if !output.failed().is_empty() {
                // The message comes back after its visibility timeout and is processed again,
                // which every handler tolerates (idempotent writes).
                tracing::warn!(queue = %self.name, failed = output.failed().len(), "some deletes failed");
            }
        }
        Ok(())
    }
}

/// Reads the pipeline's state through the AWS APIs.
///
/// Dead letters and notifications are read destructively (received, remembered here, deleted),
/// so point it only at disposable resources such as those `--provision` creates for tests.
pub struct AwsObserver {
    clients: AwsClients,
    resources: AwsResources,
    directory: DynamoUserDirectory,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    message_ids: HashSet<String>,
    notifications: Vec<Rejection>,
    dead_submissions: Vec<String>,
    dead_rejections: Vec<String>,
}

impl AwsObserver {
    async fn queue_depth(&self, queue_url: &str) -> Result<u64, PortError> {
        let output = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| sdk_error("sqs", e))?;
        Ok(output
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0))
    }

    /// Receives everything currently visible in a queue, deletes it, and returns the messages
    /// not seen before.
    async fn drain(&self, queue_url: &str) -> Result<Vec<ReceivedMessage>, PortError> {
        let source = SqsSource::new(self.clients.sqs.clone(), queue_url);
        let mut fresh = Vec::new();
        loop {
            let batch = source.receive(SQS_MAX_RECEIVE, Duration::ZERO).await?;
            if batch.is_empty() {
                return Ok(fresh);
            }
            source.delete(&batch).await?;
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            fresh.extend(
                batch
                    .into_iter()
                    .filter(|m| seen.message_ids.insert(m.message_id.clone())),
            );
        }
    }
}

/// How long after an empty reading of the queues [`AwsObserver::is_drained`] reads them again.
const DRAINED_CONFIRMATION_DELAY: Duration = Duration::from_millis(50);

#[async_trait]
impl Observe for AwsObserver {
    async fn is_drained(&self) -> Result<bool, PortError> {
        // A queue's depth is its visible, in-flight and delayed messages, which the emulator
        // counts one after the other, each at its own moment: a message whose visibility timeout
        // runs out between the two counts is in neither, and the queue reads empty while it
        // waits for its next receive (and, on its last, its move to the dead-letter queue). It
        // can only do so once before it is received again, so an empty reading is confirmed by a
        // second one a little later.
        for confirmation in [false, true] {
            if confirmation {
                tokio::time::sleep(DRAINED_CONFIRMATION_DELAY).await;
            }
            let submissions = self
                .queue_depth(&self.resources.submissions_queue_url)
                .await?;
            let rejections = self
                .queue_depth(&self.resources.rejections_queue_url)
                .await?;
            if submissions != 0 || rejections != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn dead_letters(&self) -> Result<DeadLetters, PortError> {
        for (url, is_submissions) in [
            (&self.resources.submissions_dlq_url, true),
            (&self.resources.rejections_dlq_url, false),
        ] {
            let Some(url) = url else { continue };
            let bodies: Vec<String> = self.drain(url).await?.into_iter().map(|m| m.body).collect();
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if is_submissions {
                seen.dead_submissions.extend(bodies);
            } else {
                seen.dead_rejections.extend(bodies);
            }
        }
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(DeadLetters {
            submissions: seen.dead_submissions.clone(),
            rejections: seen.dead_rejections.clone(),
        })
    }

    async fn published(&self) -> Result<Vec<Rejection>, PortError> {
        let Some(tap) = &self.resources.notifications_tap_url else {
            return Err(PortError::Refused {
                service: "sns",
                detail: "no notifications tap queue: start the stack with --provision".to_owned(),
            });
        };
        let fresh = self.drain(tap).await?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for message in fresh {
            match decode::<Rejection>(Some(&message.body)) {
                Ok(rejection) => seen.notifications.push(rejection),
                Err(error) => {
                    tracing::error!(%error, "the notifications tap received a malformed notification")
                }
            }
        }
        Ok(seen.notifications.clone())
    }

    async fn stored_count(&self) -> Result<usize, PortError> {
        let mut count = 0usize;
        let mut start_key = None;
        loop {
            let output = self
                .clients
                .dynamodb
                .scan()
                .table_name(&self.resources.submissions_table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", e))?;
            count += output.count() as usize;
            start_key = output.last_evaluated_key().cloned();
            if start_key.is_none() {
                return Ok(count);
            }
        }
    }

    async fn send_raw_submission(&self, body: &str) -> Result<(), PortError> {
        self.clients
            .sqs
            .send_message()
            .queue_url(&self.resources.submissions_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error("sqs", e))?;
        Ok(())
    }

    async fn put_user(&self, user: &User) -> Result<(), PortError> {
        self.directory.put_user(user).await
    }

    async fn corrupt_user(&self, user_id: &UserId) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        use shared::aws::dynamodb::attribute;
        self.clients
            .dynamodb
            .put_item()
            .table_name(&self.resources.users_table)
            .item(attribute::USER_ID, AttributeValue::S(user_id.to_string()))
            .item(attribute::STATUS, AttributeValue::S("banned".to_owned()))
            .send()
            .await
            .map_err(|e| sdk_error("dynamodb", e))?;
        Ok(())
    }

    /// Sends back what this observer already took out of the dead-letter queues (it reads them
    /// destructively), then moves whatever is still parked there.
    async fn redrive(&self) -> Result<usize, PortError> {
        let remembered = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            (
                std::mem::take(&mut seen.dead_submissions),
                std::mem::take(&mut seen.dead_rejections),
            )
        };
        let mut moved = 0;
        for (bodies, queue_url, dlq_url) in [
            (
                remembered.0,
                &self.resources.submissions_queue_url,
                &self.resources.submissions_dlq_url,
            ),
            (
                remembered.1,
                &self.resources.rejections_queue_url,
                &self.resources.rejections_dlq_url,
            ),
        ] {
            for body in bodies {
                self.clients
                    .sqs
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(|e| sdk_error("sqs", e))?;
                moved += 1;
            }
            if let Some(dlq_url) = dlq_url {
                moved += move_messages(&self.clients.sqs, dlq_url, queue_url, usize::MAX)
                    .await?
                    .moved;
            }
        }
        Ok(moved)
    }
}

/// A backend over the AWS adapters. `redelivery_delay` is the queues' visibility timeout. The
/// submissions table's stream is read through `streams_endpoint` (an emulator's: the reads are
/// unsigned); the boards live in `rank_index`.
pub fn aws_backend(
    clients: &AwsClients,
    resources: AwsResources,
    redelivery_delay: Duration,
    streams_endpoint: &str,
    rank_index: Arc<dyn RankIndex>,
) -> Backend {
    let directory = DynamoUserDirectory::new(clients.dynamodb.clone(), &resources.users_table);
    let observer = AwsObserver {
        clients: clients.clone(),
        directory: directory.clone(),
        seen: Mutex::new(Seen::default()),
        resources: resources.clone(),
    };
    Backend {
        label: "aws",
        submissions_queue: Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &resources.submissions_queue_url,
        )),
        store: Arc::new(DynamoSubmissionStore::new(
            clients.dynamodb.clone(),
            &resources.submissions_table,
        )),
        directory: Arc::new(directory),
        rejections_sink: Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &resources.rejections_queue_url,
        )),
        notifier: Arc::new(SnsNotifier::new(
            clients.sns.clone(),
            &resources.rejections_topic_arn,
        )),
        // The quotas table (QUOTA_COUNTER=table); callers that run as deployed by default put
        // `quota_counter_in_cache_from_env` here instead.
        quota_counter: resources.quotas_table.as_ref().map(|table| {
            Arc::new(DynamoQuotaCounter::new(clients.dynamodb.clone(), table))
                as Arc<dyn QuotaCounter>
        }),
        submissions_source: Arc::new(SqsSource::new(
            clients.sqs.clone(),
            &resources.submissions_queue_url,
        )),
        rejections_source: Arc::new(SqsSource::new(
            clients.sqs.clone(),
            &resources.rejections_queue_url,
        )),
        observe: Arc::new(observer),
        rank_index,
        changes: Arc::new(DynamoStreamFeed::new(
            Moto::new(streams_endpoint),
            clients.dynamodb.clone(),
            &resources.submissions_table,
        )),
        redelivery_delay,
        max_receive_count: None,
    }
}

/// The rank index `RANK_INDEX_URL` names (a Redis cluster), its keys under `namespace` so that
/// stacks sharing the cluster keep apart, for the stacks that run on the AWS adapters; its error
/// says what to set.
pub fn rank_index_from_env(namespace: &str) -> Result<Arc<dyn RankIndex>, String> {
    let url = std::env::var(RANK_INDEX_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or_else(|| {
            format!(
                "{RANK_INDEX_URL} is not set: the boards need a Redis cluster; run through \
                 `scripts/redis.sh run -- ...` (make test does), or point it at one"
            )
        })?;
    RedisRankIndex::with_namespace(&url, namespace)
        .map(|index| Arc::new(index) as Arc<dyn RankIndex>)
        .map_err(|e| e.to_string())
}

/// The quota counter the deployed processor uses by default (`QUOTA_COUNTER=cache`): the Redis
/// cluster `RANK_INDEX_URL` names, its keys under `namespace`; its error says what to set.
pub fn quota_counter_in_cache_from_env(namespace: &str) -> Result<Arc<dyn QuotaCounter>, String> {
    let url = std::env::var(RANK_INDEX_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or_else(|| {
            format!(
                "{RANK_INDEX_URL} is not set: the quota counted in the cache needs a Redis cluster; \
                 run through `scripts/redis.sh run -- ...` (make test does), or point it at one"
            )
        })?;
    RedisQuotaCounter::with_namespace(&url, namespace)
        .map(|counter| Arc::new(counter) as Arc<dyn QuotaCounter>)
        .map_err(|e| e.to_string())
}
