//! Idempotent creation of the pipeline's AWS resources, for tests and the local stack's
//! `--provision` flag against an emulator. Production resources come from the CDK app; these
//! functions mirror its table keys, indexes and queue settings, and tests/tests/resources_agree.rs
//! checks that they agree with the synthesized template.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, IndexStatus, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use super::dynamodb::{attribute, quota_attribute};
use super::{AwsClients, build_error, sdk_error};
use crate::ids::UserId;
use crate::ports::PortError;

/// How long to wait for a new table (and its indexes) to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The longest SQS keeps a message; the dead-letter queue keeps parked messages that long.
const MAX_MESSAGE_RETENTION_SECONDS: u32 = 14 * 24 * 60 * 60;

/// A step of provisioning that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct ProvisionError {
    pub action: String,
    #[source]
    pub source: PortError,
}

fn failed(action: impl Into<String>) -> impl FnOnce(PortError) -> ProvisionError {
    let action = action.into();
    move |source| ProvisionError { action, source }
}

/// Redrive and visibility settings of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueProvisioning {
    /// How long a received message stays invisible; at least the consumer Lambda's timeout.
    pub visibility_timeout_seconds: u32,
    /// Receives after which SQS moves a message to the dead-letter queue.
    pub max_receive_count: u32,
}

impl Default for QueueProvisioning {
    fn default() -> Self {
        Self {
            visibility_timeout_seconds: 60,
            max_receive_count: 5,
        }
    }
}

/// A queue and its dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueWithDeadLetters {
    pub queue_url: String,
    pub queue_arn: String,
    pub dead_letter_queue_url: String,
    pub dead_letter_queue_arn: String,
}

/// What [`ensure_stack`] creates, named `{prefix}-...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionedStack {
    pub submissions_table: String,
    pub users_table: String,
    pub quotas_table: String,
    pub submissions_queue: QueueWithDeadLetters,
    pub rejections_queue: QueueWithDeadLetters,
    pub rejections_topic_arn: String,
}

/// Creates whatever is missing of the whole pipeline's tables, queues and topic.
pub async fn ensure_stack(
    clients: &AwsClients,
    name_prefix: &str,
    queue_settings: QueueProvisioning,
) -> Result<ProvisionedStack, ProvisionError> {
    let submissions_table = format!("{name_prefix}-submissions");
    let users_table = format!("{name_prefix}-users");
    ensure_submissions_table(&clients.dynamodb, &submissions_table).await?;
    ensure_users_table(&clients.dynamodb, &users_table).await?;
    let quotas_table = format!("{name_prefix}-quotas");
    ensure_quotas_table(&clients.dynamodb, &quotas_table).await?;
    Ok(ProvisionedStack {
        submissions_table,
        users_table,
        quotas_table,
        submissions_queue: ensure_queue_with_dead_letters(
            &clients.sqs,
            &format!("{name_prefix}-submissions"),
            queue_settings,
        )
        .await?,
        rejections_queue: ensure_queue_with_dead_letters(
            &clients.sqs,
            &format!("{name_prefix}-rejections"),
            queue_settings,
        )
        .await?,
        rejections_topic_arn: ensure_topic(&clients.sns, &format!("{name_prefix}-rejections"))
            .await?,
    })
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

const DYNAMODB: &str = "dynamodb";

fn key(attribute_name: &str, key_type: KeyType) -> Result<KeySchemaElement, PortError> {
    KeySchemaElement::builder()
        .attribute_name(attribute_name)
        .key_type(key_type)
        .build()
        .map_err(|e| build_error(DYNAMODB, e))
}

fn definition(
    attribute_name: &str,
    attribute_type: ScalarAttributeType,
) -> Result<AttributeDefinition, PortError> {
    AttributeDefinition::builder()
        .attribute_name(attribute_name)
        .attribute_type(attribute_type)
        .build()
        .map_err(|e| build_error(DYNAMODB, e))
}

/// The submissions table's key as this module creates it: partition `userId`, sort
/// `submissionId`, both strings. The table has no index: every read knows the player. Every
/// write of an item lands on its player's partition, which is what the hot-partition
/// simulation (`tests/tests/hot_partitions.rs`) counts.
pub const SUBMISSIONS_TABLE_KEY: [&str; 2] = [attribute::USER_ID, attribute::SUBMISSION_ID];

/// The submissions table: key [`SUBMISSIONS_TABLE_KEY`], no index, and a stream of new and old
/// images, which feeds the rank index.
pub async fn ensure_submissions_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Result<(), ProvisionError> {
    use attribute::*;
    let action = format!("creating table {table_name}");
    let create = async {
        client
            .create_table()
            .table_name(table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(definition(USER_ID, ScalarAttributeType::S)?)
            .attribute_definitions(definition(SUBMISSION_ID, ScalarAttributeType::S)?)
            .key_schema(key(USER_ID, KeyType::Hash)?)
            .key_schema(key(SUBMISSION_ID, KeyType::Range)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|e| build_error(DYNAMODB, e))?,
            )
            .send()
            .await
            .map(|_| ())
            .or_else(already_exists)
    };
    ensure_table(client, table_name, &SUBMISSIONS_TABLE_KEY, create)
        .await
        .map_err(failed(action))
}

/// The users table: key `userId`.
pub async fn ensure_users_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Result<(), ProvisionError> {
    let action = format!("creating table {table_name}");
    let create = async {
        client
            .create_table()
            .table_name(table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(definition(attribute::USER_ID, ScalarAttributeType::S)?)
            .key_schema(key(attribute::USER_ID, KeyType::Hash)?)
            .send()
            .await
            .map(|_| ())
            .or_else(already_exists)
    };
    ensure_table(client, table_name, &[attribute::USER_ID], create)
        .await
        .map_err(failed(action))
}

/// The quotas table: partition `userId`, sort `windowStart` (N), TTL on `expiresAt`.
pub async fn ensure_quotas_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Result<(), ProvisionError> {
    let action = format!("creating table {table_name}");
    let create = async {
        client
            .create_table()
            .table_name(table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(definition(
                quota_attribute::USER_ID,
                ScalarAttributeType::S,
            )?)
            .attribute_definitions(definition(
                quota_attribute::WINDOW_START,
                ScalarAttributeType::N,
            )?)
            .key_schema(key(quota_attribute::USER_ID, KeyType::Hash)?)
            .key_schema(key(quota_attribute::WINDOW_START, KeyType::Range)?)
            .send()
            .await
            .map(|_| ())
            .or_else(already_exists)
    };
    ensure_table(
        client,
        table_name,
        &[quota_attribute::USER_ID, quota_attribute::WINDOW_START],
        create,
    )
    .await
    .map_err(failed(action.clone()))?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(quota_attribute::EXPIRES_AT)
        .enabled(true)
        .build()
        .map_err(|e| build_error(DYNAMODB, e))
        .map_err(failed(action.clone()))?;
    match client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Asking again once TTL is on is refused with "TimeToLive is already enabled".
        Err(error)
            if error
                .as_service_error()
                .and_then(ProvideErrorMetadata::message)
                .is_some_and(|m| m.contains("already enabled")) =>
        {
            Ok(())
        }
        Err(error) => Err(failed(action)(sdk_error(DYNAMODB, error))),
    }
}

/// A concurrent creator got there first: as good as created.
fn already_exists(
    error: aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::create_table::CreateTableError,
    >,
) -> Result<(), PortError> {
    if error
        .as_service_error()
        .is_some_and(|e| e.is_resource_in_use_exception())
    {
        Ok(())
    } else {
        Err(sdk_error(DYNAMODB, error))
    }
}

/// What DescribeTable says about a table: `None` if it does not exist.
struct TableState {
    active: bool,
    /// The key's attribute names, partition first.
    key: Vec<String>,
}

async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Result<Option<TableState>, PortError> {
    let output = match client.describe_table().table_name(table_name).send().await {
        Ok(output) => output,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(sdk_error(DYNAMODB, error)),
    };
    let Some(table) = output.table() else {
        return Ok(None);
    };
    let indexes = table.global_secondary_indexes();
    Ok(Some(TableState {
        active: table.table_status() == Some(&TableStatus::Active)
            && indexes
                .iter()
                .all(|i| i.index_status().is_none_or(|s| s == &IndexStatus::Active)),
        key: {
            let mut schema: Vec<_> = table.key_schema().iter().collect();
            schema.sort_by_key(|k| *k.key_type() != KeyType::Hash);
            schema
                .iter()
                .map(|k| k.attribute_name().to_owned())
                .collect()
        },
    }))
}

/// Creates the table with `create` if it does not exist, checks that it has the expected key
/// (attribute names, partition first), and waits until it and its indexes are ACTIVE.
async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    expected_key: &[&str],
    create: impl Future<Output = Result<(), PortError>>,
) -> Result<(), PortError> {
    if describe(client, table_name).await?.is_none() {
        create.await?;
    }
    let give_up_at = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        if let Some(state) = describe(client, table_name).await? {
            if state.key != expected_key {
                return Err(PortError::Refused {
                    service: DYNAMODB,
                    detail: format!(
                        "table {table_name} exists keyed by {:?}, not {expected_key:?} (a table made by an older version); delete it, or copy its items into a new table",
                        state.key
                    ),
                });
            }
            if state.active {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= give_up_at {
            return Err(PortError::Timeout {
                service: DYNAMODB,
                detail: format!(
                    "table {table_name} did not become ACTIVE within {TABLE_ACTIVE_TIMEOUT:?}"
                ),
            });
        }
        tokio::time::sleep(TABLE_POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// SQS

const SQS: &str = "sqs";

/// Creates the queue `name` and its dead-letter queue `{name}-dlq`, or brings existing ones to
/// these settings.
pub async fn ensure_queue_with_dead_letters(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueProvisioning,
) -> Result<QueueWithDeadLetters, ProvisionError> {
    let dead_letter_name = format!("{name}-dlq");
    let retention = MAX_MESSAGE_RETENTION_SECONDS.to_string();
    let dead_letter_queue_url = ensure_queue(
        client,
        &dead_letter_name,
        HashMap::from([(
            QueueAttributeName::MessageRetentionPeriod,
            retention.clone(),
        )]),
    )
    .await
    .map_err(failed(format!("creating queue {dead_letter_name}")))?;
    let dead_letter_queue_arn = queue_arn(client, &dead_letter_queue_url)
        .await
        .map_err(failed(format!(
            "reading the ARN of queue {dead_letter_name}"
        )))?;
    let redrive_policy = json!({
        "deadLetterTargetArn": dead_letter_queue_arn,
        "maxReceiveCount": settings.max_receive_count,
    });
    let queue_url = ensure_queue(
        client,
        name,
        HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                settings.visibility_timeout_seconds.to_string(),
            ),
            (QueueAttributeName::MessageRetentionPeriod, retention),
            (
                QueueAttributeName::RedrivePolicy,
                redrive_policy.to_string(),
            ),
        ]),
    )
    .await
    .map_err(failed(format!("creating queue {name}")))?;
    let queue_arn = queue_arn(client, &queue_url)
        .await
        .map_err(failed(format!("reading the ARN of queue {name}")))?;
    Ok(QueueWithDeadLetters {
        queue_url,
        queue_arn,
        dead_letter_queue_url,
        dead_letter_queue_arn,
    })
}

/// CreateQueue is idempotent only while the attributes match; an existing queue with other
/// attributes is updated to these instead.
async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, PortError> {
    let created = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let queue_url = match created {
        Ok(output) => output.queue_url().map(str::to_owned),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_queue_name_exists()) =>
        {
            let url = client
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| sdk_error(SQS, e))?
                .queue_url()
                .map(str::to_owned);
            if let Some(url) = &url {
                client
                    .set_queue_attributes()
                    .queue_url(url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|e| sdk_error(SQS, e))?;
            }
            url
        }
        Err(error) => return Err(sdk_error(SQS, error)),
    };
    queue_url.ok_or_else(|| PortError::Unavailable {
        service: SQS,
        detail: format!("no URL returned for queue {name}"),
    })
}

/// The ARN of a queue, given its URL.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String, PortError> {
    let output = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error(SQS, e))?;
    output
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| PortError::Unavailable {
            service: SQS,
            detail: format!("no QueueArn returned for {queue_url}"),
        })
}

// ---------------------------------------------------------------------------------------------
// SNS

const SNS: &str = "sns";

/// Creates the topic (CreateTopic is idempotent) and returns its ARN.
pub async fn ensure_topic(
    client: &aws_sdk_sns::Client,
    name: &str,
) -> Result<String, ProvisionError> {
    let action = format!("creating topic {name}");
    let output = client
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| failed(action.clone())(sdk_error(SNS, e)))?;
    output.topic_arn().map(str::to_owned).ok_or_else(|| {
        failed(action)(PortError::Unavailable {
            service: SNS,
            detail: "no TopicArn returned".to_owned(),
        })
    })
}

/// The filter policy that lets through only notifications about these users.
pub fn user_filter_policy(user_ids: &[UserId]) -> String {
    let user_ids: Vec<&str> = user_ids.iter().map(UserId::as_str).collect();
    json!({ super::sns::USER_ID_ATTRIBUTE: user_ids }).to_string()
}

/// Subscribes an SQS queue to the topic with raw message delivery (the queue receives the
/// notification body itself) and a filter policy on `userId` (none when `filter_user_ids` is empty). Also gives the topic permission
/// to send to the queue, replacing the queue's access policy: meant for test and operator
/// queues, not for queues whose policy is managed elsewhere. Returns the subscription ARN.
pub async fn subscribe_queue_to_topic(
    clients: &AwsClients,
    topic_arn: &str,
    queue_url: &str,
    filter_user_ids: &[UserId],
) -> Result<String, ProvisionError> {
    let action = format!("subscribing {queue_url} to {topic_arn}");
    let queue_arn = queue_arn(&clients.sqs, queue_url)
        .await
        .map_err(failed(action.clone()))?;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowTopicToSend",
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
        }],
    });
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| failed(action.clone())(sdk_error(SQS, e)))?;
    let mut subscribe = clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true);
    // No user ids: no filter policy, the queue hears of every notification.
    if !filter_user_ids.is_empty() {
        subscribe = subscribe.attributes("FilterPolicy", user_filter_policy(filter_user_ids));
    }
    let output = subscribe
        .send()
        .await
        .map_err(|e| failed(action.clone())(sdk_error(SNS, e)))?;
    output.subscription_arn().map(str::to_owned).ok_or_else(|| {
        failed(action)(PortError::Unavailable {
            service: SNS,
            detail: "no SubscriptionArn returned".to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_policy_matches_the_user_id_attribute_exactly() {
        let ids = [
            UserId::parse("alice").unwrap(),
            UserId::parse("b\"ob").unwrap(),
        ];
        let policy: serde_json::Value = serde_json::from_str(&user_filter_policy(&ids)).unwrap();
        assert_eq!(policy, json!({ "userId": ["alice", "b\"ob"] }));
    }
}
