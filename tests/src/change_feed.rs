//! Emulates the Lambda DynamoDB Streams event source mapping: take the submissions table's
//! changes in order, invoke the ranker with a stream `Event`, and on a partial batch failure
//! deliver the batch again from the failed record (a crash: the whole batch), as Lambda does for
//! a shard with unlimited retries. Two feeds: the in-memory store's subscription, and a real
//! DynamoDB stream read through the DynamoDB Streams API (moto).

use std::collections::{HashMap, HashSet, VecDeque};
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
    /// Per shard id, where the next read starts and what was handed out lately.
    shards: HashMap<String, ShardCursor>,
}

struct ShardCursor {
    /// Where the next read starts; `None` once a closed shard is read to its end.
    iterator: Option<String>,
    handed_out: RecentEventIds,
}

/// How many of a shard's latest event ids a feed remembers, to drop a record read again.
const REMEMBERED_EVENT_IDS: usize = 1_024;

/// The event ids a shard's reads handed out lately.
///
/// moto numbers a stream record before it appends it, with no lock (`StreamShard.add`, moto
/// 5.2), so two writes to a table at the same moment can get the same sequence number: 2 in
/// 1,600 puts from 16 threads on this machine. The iterator that follows a read ending with
/// such a pair points at the pair's second record again, so that record is read twice, and at
/// the stream's end it is read again on every read: the feed never comes back empty, and a
/// test waiting for it to catch up times out. DynamoDB numbers each record once; a record
/// whose `eventID` was handed out already is dropped here.
#[derive(Default)]
struct RecentEventIds {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl RecentEventIds {
    /// Whether `id` is new (not among the last [`REMEMBERED_EVENT_IDS`]); a new one is kept.
    fn first_sight(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED_EVENT_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
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
        let shards = self.shards(&stream_arn).await?;
        Ok(StreamState { stream_arn, shards })
    }

    async fn shards(&self, stream_arn: &str) -> Result<HashMap<String, ShardCursor>, PortError> {
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
                ShardCursor {
                    iterator: iterator["ShardIterator"].as_str().map(str::to_owned),
                    handed_out: RecentEventIds::default(),
                },
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
        let StreamState { stream_arn, shards } = state.as_mut().expect("just opened");
        loop {
            let mut taken = Vec::new();
            for shard in shards.values_mut() {
                let Some(current) = shard.iterator.clone() else {
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
                    let read_before = raw["eventID"]
                        .as_str()
                        .is_some_and(|id| !shard.handed_out.first_sight(id));
                    if !read_before {
                        taken.push(event_record(stream_arn, raw)?);
                    }
                }
                shard.iterator = answer["NextShardIterator"].as_str().map(str::to_owned);
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

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;

    use super::*;

    /// A stream as moto keeps one: records in a list, an iterator a position in it, and the
    /// iterator after a read the position just past the largest sequence number read (moto's
    /// `AFTER_SEQUENCE_NUMBER`, with the shard's numbers starting at 0).
    struct MotoLikeStream {
        /// Each record's event id and sequence number, in the order appended.
        records: Vec<(&'static str, u64)>,
    }

    async fn streams_api(
        State(stream): State<Arc<MotoLikeStream>>,
        headers: HeaderMap,
        body: String,
    ) -> String {
        let target = headers["x-amz-target"].to_str().unwrap_or_default();
        let request: Value = serde_json::from_str(&body).unwrap_or_default();
        let answer = match target.rsplit('.').next() {
            Some("DescribeStream") => {
                json!({ "StreamDescription": { "Shards": [{ "ShardId": "shard-1" }] } })
            }
            Some("GetShardIterator") => json!({ "ShardIterator": "0" }),
            Some("GetRecords") => {
                let at: usize = request["ShardIterator"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                let limit = request["Limit"].as_u64().unwrap_or(1_000) as usize;
                let read: Vec<_> = stream.records.iter().skip(at).take(limit).collect();
                let next = read
                    .iter()
                    .map(|(_, seq)| seq + 1)
                    .max()
                    .unwrap_or(at as u64);
                let records: Vec<Value> = read
                    .iter()
                    .map(|(id, seq)| {
                        json!({
                            "eventID": id,
                            "eventName": "INSERT",
                            "eventSource": "aws:dynamodb",
                            "eventVersion": "1.0",
                            "awsRegion": "us-east-1",
                            "dynamodb": {
                                "ApproximateCreationDateTime": 1_765_000_000.0,
                                "Keys": { "userId": { "S": id } },
                                "SequenceNumber": format!("{seq:021}"),
                                "SizeBytes": 1,
                                "StreamViewType": "NEW_AND_OLD_IMAGES",
                            },
                        })
                    })
                    .collect();
                json!({ "Records": records, "NextShardIterator": next.to_string() })
            }
            _ => json!({}),
        };
        answer.to_string()
    }

    fn ids(records: &[EventRecord]) -> Vec<&str> {
        records.iter().map(|r| r.event_id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_record_moto_numbered_twice_is_handed_out_once_and_the_stream_end_reads_empty() {
        // Two pairs of writes that got the same number, one of them at the stream's end.
        let stream = Arc::new(MotoLikeStream {
            records: vec![("a", 0), ("b", 1), ("c", 1), ("d", 3), ("e", 3)],
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/", post(streams_api))
            .with_state(stream);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let feed = DynamoStreamFeed::of_stream(Moto::new(endpoint), "arn:aws:dynamodb:stream");
        let wait = Duration::from_millis(100);

        let first = feed.read(3, wait).await.unwrap();
        assert_eq!(ids(&first), ["a", "b", "c"]);
        // moto's next iterator points at "c" again: it is not handed out twice.
        let second = feed.read(10, wait).await.unwrap();
        assert_eq!(ids(&second), ["d", "e"]);
        // Every read from here on gets "e" from moto; the feed has nothing new to give.
        assert!(feed.read(10, wait).await.unwrap().is_empty());
        assert!(feed.read(10, wait).await.unwrap().is_empty());
        server.abort();
    }

    #[test]
    fn recent_event_ids_forget_the_oldest_beyond_their_capacity() {
        let mut recent = RecentEventIds::default();
        assert!(recent.first_sight("first"));
        assert!(!recent.first_sight("first"));
        for n in 0..REMEMBERED_EVENT_IDS {
            assert!(recent.first_sight(&n.to_string()));
        }
        assert_eq!(recent.ids.len(), REMEMBERED_EVENT_IDS);
        assert!(recent.first_sight("first"), "the oldest id is forgotten");
        assert!(!recent.first_sight(&(REMEMBERED_EVENT_IDS - 1).to_string()));
    }
}
