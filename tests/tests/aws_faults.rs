//! Faults below the adapters, over real HTTP to moto: an SDK interceptor answers chosen calls
//! with ThrottlingException, as AWS does under load, and the pipeline must retry or report.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use pipeline_tests::backend::aws::{AwsResources, aws_backend, rank_index_from_env};
use pipeline_tests::{LocalStack, StackOptions};
use processor::{Ports, Processor, UserCache};
use shared::aws::dynamodb::{DynamoSubmissionStore, DynamoUserDirectory};
use shared::aws::faults::ThrottleInjector;
use shared::aws::provision::QueueProvisioning;
use shared::aws::sqs::SqsQueue;
use shared::aws::{AwsClients, load_sdk_config};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::message::{MESSAGE_VERSION, Principal, QueuedSubmission, encode};
use shared::ports::SubmissionStore;
use shared::record::SubmissionKey;
use shared::submission::{HeroId, Score, ScoreSubmission};
use shared::users::User;
use time::OffsetDateTime;
use tokio::time::Instant;

async fn sdk_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("MOTO_ENDPOINT").is_ok_and(|v| !v.is_empty()),
        "MOTO_ENDPOINT is not set: run these tests through `scripts/moto.sh run -- cargo test` (make test does this)"
    );
    load_sdk_config().await
}

async fn provision(clients: &AwsClients) -> AwsResources {
    let prefix = format!(
        "faults-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let queues = QueueProvisioning {
        visibility_timeout_seconds: 1,
        max_receive_count: 3,
    };
    AwsResources::provision(clients, &prefix, queues)
        .await
        .unwrap()
}

fn dynamodb_with(
    config: &aws_config::SdkConfig,
    injector: &ThrottleInjector,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(injector.clone())
            .build(),
    )
}

fn records(user: &str, count: u32) -> (Vec<SqsMessage>, Vec<SubmissionId>) {
    (0..count)
        .map(|i| {
            let message = QueuedSubmission {
                v: MESSAGE_VERSION,
                submission_id: SubmissionId::new_unique(),
                correlation_id: CorrelationId::generate(),
                received_at: OffsetDateTime::now_utc(),
                principal: Principal {
                    subject: UserId::parse(user).unwrap(),
                    token_id: None,
                    scopes: vec![],
                },
                submission: ScoreSubmission {
                    hero_id: HeroId::parse("storm").unwrap(),
                    score: Score::new(i).unwrap(),
                    achieved_at: None,
                    client_ref: None,
                },
            };
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m{i}"));
            record.body = Some(encode(&message));
            (record, message.submission_id)
        })
        .unzip()
}

/// A processor whose store's PutItem calls go through `injector`.
async fn processor_with_throttled_store(
    injector: &ThrottleInjector,
) -> (Processor, DynamoSubmissionStore) {
    let config = sdk_config().await;
    let clients = AwsClients::new(&config);
    let resources = provision(&clients).await;
    let directory = DynamoUserDirectory::new(clients.dynamodb.clone(), &resources.users_table);
    directory
        .put_user(&User::active(UserId::parse("alice").unwrap()))
        .await
        .unwrap();
    let store = DynamoSubmissionStore::new(
        dynamodb_with(&config, injector),
        &resources.submissions_table,
    );
    let processor = Processor::new(
        Ports {
            users: Arc::new(directory),
            store: Arc::new(store.clone()),
            rejections: Arc::new(SqsQueue::new(
                clients.sqs.clone(),
                &resources.rejections_queue_url,
            )),
        },
        UserCache::new(Duration::from_secs(60)),
    );
    (processor, store)
}

#[tokio::test]
async fn throttled_store_writes_are_retried_and_the_batch_succeeds() {
    let injector = ThrottleInjector::first("PutItem", 3);
    let (processor, store) = processor_with_throttled_store(&injector).await;
    let (batch, ids) = records("alice", 30);
    let summary = processor
        .process(&batch, Instant::now() + Duration::from_secs(30))
        .await;
    assert!(summary.failed_message_ids.is_empty(), "{summary:?}");
    assert_eq!(injector.injected(), 3, "the throttling really happened");
    for id in ids {
        let key = SubmissionKey::new(UserId::parse("alice").unwrap(), id);
        assert!(
            store.get(&key).await.unwrap().is_some(),
            "{id} was not stored"
        );
    }
}

#[tokio::test]
async fn a_store_that_stays_throttled_reports_exactly_the_unwritten_records() {
    let injector = ThrottleInjector::always("PutItem");
    let (processor, store) = processor_with_throttled_store(&injector).await;
    let (batch, ids) = records("alice", 30);
    let summary = processor
        .process(&batch, Instant::now() + Duration::from_secs(3))
        .await;
    let mut failed = summary.failed_message_ids.clone();
    failed.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(
        failed, expected,
        "every record's write was refused, so every record is retried"
    );
    assert!(injector.injected() >= 30, "every record's put was tried");
    for id in ids {
        let key = SubmissionKey::new(UserId::parse("alice").unwrap(), id);
        assert!(store.get(&key).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_queue_that_stays_throttled_makes_ingest_answer_503_and_accepts_nothing() {
    let config = sdk_config().await;
    let plain = AwsClients::new(&config);
    let resources = provision(&plain).await;
    let injector = ThrottleInjector::always("SendMessage");
    let throttled_sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(injector.clone())
            .build(),
    );
    let endpoint =
        std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run through scripts/moto.sh");
    let rank_index = rank_index_from_env(&resources.submissions_table)
        .unwrap_or_else(|reason| panic!("{reason}"));
    let mut backend = aws_backend(
        &plain,
        resources.clone(),
        Duration::from_secs(1),
        &endpoint,
        rank_index,
    );
    backend.submissions_queue = Arc::new(SqsQueue::new(
        throttled_sqs,
        &resources.submissions_queue_url,
    ));
    let users = vec![User::active(UserId::parse("alice").unwrap())];
    let stack = LocalStack::start(StackOptions::for_tests(users), backend)
        .await
        .unwrap();

    let response = reqwest::Client::new()
        .post(format!("{}/v1/scores", stack.url))
        .bearer_auth(stack.token("alice"))
        .header("content-type", "application/json")
        .body(r#"{"heroId":"storm","score":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    assert!(
        injector.injected() >= 2,
        "the send was retried before giving up"
    );
    assert!(stack.wait_until_drained(Duration::from_secs(5)).await);
    assert_eq!(stack.stored_count().await, 0, "nothing was accepted");
}
