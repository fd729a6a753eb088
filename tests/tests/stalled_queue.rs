//! A queue endpoint that accepts connections and never answers: ingest, with the real SQS adapter
//! and SDK client, still answers over real HTTP with 503 and Retry-After, before its function
//! timeout (10 s). Without its own deadline, the SDK's retries would hold the request past that,
//! and API Gateway would answer the client with a bare 5xx.

use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::backend::memory::memory_backend;
use pipeline_tests::{LocalStack, StackOptions};
use shared::aws::AwsClients;
use shared::aws::sqs::SqsQueue;
use shared::ids::UserId;
use shared::memory::QueueSettings;
use shared::users::User;
use tokio::net::TcpListener;

/// The ingest function's timeout in the deployed stack (infra/lib/settings.ts).
const INGEST_FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_queue_endpoint_gets_a_503_with_retry_after_before_the_function_timeout() {
    // GIVEN an "SQS endpoint" on loopback that accepts every connection and never answers
    let stalled = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", stalled.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = stalled.accept().await {
            held.push(connection);
        }
    });
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "stalled", "stalled", None, None, "test",
        ))
        .load()
        .await;
    let clients = AwsClients::new(&config);

    // AND the stack's ingest enqueueing through the real adapter to it
    let (mut backend, _) = memory_backend(QueueSettings::default(), None);
    backend.submissions_queue = Arc::new(SqsQueue::new(
        clients.sqs,
        format!("{endpoint}/000000000000/submissions"),
    ));
    let users = vec![User::active(UserId::parse("alice").unwrap())];
    let stack = LocalStack::start(StackOptions::for_tests(users), backend)
        .await
        .unwrap();

    // WHEN a client posts a score, waiting no longer than the function would run
    let response = reqwest::Client::new()
        .post(format!("{}/v1/scores", stack.url))
        .bearer_auth(stack.token("alice"))
        .header("content-type", "application/json")
        .body(r#"{"heroId":"storm","score":1}"#)
        .timeout(INGEST_FUNCTION_TIMEOUT)
        .send()
        .await
        .expect("ingest answers before the function timeout");

    // THEN it is our 503, saying when to retry
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/queue-unavailable", "{body}");
    assert!(stack.shutdown(Duration::from_secs(1)).await);
    holder.abort();
}
