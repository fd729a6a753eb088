//! The ingest Lambda: API Gateway (HTTP API) events in, the ingest router out.

use std::sync::Arc;

use ingest::{App, Authenticator};
use shared::aws::{AwsClients, dynamodb::DynamoSubmissionStore, load_sdk_config, sqs::SqsQueue};
use shared::config::{IngestConfig, ProcessEnv};

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let _logs = shared::telemetry::init();
    // Configuration and clients are built once per cold start; a bad setting stops the cold
    // start with a message naming the variable.
    let config = IngestConfig::from_env(&ProcessEnv)?;
    let verifier = Authenticator::from_config(&config.auth)?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let queue = Arc::new(SqsQueue::new(clients.sqs, config.submissions_queue_url));
    let store = Arc::new(DynamoSubmissionStore::new(
        clients.dynamodb,
        config.submissions_table,
    ));
    let app = Arc::new(App::new(verifier, queue, store).with_burst_limit(config.burst_limit));
    ingest::run_on_lambda(ingest::router(app), "ingest").await
}
