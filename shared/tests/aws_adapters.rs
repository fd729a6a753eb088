//! The AWS adapters against moto's server, a real AWS API emulator. Run them through
//! `scripts/moto.sh run -- cargo test -p score-shared --test aws_adapters`, which starts moto and
//! sets MOTO_ENDPOINT. Every test creates its own uniquely named tables, queues and topics, so
//! the tests run in parallel against one server.
//!
//! moto never returns UnprocessedItems, UnprocessedKeys or failed batch entries, so the tests
//! of those paths put an SDK interceptor on the client that rewrites moto's real answer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeyType, KeysAndAttributes, TimeToLiveStatus, WriteRequest,
};
use aws_sdk_sns::operation::publish_batch::{PublishBatchInput, PublishBatchOutput};
use aws_sdk_sqs::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_sdk_sqs::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchInput, SendMessageBatchOutput};
use aws_sdk_sqs::types::{BatchResultErrorEntry, Message, QueueAttributeName};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::time::Instant;

use shared::aws::AwsClients;
use shared::aws::dynamodb::{
    DynamoQuotaCounter, DynamoSubmissionStore, DynamoUserDirectory, attribute, quota_attribute,
};
use shared::aws::provision::{
    QueueProvisioning, ensure_queue_with_dead_letters, ensure_quotas_table, ensure_stack,
    ensure_submissions_table, ensure_topic, ensure_users_table, subscribe_queue_to_topic,
};
use shared::aws::sns::SnsNotifier;
use shared::aws::sqs::SqsQueue;
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::limits::STORE_WRITE_BATCH;
use shared::message::{
    MESSAGE_VERSION, Principal, QueuedItem, QueuedRequest, QueuedSubmission,
    REQUEST_MESSAGE_VERSION, Rejection, decode, decode_submissions,
};
use shared::ports::{
    BatchReport, Notifier, PortError, QuotaCounter, RejectionSink, SubmissionQueue,
    SubmissionStore, UserDirectory,
};
use shared::quota::{QuotaPolicy, QuotaWindow};
use shared::record::{Outcome, SubmissionKey, SubmissionRecord};
use shared::rejection::RejectionReason;
use shared::retry::Backoff;
use shared::submission::{ClientRef, HeroId, Score, ScoreSubmission};
use shared::users::{User, UserStatus};

// ---------------------------------------------------------------------------------------------
// Clients and resources

fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!(
            "MOTO_ENDPOINT is not set: run these tests through `scripts/moto.sh run -- cargo test` \
             (make test does this)"
        )
    })
}

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "moto-tests")
}

const REGION: &str = "us-east-1";

fn dynamodb_client_with(interceptor: Option<impl Intercept + 'static>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new(REGION))
        .credentials_provider(credentials());
    if let Some(interceptor) = interceptor {
        config = config.interceptor(interceptor);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

fn sqs_client_with(interceptor: Option<impl Intercept + 'static>) -> aws_sdk_sqs::Client {
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new(REGION))
        .credentials_provider(credentials());
    if let Some(interceptor) = interceptor {
        config = config.interceptor(interceptor);
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

fn sns_client_with(interceptor: Option<impl Intercept + 'static>) -> aws_sdk_sns::Client {
    let mut config = aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new(REGION))
        .credentials_provider(credentials());
    if let Some(interceptor) = interceptor {
        config = config.interceptor(interceptor);
    }
    aws_sdk_sns::Client::from_conf(config.build())
}

/// No interceptor (the type only names what `None` is not).
const PLAIN: Option<CountingInterceptor> = None;

fn clients() -> AwsClients {
    AwsClients {
        dynamodb: dynamodb_client_with(PLAIN),
        sqs: sqs_client_with(PLAIN),
        sns: sns_client_with(PLAIN),
    }
}

/// A resource name no other test (or earlier run against the same server) uses.
fn unique(kind: &str) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!("t-{kind}-{}", &random[random.len() - 12..])
}

fn quick_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_attempts: 4,
    }
}

fn far_deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn new_queue(sqs: &aws_sdk_sqs::Client) -> String {
    ensure_queue_with_dead_letters(sqs, &unique("queue"), QueueProvisioning::default())
        .await
        .expect("queue is created")
        .queue_url
}

async fn new_submissions_table(dynamodb: &aws_sdk_dynamodb::Client) -> String {
    let table = unique("submissions");
    ensure_submissions_table(dynamodb, &table)
        .await
        .expect("table is created");
    table
}

async fn new_users_table(dynamodb: &aws_sdk_dynamodb::Client) -> String {
    let table = unique("users");
    ensure_users_table(dynamodb, &table)
        .await
        .expect("table is created");
    table
}

/// Receives (and deletes) messages until `expected` have arrived or `patience` has passed.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    patience: Duration,
) -> Vec<Message> {
    let give_up_at = Instant::now() + patience;
    let mut received = Vec::new();
    while received.len() < expected && Instant::now() < give_up_at {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive works");
        for message in output.messages() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().expect("a receipt handle"))
                .send()
                .await
                .expect("delete works");
            received.push(message.clone());
        }
    }
    received
}

fn string_attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

fn queued(user_id: &UserId, score: u32) -> QueuedSubmission {
    QueuedSubmission {
        v: MESSAGE_VERSION,
        submission_id: SubmissionId::new_unique(),
        correlation_id: CorrelationId::generate(),
        received_at: OffsetDateTime::now_utc(),
        principal: Principal {
            subject: user_id.clone(),
            token_id: Some("jti-1".into()),
            scopes: vec!["scores:write".into()],
        },
        submission: ScoreSubmission {
            hero_id: HeroId::parse("storm").expect("a valid hero"),
            score: Score::new(score).expect("a valid score"),
            achieved_at: Some(datetime!(2026-11-22 11:00:00 UTC)),
            client_ref: None,
        },
    }
}

/// One request of `count` submissions by `user_id`.
fn queued_request(user_id: &UserId, count: u32) -> QueuedRequest {
    let first = queued(user_id, 0);
    QueuedRequest {
        v: REQUEST_MESSAGE_VERSION,
        correlation_id: first.correlation_id,
        received_at: first.received_at,
        principal: first.principal,
        submissions: (0..count)
            .map(|i| QueuedItem {
                submission_id: SubmissionId::new_unique(),
                submission: queued(user_id, i).submission,
            })
            .collect(),
    }
}

fn record(user_id: &UserId, hero: &HeroId, score: u32, outcome: Outcome) -> SubmissionRecord {
    SubmissionRecord {
        submission_id: SubmissionId::new_unique(),
        user_id: user_id.clone(),
        hero_id: hero.clone(),
        score: Score::new(score).expect("a valid score"),
        achieved_at: Some(datetime!(2026-11-22 11:00:00.25 UTC)),
        client_ref: Some(ClientRef::parse(&format!("ref-{score}")).expect("a valid client ref")),
        received_at: OffsetDateTime::now_utc(),
        correlation_id: CorrelationId::generate(),
        outcome,
        decided_at: time::OffsetDateTime::now_utc(),
        notified_at: None,
    }
}

fn records(count: u32) -> Vec<SubmissionRecord> {
    let hero = HeroId::parse("storm").expect("a valid hero");
    (0..count)
        .map(|i| {
            let outcome = match i % 3 {
                0 => Outcome::Rejected(RejectionReason::SuspendedUser),
                _ => Outcome::Accepted,
            };
            record(&user(&format!("user-{i}")), &hero, 100 + i, outcome)
        })
        .collect()
}

fn rejection(user_id: &UserId, reason: RejectionReason) -> Rejection {
    Rejection {
        v: MESSAGE_VERSION,
        submission_id: SubmissionId::new_unique(),
        user_id: user_id.clone(),
        hero_id: HeroId::parse("storm").expect("a valid hero"),
        score: Score::new(7).expect("a valid score"),
        reason,
        rejected_at: OffsetDateTime::now_utc(),
        correlation_id: CorrelationId::generate(),
    }
}

fn ids_of<'a>(ids: impl IntoIterator<Item = &'a SubmissionId>) -> HashSet<SubmissionId> {
    ids.into_iter().copied().collect()
}

// ---------------------------------------------------------------------------------------------
// SQS

#[tokio::test]
async fn a_request_of_a_hundred_submissions_is_enqueued_as_one_message_that_arrives_intact() {
    // GIVEN a queue and a request of 100 submissions
    let sqs = sqs_client_with(PLAIN);
    let queue = SqsQueue::new(sqs.clone(), new_queue(&sqs).await);
    let request = queued_request(&user("alice"), 100);

    // WHEN it is enqueued
    queue
        .enqueue(&request, far_deadline())
        .await
        .expect("the request is enqueued");

    // THEN one message arrives, decodes to every submission sent, and carries the correlation id
    let received = receive(&sqs, &queue.queue_url, 10, Duration::from_secs(2)).await;
    assert_eq!(received.len(), 1);
    let decoded = decode_submissions(received[0].body()).expect("a valid message");
    assert_eq!(decoded, request.clone().into_submissions());
    assert_eq!(
        string_attribute(&received[0], "correlationId"),
        Some(request.correlation_id.as_str())
    );
}

#[tokio::test]
async fn rejections_are_sent_to_the_rejections_queue_with_nothing_failed() {
    let sqs = sqs_client_with(PLAIN);
    let sink = SqsQueue::new(sqs.clone(), new_queue(&sqs).await);
    let rejections: Vec<Rejection> = (0..12)
        .map(|_| rejection(&user("bob"), RejectionReason::UnknownUser))
        .collect();

    let report = sink
        .send(&rejections)
        .await
        .expect("the rejections are sent");

    assert_eq!(report, BatchReport::default());
    let received = receive(
        &sqs,
        &sink.queue_url,
        rejections.len(),
        Duration::from_secs(20),
    )
    .await;
    let received: HashSet<SubmissionId> = received
        .iter()
        .map(|m| decode::<Rejection>(m.body()).map(|r| r.submission_id))
        .collect::<Result<_, _>>()
        .expect("valid messages");
    assert_eq!(
        received,
        ids_of(rejections.iter().map(|r| &r.submission_id))
    );
}

#[tokio::test]
async fn enqueueing_to_a_missing_queue_is_an_error_for_ingest_to_answer_503() {
    let sqs = sqs_client_with(PLAIN);
    let missing_url = format!("{}/123456789012/{}", moto_endpoint(), unique("missing"));
    let queue = SqsQueue::new(sqs, missing_url);
    let error = queue
        .enqueue(&queued_request(&user("alice"), 1), far_deadline())
        .await
        .expect_err("nothing can be enqueued");
    assert!(error.to_string().contains("sqs"), "{error}");
}

#[tokio::test]
async fn failed_entries_are_resent_and_sender_faults_are_reported_not_resent() {
    // GIVEN a queue whose first SendMessageBatch answer reports entry 0 failed (server side)
    // and entry 1 refused (sender's fault)
    let faults = EntryFaults::new(["0"], ["1"]);
    let sqs = sqs_client_with(Some(faults.clone()));
    let sink = SqsQueue {
        backoff: quick_backoff(),
        ..SqsQueue::new(sqs.clone(), new_queue(&sqs).await)
    };
    let rejections: Vec<Rejection> = (0..3)
        .map(|_| rejection(&user("carol"), RejectionReason::MissingPermission))
        .collect();

    // WHEN the rejections are sent
    let report = sink
        .send(&rejections)
        .await
        .expect("some rejections go through");

    // THEN entry 0 is sent again on its own, and only entry 1 is reported failed
    assert_eq!(faults.sent_ids(), [vec!["0", "1", "2"], vec!["0"]]);
    assert_eq!(report.failed, [rejections[1].submission_id]);
}

// ---------------------------------------------------------------------------------------------
// DynamoDB: submissions

#[tokio::test]
async fn records_are_read_back_in_bulk_with_unknown_and_repeated_ids() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let written = records(120);
    for chunk in written.chunks(STORE_WRITE_BATCH) {
        store.write(chunk, far_deadline()).await.expect("written");
    }
    // More than one BatchGetItem's 100 keys, an id never written, a repeated key, and a
    // written id under another player, which names no item: the table is keyed by player.
    let mut keys: Vec<SubmissionKey> = written.iter().map(SubmissionRecord::key).collect();
    let unknown = SubmissionId::new_unique();
    keys.push(SubmissionKey::new(written[0].user_id.clone(), unknown));
    keys.push(keys[0].clone());
    let elsewhere = SubmissionKey::new(user("mallory"), written[1].submission_id);
    keys.push(elsewhere);

    let found = store.get_many(&keys, far_deadline()).await.expect("read");

    assert_eq!(found.len(), written.len());
    assert!(!found.contains_key(&unknown));
    for record in &written {
        assert_eq!(found.get(&record.submission_id), Some(record));
    }
}

#[tokio::test]
async fn a_bulk_read_that_stays_incomplete_fails_instead_of_leaving_records_out() {
    let plain = dynamodb_client_with(PLAIN);
    let table = new_submissions_table(&plain).await;
    let written = records(3);
    DynamoSubmissionStore::new(plain, &table)
        .write(&written, far_deadline())
        .await
        .expect("written");
    let faults = CountingInterceptor::leave_keys_unprocessed(usize::MAX);
    let store = DynamoSubmissionStore {
        backoff: quick_backoff(),
        ..DynamoSubmissionStore::new(dynamodb_client_with(Some(faults.clone())), &table)
    };
    let keys: Vec<SubmissionKey> = written.iter().map(SubmissionRecord::key).collect();

    let error = store
        .get_many(&keys, far_deadline())
        .await
        .expect_err("never complete");

    assert!(error.is_transient(), "{error}");
    assert!(faults.calls() > 1, "unprocessed keys were retried");
}

#[tokio::test]
async fn a_full_batch_of_25_records_is_written_and_read_back() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let records = records(STORE_WRITE_BATCH as u32);

    let report = store
        .write(&records, far_deadline())
        .await
        .expect("the write succeeds");

    assert_eq!(report, BatchReport::default());
    for record in &records {
        let stored = store.get(&record.key()).await.expect("the read succeeds");
        assert_eq!(stored.as_ref(), Some(record));
    }
}

#[tokio::test]
async fn rewriting_the_same_records_leaves_the_same_items() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let table = new_submissions_table(&dynamodb).await;
    let store = DynamoSubmissionStore::new(dynamodb.clone(), table.clone());
    let records = records(10);
    store
        .write(&records, far_deadline())
        .await
        .expect("the first write succeeds");
    let first = scan_items(&dynamodb, &table).await;

    // A redelivered batch, with one record repeated as a client retry would
    let mut again = records.clone();
    again.push(records[0].clone());
    let report = store
        .write(&again, far_deadline())
        .await
        .expect("the rewrite succeeds");

    assert_eq!(report, BatchReport::default());
    assert_eq!(scan_items(&dynamodb, &table).await, first);
    assert_eq!(first.len(), records.len());
}

async fn scan_items(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<Vec<(String, String)>> {
    let output = dynamodb
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan works");
    let mut items: Vec<Vec<(String, String)>> = output
        .items()
        .iter()
        .map(|item| {
            let mut attributes: Vec<(String, String)> = item
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            attributes.sort();
            attributes
        })
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn an_unknown_submission_id_reads_as_none() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let key = SubmissionKey::new(user("dave"), SubmissionId::new_unique());
    assert_eq!(store.get(&key).await, Ok(None));
}

#[tokio::test]
async fn a_record_is_found_under_its_own_player_only() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let hero = HeroId::parse("storm").expect("a valid hero");
    let daves = record(&user("dave"), &hero, 10, Outcome::Accepted);
    store
        .write(std::slice::from_ref(&daves), far_deadline())
        .await
        .expect("written");

    let under_erin = SubmissionKey::new(user("erin"), daves.submission_id);
    assert_eq!(store.get(&under_erin).await, Ok(None));
    assert_eq!(store.get(&daves.key()).await, Ok(Some(daves)));
}

#[tokio::test]
async fn a_submissions_table_keyed_the_old_way_is_refused_with_what_to_do() {
    // GIVEN a table made by an older version: keyed by submission id alone
    let dynamodb = dynamodb_client_with(PLAIN);
    let table = unique("submissions-old");
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("submissionId")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("submissionId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the old table is made");

    let error = ensure_submissions_table(&dynamodb, &table)
        .await
        .expect_err("an old table is not used as if it were new");

    let message = format!("{error:#}");
    assert!(message.contains("submissionId"), "{message}");
    assert!(message.contains("delete it"), "{message}");
}

#[tokio::test]
async fn more_than_25_records_in_one_write_are_refused() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let error = store
        .write(&records(STORE_WRITE_BATCH as u32 + 1), far_deadline())
        .await
        .expect_err("too many records");
    assert!(matches!(error, PortError::Refused { .. }), "{error}");
}

#[tokio::test]
async fn all_of_a_users_submissions_are_listed_and_no_one_elses() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let store =
        DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await);
    let hero = HeroId::parse("storm").expect("a valid hero");
    let (dave, erin) = (user("dave"), user("erin"));
    let mut batch: Vec<SubmissionRecord> = [10, 20, 30]
        .into_iter()
        .map(|score| record(&dave, &hero, score, Outcome::Accepted))
        .collect();
    batch[1].outcome = Outcome::Rejected(RejectionReason::SuspendedUser);
    batch.push(record(&erin, &hero, 40, Outcome::Accepted));
    store
        .write(&batch, far_deadline())
        .await
        .expect("the write succeeds");

    let mut listed = store.all_of_user(&dave).await.expect("the query succeeds");

    listed.sort_by_key(|r| r.score.get());
    assert_eq!(listed, batch[..3]);
    assert_eq!(store.all_of_user(&user("frank")).await, Ok(Vec::new()));
}

#[tokio::test]
async fn unprocessed_items_are_written_on_a_retry() {
    // GIVEN a table whose first two BatchWriteItem answers leave every item unprocessed
    let faults = CountingInterceptor::leave_unprocessed(2);
    let dynamodb = dynamodb_client_with(Some(faults.clone()));
    let store = DynamoSubmissionStore {
        backoff: quick_backoff(),
        ..DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await)
    };
    let records = records(5);

    let report = store
        .write(&records, far_deadline())
        .await
        .expect("the write succeeds");

    assert_eq!(report, BatchReport::default());
    assert_eq!(faults.calls(), 3);
    for record in &records {
        assert_eq!(
            store.get(&record.key()).await.expect("read").as_ref(),
            Some(record)
        );
    }
}

#[tokio::test]
async fn items_still_unprocessed_after_the_last_attempt_are_reported_failed() {
    let faults = CountingInterceptor::leave_unprocessed(usize::MAX);
    let dynamodb = dynamodb_client_with(Some(faults.clone()));
    let store = DynamoSubmissionStore {
        backoff: quick_backoff(),
        ..DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await)
    };
    let records = records(4);

    let report = store
        .write(&records, far_deadline())
        .await
        .expect("the call itself succeeds");

    assert_eq!(
        ids_of(&report.failed),
        ids_of(records.iter().map(|r| &r.submission_id))
    );
    assert_eq!(faults.calls(), quick_backoff().max_attempts as usize);
}

#[tokio::test]
async fn no_retry_starts_after_the_deadline() {
    let faults = CountingInterceptor::leave_unprocessed(usize::MAX);
    let dynamodb = dynamodb_client_with(Some(faults.clone()));
    let store = DynamoSubmissionStore {
        backoff: Backoff {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(60),
            max_attempts: 10,
        },
        ..DynamoSubmissionStore::new(dynamodb.clone(), new_submissions_table(&dynamodb).await)
    };
    let records = records(2);

    let started = Instant::now();
    let report = store
        .write(&records, Instant::now() + Duration::from_millis(200))
        .await
        .expect("the call itself succeeds");

    assert_eq!(report.failed.len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// DynamoDB: users

#[tokio::test]
async fn a_lookup_of_more_than_100_ids_finds_the_known_users_and_omits_the_rest() {
    // GIVEN 110 users in the directory
    let dynamodb = dynamodb_client_with(PLAIN);
    let directory = DynamoUserDirectory::new(dynamodb.clone(), new_users_table(&dynamodb).await);
    let known: Vec<User> = (0..110)
        .map(|i| match i % 10 {
            0 => User::suspended(user(&format!("known-{i}"))),
            _ => User::active(user(&format!("known-{i}"))),
        })
        .collect();
    for chunk in known.chunks(20) {
        futures::future::try_join_all(chunk.iter().map(|u| directory.put_user(u)))
            .await
            .expect("users are stored");
    }

    // WHEN 140 ids are looked up: the 110 known, 30 unknown, and some asked for twice
    let mut ids: Vec<UserId> = known.iter().map(|u| u.user_id.clone()).collect();
    ids.extend((0..30).map(|i| user(&format!("unknown-{i}"))));
    ids.extend(known.iter().take(5).map(|u| u.user_id.clone()));
    let found = directory.lookup(&ids).await.expect("the lookup succeeds");

    // THEN exactly the known users come back, as stored
    assert_eq!(found.len(), known.len());
    for user in &known {
        assert_eq!(found.get(&user.user_id), Some(&Ok(user.clone())));
    }
}

#[tokio::test]
async fn an_unreadable_user_item_is_reported_for_that_user_alone() {
    // GIVEN a directory where one user's item was written by hand with a status no version knows
    let dynamodb = dynamodb_client_with(PLAIN);
    let table = new_users_table(&dynamodb).await;
    let directory = DynamoUserDirectory::new(dynamodb.clone(), &table);
    let alice = User::active(user("alice"));
    directory.put_user(&alice).await.expect("stored");
    dynamodb
        .put_item()
        .table_name(&table)
        .item(attribute::USER_ID, AttributeValue::S("bob".into()))
        .item(attribute::STATUS, AttributeValue::S("banned".into()))
        .send()
        .await
        .expect("hand-written item stored");

    // WHEN both are looked up with an unknown user
    let found = directory
        .lookup(&[user("alice"), user("bob"), user("ghost")])
        .await
        .expect("the lookup itself succeeds");

    // THEN alice reads as stored, bob's entry is named unreadable, and ghost is absent
    assert_eq!(found.get(&user("alice")), Some(&Ok(alice)));
    let bob = found[&user("bob")].as_ref().expect_err("unreadable");
    assert_eq!(bob.user_id, user("bob"));
    assert!(bob.reason.contains("status"), "{bob}");
    assert_eq!(found.len(), 2);
}

#[tokio::test]
async fn unprocessed_keys_are_read_on_a_retry() {
    let faults = CountingInterceptor::leave_keys_unprocessed(1);
    let dynamodb = dynamodb_client_with(Some(faults.clone()));
    let directory = DynamoUserDirectory {
        backoff: quick_backoff(),
        ..DynamoUserDirectory::new(dynamodb.clone(), new_users_table(&dynamodb).await)
    };
    let alice = User::active(user("alice"));
    directory.put_user(&alice).await.expect("stored");

    let found = directory
        .lookup(&[alice.user_id.clone(), user("ghost")])
        .await
        .expect("found");

    assert_eq!(found, HashMap::from([(alice.user_id.clone(), Ok(alice))]));
    assert_eq!(faults.calls(), 2);
}

#[tokio::test]
async fn a_lookup_that_stays_incomplete_fails_instead_of_calling_users_unknown() {
    let faults = CountingInterceptor::leave_keys_unprocessed(usize::MAX);
    let dynamodb = dynamodb_client_with(Some(faults.clone()));
    let directory = DynamoUserDirectory {
        backoff: quick_backoff(),
        ..DynamoUserDirectory::new(dynamodb.clone(), new_users_table(&dynamodb).await)
    };
    directory
        .put_user(&User::active(user("alice")))
        .await
        .expect("stored");

    let error = directory
        .lookup(&[user("alice")])
        .await
        .expect_err("incomplete");

    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn operators_add_suspend_and_list_users() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let directory = DynamoUserDirectory::new(dynamodb.clone(), new_users_table(&dynamodb).await);
    let frank = User::active(user("frank"));
    let grace = User {
        permissions: vec![],
        ..User::active(user("grace"))
    };
    directory.put_user(&frank).await.expect("stored");
    directory.put_user(&grace).await.expect("stored");

    directory
        .set_status(&frank.user_id, UserStatus::Suspended)
        .await
        .expect("suspended");
    let unknown = directory
        .set_status(&user("nobody"), UserStatus::Suspended)
        .await
        .expect_err("an unknown user cannot be suspended");

    assert!(matches!(unknown, PortError::Refused { .. }), "{unknown}");
    let mut listed = directory.list_users().await.expect("listed");
    listed.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(listed, [User::suspended(user("frank")), grace]);
    let looked_up = directory
        .lookup(&[user("nobody")])
        .await
        .expect("looked up");
    assert!(looked_up.is_empty(), "set_status did not create a user");
}

// ---------------------------------------------------------------------------------------------
// SNS

#[tokio::test]
async fn more_than_ten_rejections_are_published_and_delivered() {
    let clients = clients();
    let topic = ensure_topic(&clients.sns, &unique("topic"))
        .await
        .expect("topic");
    let inbox = new_queue(&clients.sqs).await;
    let (hank, ida) = (user("hank"), user("ida"));
    subscribe_queue_to_topic(&clients, &topic, &inbox, &[hank.clone(), ida.clone()])
        .await
        .expect("subscribed");
    let notifier = SnsNotifier::new(clients.sns.clone(), topic);
    let rejections: Vec<Rejection> = (0..13)
        .map(|i| {
            rejection(
                if i % 2 == 0 { &hank } else { &ida },
                RejectionReason::ALL[i % 3],
            )
        })
        .collect();

    let report = notifier.publish(&rejections).await.expect("published");

    assert_eq!(report, BatchReport::default());
    let received = receive(
        &clients.sqs,
        &inbox,
        rejections.len(),
        Duration::from_secs(20),
    )
    .await;
    let decoded: Vec<Rejection> = received
        .iter()
        .map(|m| decode(m.body()))
        .collect::<Result<_, _>>()
        .expect("raw delivery gives the rejection itself");
    assert_eq!(
        ids_of(decoded.iter().map(|r| &r.submission_id)),
        ids_of(rejections.iter().map(|r| &r.submission_id))
    );
}

#[tokio::test]
async fn a_rejected_users_notification_reaches_only_the_queue_that_filters_on_that_user() {
    // GIVEN two queues subscribed to the topic, one filtering on each user
    let clients = clients();
    let topic = ensure_topic(&clients.sns, &unique("topic"))
        .await
        .expect("topic");
    let (judy, kim) = (user("judy"), user("kim"));
    let judys_inbox = new_queue(&clients.sqs).await;
    let kims_inbox = new_queue(&clients.sqs).await;
    subscribe_queue_to_topic(&clients, &topic, &judys_inbox, std::slice::from_ref(&judy))
        .await
        .expect("subscribed");
    subscribe_queue_to_topic(&clients, &topic, &kims_inbox, std::slice::from_ref(&kim))
        .await
        .expect("subscribed");
    let notifier = SnsNotifier::new(clients.sns.clone(), topic);

    // WHEN one of judy's submissions is rejected and notified
    let notice = rejection(&judy, RejectionReason::SuspendedUser);
    let report = notifier
        .publish(std::slice::from_ref(&notice))
        .await
        .expect("published");

    // THEN judy's queue gets exactly that notification, with the attributes to filter on
    assert_eq!(report, BatchReport::default());
    let judys = receive(&clients.sqs, &judys_inbox, 1, Duration::from_secs(10)).await;
    assert_eq!(judys.len(), 1);
    assert_eq!(
        decode::<Rejection>(judys[0].body()).expect("a rejection"),
        notice
    );
    assert_eq!(string_attribute(&judys[0], "userId"), Some("judy"));
    assert_eq!(
        string_attribute(&judys[0], "reason"),
        Some("suspended_user")
    );
    // AND kim's queue gets nothing
    let kims = receive(&clients.sqs, &kims_inbox, 1, Duration::from_secs(2)).await;
    assert!(kims.is_empty(), "kim received {kims:?}");
}

#[tokio::test]
async fn failed_notifications_are_republished_and_refused_ones_reported() {
    // GIVEN a topic whose first PublishBatch answer fails entry 2 (server side) and refuses entry 0
    let faults = EntryFaults::new(["2"], ["0"]);
    let sns = sns_client_with(Some(faults.clone()));
    let topic = ensure_topic(&sns, &unique("topic")).await.expect("topic");
    let notifier = SnsNotifier {
        backoff: quick_backoff(),
        ..SnsNotifier::new(sns, topic)
    };
    let rejections: Vec<Rejection> = (0..5)
        .map(|_| rejection(&user("liam"), RejectionReason::UnknownUser))
        .collect();

    // WHEN they are published
    let report = notifier
        .publish(&rejections)
        .await
        .expect("most are published");

    // THEN only the failed entry is published again, and the refused one is reported
    assert_eq!(
        faults.sent_ids(),
        [vec!["0", "1", "2", "3", "4"], vec!["2"]]
    );
    assert_eq!(report.failed, [rejections[0].submission_id]);
}

// ---------------------------------------------------------------------------------------------
// Provisioning

#[tokio::test]
async fn provisioning_the_stack_twice_gives_the_same_resources() {
    let clients = clients();
    let prefix = unique("stack");
    let settings = QueueProvisioning {
        visibility_timeout_seconds: 45,
        max_receive_count: 3,
    };

    let first = ensure_stack(&clients, &prefix, settings)
        .await
        .expect("provisioned");
    let second = ensure_stack(&clients, &prefix, settings)
        .await
        .expect("provisioned again");

    assert_eq!(first, second);
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&first.submissions_queue.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = attributes.attributes().expect("attributes");
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "45");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy])
            .expect("a JSON redrive policy");
    assert_eq!(
        redrive["deadLetterTargetArn"],
        first.submissions_queue.dead_letter_queue_arn.as_str()
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(&first.submissions_table)
        .send()
        .await
        .expect("described");
    let described = table.table().expect("a table");
    let key: Vec<(&str, &KeyType)> = described
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        key,
        [
            ("userId", &KeyType::Hash),
            ("submissionId", &KeyType::Range)
        ]
    );
    assert!(
        described.global_secondary_indexes().is_empty(),
        "the submissions table has no index"
    );
    let stream = table
        .table()
        .and_then(|t| t.stream_specification())
        .expect("the submissions table has a stream");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages),
        "the rank index needs both images: a revocation is an accepted item turned rejected"
    );

    // AND changed queue settings are applied to the existing queue
    let changed = QueueProvisioning {
        visibility_timeout_seconds: 90,
        ..settings
    };
    ensure_stack(&clients, &prefix, changed)
        .await
        .expect("reprovisioned");
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&first.submissions_queue.queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        attributes.attributes().expect("attributes")[&QueueAttributeName::VisibilityTimeout],
        "90"
    );
}

// ---------------------------------------------------------------------------------------------
// Quotas

async fn new_quotas_table(dynamodb: &aws_sdk_dynamodb::Client) -> String {
    let table = unique("quotas");
    ensure_quotas_table(dynamodb, &table)
        .await
        .expect("table is created");
    table
}

fn hourly_window(user_id: &str) -> QuotaWindow {
    QuotaPolicy::new(1, Duration::from_secs(3600))
        .expect("a valid policy")
        .window_of(&user(user_id), OffsetDateTime::now_utc())
}

fn new_ids(count: usize) -> Vec<SubmissionId> {
    (0..count).map(|_| SubmissionId::new_unique()).collect()
}

async fn quota_item(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    window: &QuotaWindow,
) -> HashMap<String, AttributeValue> {
    dynamodb
        .get_item()
        .table_name(table)
        .key(
            quota_attribute::USER_ID,
            AttributeValue::S(window.user_id.to_string()),
        )
        .key(
            quota_attribute::WINDOW_START,
            AttributeValue::N(window.start.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("read")
        .item()
        .cloned()
        .expect("the window has an item")
}

#[tokio::test]
async fn a_window_admits_up_to_its_limit_and_counting_again_changes_nothing() {
    let calls = CountingInterceptor::leave_unprocessed(0);
    let dynamodb = dynamodb_client_with(Some(calls.clone()));
    let table = new_quotas_table(&dynamodb).await;
    let counter = DynamoQuotaCounter::new(dynamodb.clone(), &table);
    let window = hourly_window("alice");
    let ids = new_ids(5);

    // Room for the whole batch: one conditional update.
    let first = counter.admit(&window, 3, &ids[..2]).await.expect("counted");
    assert_eq!(first, ids_of(&ids[..2]));
    assert_eq!(calls.calls(), 1);

    // Not enough room: the two counted before, then one more, and the rest refused.
    let second = counter.admit(&window, 3, &ids).await.expect("counted");
    assert_eq!(second, ids_of(&ids[..3]));

    // A redelivery in another order gets the same verdicts and counts nothing new.
    let mut reversed = ids.clone();
    reversed.reverse();
    let third = counter.admit(&window, 3, &reversed).await.expect("counted");
    assert_eq!(third, ids_of(&ids[..3]));

    let item = quota_item(&dynamodb, &table, &window).await;
    let stored: HashSet<String> = item[quota_attribute::SUBMISSION_IDS]
        .as_ss()
        .expect("a string set")
        .iter()
        .cloned()
        .collect();
    assert_eq!(stored, ids[..3].iter().map(ToString::to_string).collect());
    assert_eq!(
        item[quota_attribute::EXPIRES_AT].as_n().expect("a number"),
        &window.expires_at().to_string()
    );
}

#[tokio::test]
async fn users_and_windows_are_counted_apart() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let counter = DynamoQuotaCounter::new(dynamodb.clone(), new_quotas_table(&dynamodb).await);
    let alice = hourly_window("alice");
    let bob = hourly_window("bob");
    let next_hour = QuotaWindow {
        start: alice.start + 3600,
        ..alice.clone()
    };
    for window in [&alice, &bob, &next_hour] {
        let ids = new_ids(3);
        let admitted = counter.admit(window, 2, &ids).await.expect("counted");
        assert_eq!(admitted, ids_of(&ids[..2]), "{window:?}");
    }
}

#[tokio::test]
async fn a_full_window_refuses_new_ids_without_counting_them() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let table = new_quotas_table(&dynamodb).await;
    let counter = DynamoQuotaCounter::new(dynamodb.clone(), &table);
    let window = hourly_window("mallory");
    let ids = new_ids(4);
    counter.admit(&window, 2, &ids[..2]).await.expect("counted");
    for id in &ids[2..] {
        let admitted = counter
            .admit(&window, 2, std::slice::from_ref(id))
            .await
            .expect("counted");
        assert!(admitted.is_empty());
    }
    let item = quota_item(&dynamodb, &table, &window).await;
    assert_eq!(
        item[quota_attribute::SUBMISSION_IDS].as_ss().map(Vec::len),
        Ok(2)
    );
}

#[tokio::test]
async fn counting_against_a_missing_table_is_an_error_not_a_refusal() {
    let counter = DynamoQuotaCounter::new(dynamodb_client_with(PLAIN), unique("no-such-table"));
    let error = counter
        .admit(&hourly_window("alice"), 5, &new_ids(1))
        .await
        .expect_err("no table");
    assert!(matches!(error, PortError::Refused { .. }), "{error}");
}

#[tokio::test]
async fn the_quotas_table_expires_items_by_their_ttl_attribute() {
    let dynamodb = dynamodb_client_with(PLAIN);
    let table = new_quotas_table(&dynamodb).await;
    // Provisioning again finds TTL already on.
    ensure_quotas_table(&dynamodb, &table)
        .await
        .expect("idempotent");
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("described");
    let ttl = ttl.time_to_live_description().expect("a description");
    assert_eq!(ttl.attribute_name(), Some(quota_attribute::EXPIRES_AT));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

// ---------------------------------------------------------------------------------------------
// Fault injection: SDK interceptors that rewrite moto's answers the way AWS sometimes answers

/// Rewrites BatchWriteItem / BatchGetItem answers to leave the whole request unprocessed, for
/// the first `faulty_calls` calls, and counts the calls.
#[derive(Clone, Debug)]
struct CountingInterceptor {
    state: Arc<Mutex<InterceptorState>>,
}

#[derive(Debug, Default)]
struct InterceptorState {
    faulty_calls: usize,
    calls: usize,
    last_writes: Option<HashMap<String, Vec<WriteRequest>>>,
    last_keys: Option<HashMap<String, KeysAndAttributes>>,
}

impl CountingInterceptor {
    fn leave_unprocessed(faulty_calls: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(InterceptorState {
                faulty_calls,
                ..InterceptorState::default()
            })),
        }
    }

    fn leave_keys_unprocessed(faulty_calls: usize) -> Self {
        Self::leave_unprocessed(faulty_calls)
    }

    fn calls(&self) -> usize {
        self.state.lock().expect("not poisoned").calls
    }
}

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CountingInterceptor"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(input) = context.input().downcast_ref::<BatchWriteItemInput>() {
            state.calls += 1;
            state.last_writes = input.request_items().cloned();
        }
        if let Some(input) = context.input().downcast_ref::<BatchGetItemInput>() {
            state.calls += 1;
            state.last_keys = input.request_items().cloned();
        }
        if context.input().downcast_ref::<UpdateItemInput>().is_some() {
            state.calls += 1;
        }
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut state = self.state.lock().expect("not poisoned");
        if state.faulty_calls == 0 {
            return Ok(());
        }
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        if let Some(written) = output.downcast_mut::<BatchWriteItemOutput>() {
            *written = BatchWriteItemOutput::builder()
                .set_unprocessed_items(state.last_writes.clone())
                .build();
            state.faulty_calls -= 1;
        } else if let Some(read) = output.downcast_mut::<BatchGetItemOutput>() {
            *read = BatchGetItemOutput::builder()
                .set_responses(Some(HashMap::new()))
                .set_unprocessed_keys(state.last_keys.clone())
                .build();
            state.faulty_calls -= 1;
        }
        Ok(())
    }
}

/// Rewrites the first SendMessageBatch or PublishBatch answer: `failing` entry ids become
/// failures that are not the sender's fault, `refused` ids become sender faults. Records the
/// entry ids of each call. Use it with one chunk (at most 10 entries): concurrent chunks would
/// race to be the first call.
#[derive(Clone, Debug)]
struct EntryFaults {
    failing: Vec<String>,
    refused: Vec<String>,
    sent: Arc<Mutex<Vec<Vec<String>>>>,
}

impl EntryFaults {
    fn new<const F: usize, const R: usize>(failing: [&str; F], refused: [&str; R]) -> Self {
        Self {
            failing: failing.map(str::to_owned).to_vec(),
            refused: refused.map(str::to_owned).to_vec(),
            sent: Arc::default(),
        }
    }

    fn sent_ids(&self) -> Vec<Vec<String>> {
        self.sent.lock().expect("not poisoned").clone()
    }

    fn is_faulted(&self, id: &str) -> bool {
        self.failing.iter().chain(&self.refused).any(|f| f == id)
    }

    /// (entry id, sender fault, error code) of each injected failure.
    fn failures(&self) -> Vec<(&str, bool, &'static str)> {
        let failing = self
            .failing
            .iter()
            .map(|id| (id.as_str(), false, "InternalError"));
        let refused = self
            .refused
            .iter()
            .map(|id| (id.as_str(), true, "InvalidParameter"));
        failing.chain(refused).collect()
    }
}

impl Intercept for EntryFaults {
    fn name(&self) -> &'static str {
        "EntryFaults"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let ids: Option<Vec<String>> =
            if let Some(send) = input.downcast_ref::<SendMessageBatchInput>() {
                Some(send.entries().iter().map(|e| e.id().to_owned()).collect())
            } else {
                input.downcast_ref::<PublishBatchInput>().map(|publish| {
                    publish
                        .publish_batch_request_entries()
                        .iter()
                        .map(|e| e.id().to_owned())
                        .collect()
                })
            };
        if let Some(ids) = ids {
            self.sent.lock().expect("not poisoned").push(ids);
        }
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.sent.lock().expect("not poisoned").len() > 1 {
            return Ok(());
        }
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        if let Some(answer) = output.downcast_mut::<SendMessageBatchOutput>() {
            let mut failed: Vec<BatchResultErrorEntry> = answer.failed().to_vec();
            for (id, sender_fault, code) in self.failures() {
                failed.push(
                    BatchResultErrorEntry::builder()
                        .id(id)
                        .sender_fault(sender_fault)
                        .code(code)
                        .build()
                        .expect("a complete entry"),
                );
            }
            let successful = answer
                .successful()
                .iter()
                .filter(|e| !self.is_faulted(e.id()));
            *answer = SendMessageBatchOutput::builder()
                .set_successful(Some(successful.cloned().collect()))
                .set_failed(Some(failed))
                .build()
                .expect("a complete answer");
        } else if let Some(answer) = output.downcast_mut::<PublishBatchOutput>() {
            let mut failed: Vec<aws_sdk_sns::types::BatchResultErrorEntry> =
                answer.failed().to_vec();
            for (id, sender_fault, code) in self.failures() {
                failed.push(
                    aws_sdk_sns::types::BatchResultErrorEntry::builder()
                        .id(id)
                        .sender_fault(sender_fault)
                        .code(code)
                        .build()
                        .expect("a complete entry"),
                );
            }
            let successful = answer
                .successful()
                .iter()
                .filter(|e| !e.id().is_some_and(|id| self.is_faulted(id)));
            *answer = PublishBatchOutput::builder()
                .set_successful(Some(successful.cloned().collect()))
                .set_failed(Some(failed))
                .build();
        }
        Ok(())
    }
}
