//! The notifier Lambda: SQS batches from the rejections queue in, a partial batch response out.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use notifier::RejectionNotifier;
use shared::aws::dynamodb::DynamoSubmissionStore;
use shared::aws::{AwsClients, load_sdk_config, sns::SnsNotifier};
use shared::config::{NotifierConfig, ProcessEnv};
use shared::lambda::{ColdStart, invocation_span, work_deadline};
use shared::metrics::{EmfMetrics, Metric};
use tracing::Instrument;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _logs = shared::telemetry::init();
    let config = NotifierConfig::from_env(&ProcessEnv)?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let handler = RejectionNotifier::new(
        Arc::new(SnsNotifier::new(clients.sns, config.rejections_topic_arn)),
        Arc::new(DynamoSubmissionStore::new(
            clients.dynamodb,
            config.submissions_table,
        )),
    );
    let metrics = EmfMetrics::from_env(&ProcessEnv, "notifier");
    let cold_start = ColdStart::new();
    let (handler, metrics, cold_start) = (&handler, &metrics, &cold_start);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let cold = cold_start.take();
        async move {
            let started = std::time::Instant::now();
            let deadline = work_deadline(event.context.deadline);
            let summary = handler.handle(&event.payload.records, deadline).await;
            let mut figures = summary.metrics();
            figures.extend(cold.then(Metric::cold_start));
            metrics.emit_batch(figures, started);
            Ok::<SqsBatchResponse, Error>(summary.into_response())
        }
        .instrument(invocation_span(cold))
    }))
    .await
}
