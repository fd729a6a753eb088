//! Emulates the Lambda DynamoDB Streams event source mapping: take the submissions table's
//! changes in order, invoke the ranker with a stream `Event`, and on a partial batch failure
//! deliver the batch again from the failed record (a crash: the whole batch), as Lambda does for
//! a shard with unlimited retries. Two feeds: the in-memory store's subscription, and a real
//! DynamoDB stream read through the DynamoDB Streams API (moto).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use serde_json::{Value, json};
use shared::aws::dynamodb::record_to_item;
use shared::board::StoredChange;
use shared::ports::PortError;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::emulate::moto::Moto;

pub type StreamHandlerFuture = Pin<Box<dyn Future<Output = DynamoDbEventResponse> + Send>>;
/// A stream-triggered function: a batch of change records in, a partial batch response out.
pub type StreamHandler = Arc<dyn Fn(Event) -> StreamHandlerFuture + Send + Sync>;

/// Pause before a failed batch is delivered again, and after a failed read of the feed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How often an idle feed is read while waiting for changes.
const IDLE_READ_INTERVAL: Duration = Duration::from_millis(25);

/// The submissions table's changes, in order, as stream records.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Up to `max` records after those already taken, waiting up to `wait` for the first.
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, PortError>;
}

/// How far a consumer has come, so that a test can wait until everything written is ranked.
#[derive(Default)]
pub struct FeedProgress {
    reads_started: AtomicU64,
    /// The number of the last read that found nothing new.
    last_empty_read: AtomicU64,
}

impl FeedProgress {
    /// Whether every change made before this call has been handed to the function and handled:
    /// true once a read that started after the call comes back empty. Waits up to `timeout`.
    pub async fn caught_up(&self, timeout: Duration) -> bool {
        let marker = self.reads_started.load(Ordering::SeqCst);
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if self.last_empty_read.load(Ordering::SeqCst) > marker {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Reads the feed until `stop` turns true. A batch is retried until the function takes it
/// whole; only then is the next one read.
pub fn spawn_stream_consumer(
    feed: Arc<dyn ChangeFeed>,
    handler: StreamHandler,
    batch_size: usize,
    wait: Duration,
    stop: watch::Receiver<bool>,
) -> (JoinHandle<()>, Arc<FeedProgress>) {
    let progress = Arc::new(FeedProgress::default());
    let watched = progress.clone();
    let task = tokio::spawn(async move {
        while !*stop.borrow() {
            let read = watched.reads_started.fetch_add(1, Ordering::SeqCst) + 1;
            let mut records = match feed.read(batch_size, wait).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "reading the change feed failed; reading again shortly");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            if records.is_empty() {
                watched.last_empty_read.store(read, Ordering::SeqCst);
                continue;
            }
            loop {
                let event = stream_event(records.clone());
                let response = match tokio::spawn((handler)(event)).await {
                    Ok(response) => response,
                    Err(error) => {
                        tracing::error!(%error, records = records.len(), "the stream handler crashed; the batch will be delivered again");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                };
                let Some(failed) = response
                    .batch_item_failures
                    .first()
                    .and_then(|f| f.item_identifier.clone())
                else {
                    break;
                };
                match records
                    .iter()
                    .position(|r| r.change.sequence_number.as_deref() == Some(failed.as_str()))
                {
                    Some(index) => {
                        records.drain(..index);
                    }
                    None => {
                        // Lambda fails the whole batch on an identifier it does not know.
                        tracing::warn!(%failed, "the handler named a record not in the batch; the whole batch will be delivered again");
                    }
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    });
    (task, progress)
}

fn stream_event(records: Vec<EventRecord>) -> Event {
    let mut event = Event::default();
    event.records = records;
    event
}

/// The in-memory store's changes as stream records: what DynamoDB would put in the stream for
/// the same writes, images and all.
pub struct MemoryChangeFeed {
    changes: Mutex<tokio::sync::mpsc::UnboundedReceiver<StoredChange>>,
    sequence: AtomicU64,
}

impl MemoryChangeFeed {
    pub fn new(changes: tokio::sync::mpsc::UnboundedReceiver<StoredChange>) -> Self {
        Self {
            changes: Mutex::new(changes),
            sequence: AtomicU64::new(0),
        }
    }

    fn record(&self, change: StoredChange) -> Result<EventRecord, PortError> {
        let image = |record: &Option<shared::record::SubmissionRecord>| -> Result<serde_dynamo::Item, PortError> {
            match record {
                None => Ok(serde_dynamo::Item::from(HashMap::<String, serde_dynamo::AttributeValue>::new())),
                Some(record) => record_to_item(record)
                    .map(serde_dynamo::Item::from)
                    .map_err(|e| PortError::Refused {
                        service: "change feed",
                        detail: e.to_string(),
                    }),
            }
        };
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let event_name = match (&change.old, &change.new) {
            (None, _) => "INSERT",
            (Some(_), Some(_)) => "MODIFY",
            (Some(_), None) => "REMOVE",
        };
        let id = change
            .new
            .as_ref()
            .or(change.old.as_ref())
            .map(|r| r.submission_id.to_string())
            .unwrap_or_default();
        let mut stream = StreamRecord::default();
        stream.keys = serde_dynamo::Item::from(HashMap::from([(
            shared::aws::dynamodb::attribute::SUBMISSION_ID.to_owned(),
            serde_dynamo::AttributeValue::S(id),
        )]));
        stream.old_image = image(&change.old)?;
        stream.new_image = image(&change.new)?;
        stream.sequence_number = Some(format!("{sequence:021}"));
        stream.stream_view_type = Some(StreamViewType::NewAndOldImages);
        let mut record = EventRecord::default();
        record.event_id = sequence.to_string();
        record.event_name = event_name.to_owned();
        record.event_source = Some("aws:dynamodb".to_owned());
        record.aws_region = "local".to_owned();
        record.change = stream;
        Ok(record)
    }
}

#[async_trait]
impl ChangeFeed for MemoryChangeFeed {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, PortError> {
        let mut changes = self.changes.lock().await;
        let mut taken = Vec::new();
        match tokio::time::timeout(wait, changes.recv()).await {
            Ok(Some(change)) => taken.push(change),
            // Closed (the store is gone) or nothing within the wait.
            Ok(None) | Err(_) => return Ok(Vec::new()),
        }
        while taken.len() < max {
            match changes.try_recv() {
                Ok(change) => taken.push(change),
                Err(_) => break,
            }
        }
        taken
            .into_iter()
            .map(|change| self.record(change))
            .collect()
    }
}

/// A DynamoDB stream read through the DynamoDB Streams API, shard by shard from the stream's
/// beginning (`TRIM_HORIZON`), as the event source mapping reads it. The calls are unsigned, so
/// this reads an emulator's streams (moto), not AWS's.
pub struct DynamoStreamFeed {
    moto: Moto,
    stream: StreamOf,
    state: Mutex<Option<StreamState>>,
}

/// Which stream a feed reads.
enum StreamOf {
    /// A table's latest stream, found with DescribeTable.
    Table {
        dynamodb: aws_sdk_dynamodb::Client,
        table: String,
    },
    /// The stream an event source mapping names.
    Arn(String),
}

struct StreamState {
    stream_arn: String,
    /// Per shard, where the next read starts; `None` once a closed shard is read to its end.
    iterators: HashMap<String, Option<String>>,
}

impl DynamoStreamFeed {
    /// The stream of `table`, found (with DescribeTable) on the first read.
    pub fn new(moto: Moto, dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            moto,
            stream: StreamOf::Table {
                dynamodb,
                table: table.into(),
            },
            state: Mutex::new(None),
        }
    }

    /// The stream `stream_arn`, read as an event source mapping reads it: every call made in
    /// the name of the caller `moto` is set up for (the mapped function's role).
    pub fn of_stream(moto: Moto, stream_arn: impl Into<String>) -> Self {
        Self {
            moto,
            stream: StreamOf::Arn(stream_arn.into()),
            state: Mutex::new(None),
        }
    }

    async fn open(&self) -> Result<StreamState, PortError> {
        let stream_arn = match &self.stream {
            StreamOf::Arn(arn) => arn.clone(),
            StreamOf::Table { dynamodb, table } => dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| shared::aws::sdk_error("dynamodb", e))?
                .table()
                .and_then(|t| t.latest_stream_arn())
                .ok_or_else(|| PortError::Refused {
                    service: "dynamodb streams",
                    detail: format!("table {table} has no stream; the rank index needs one"),
                })?
                .to_owned(),
        };
        let iterators = self.shards(&stream_arn).await?;
        Ok(StreamState {
            stream_arn,
            iterators,
        })
    }

    async fn shards(&self, stream_arn: &str) -> Result<HashMap<String, Option<String>>, PortError> {
        let description = self
            .moto
            .dynamodb_streams("DescribeStream", &json!({ "StreamArn": stream_arn }))
            .await
            .map_err(unavailable)?;
        let mut iterators = HashMap::new();
        for shard in description["StreamDescription"]["Shards"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(shard_id) = shard["ShardId"].as_str() else {
                continue;
            };
            let iterator = self
                .moto
                .dynamodb_streams(
                    "GetShardIterator",
                    &json!({ "StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON" }),
                )
                .await
                .map_err(unavailable)?;
            iterators.insert(
                shard_id.to_owned(),
                iterator["ShardIterator"].as_str().map(str::to_owned),
            );
        }
        Ok(iterators)
    }
}

fn event_record(stream_arn: &str, raw: &Value) -> Result<EventRecord, PortError> {
    let mut raw = raw.clone();
    // Lambda adds the stream's ARN to each record it delivers.
    raw["eventSourceARN"] = json!(stream_arn);
    serde_json::from_value(raw).map_err(|e| PortError::Refused {
        service: "dynamodb streams",
        detail: format!("a stream record does not read as a Lambda stream record: {e}"),
    })
}

fn unavailable(error: crate::emulate::moto::MotoError) -> PortError {
    PortError::Unavailable {
        service: "dynamodb streams",
        detail: error.to_string(),
    }
}

#[async_trait]
impl ChangeFeed for DynamoStreamFeed {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<EventRecord>, PortError> {
        let until = tokio::time::Instant::now() + wait;
        let mut state = self.state.lock().await;
        if state.is_none() {
            *state = Some(self.open().await?);
        }
        let StreamState {
            stream_arn,
            iterators: shards,
        } = state.as_mut().expect("just opened");
        loop {
            let mut taken = Vec::new();
            for iterator in shards.values_mut() {
                let Some(current) = iterator.clone() else {
                    continue;
                };
                let answer = match self
                    .moto
                    .dynamodb_streams(
                        "GetRecords",
                        &json!({ "ShardIterator": current, "Limit": max - taken.len() }),
                    )
                    .await
                {
                    Ok(answer) => answer,
                    // What other shards gave is handed on; this shard is read again next time.
                    Err(error) if taken.is_empty() => return Err(unavailable(error)),
                    Err(error) => {
                        tracing::warn!(%error, "reading a stream shard failed; reading it again next time");
                        break;
                    }
                };
                for raw in answer["Records"].as_array().into_iter().flatten() {
                    taken.push(event_record(stream_arn, raw)?);
                }
                *iterator = answer["NextShardIterator"].as_str().map(str::to_owned);
                if taken.len() >= max {
                    break;
                }
            }
            if !taken.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(taken);
            }
            tokio::time::sleep(IDLE_READ_INTERVAL).await;
        }
    }
}
