//! The ingest Lambda: API Gateway (HTTP API) events in, the ingest router out.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use ingest::{App, Authenticator};
use shared::aws::{AwsClients, dynamodb::DynamoSubmissionStore, load_sdk_config, sqs::SqsQueue};
use shared::config::{IngestConfig, ProcessEnv};
use shared::lambda::{ColdStart, invocation_span};
use shared::metrics::{EmfMetrics, Metric};
use tracing::Instrument;

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
    // The first request of this environment writes the function's only EMF line, `ColdStart`,
    // and its log lines carry `cold_start: true` (shared::lambda::invocation_span).
    let metrics = EmfMetrics::from_env(&ProcessEnv, "ingest");
    let cold_start = Arc::new(ColdStart::new());
    let first_request = move |request: Request, next: Next| {
        let cold = cold_start.take();
        if cold {
            metrics.emit(&[Metric::cold_start()]);
        }
        next.run(request).instrument(invocation_span(cold))
    };
    lambda_http::run(ingest::router(app).layer(middleware::from_fn(first_request))).await
}
