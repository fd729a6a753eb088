//! The processor Lambda: SQS batches from the submissions queue in, a partial batch response out.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use processor::{Ports, Processor, Quota, UserCache};
use shared::aws::dynamodb::{DynamoQuotaCounter, DynamoSubmissionStore, DynamoUserDirectory};
use shared::aws::{AwsClients, load_sdk_config, sqs::SqsQueue};
use shared::config::{ProcessEnv, ProcessorConfig, QuotaCounterSettings};
use shared::lambda::{ColdStart, invocation_span, work_deadline};
use shared::metrics::{EmfMetrics, Metric};
use shared::ports::QuotaCounter;
use shared::redis_quota::RedisQuotaCounter;
use tracing::Instrument;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _logs = shared::telemetry::init();
    let config = ProcessorConfig::from_env(&ProcessEnv)?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let mut processor = Processor::new(
        Ports {
            users: Arc::new(DynamoUserDirectory::new(
                clients.dynamodb.clone(),
                config.users_table,
            )),
            store: Arc::new(DynamoSubmissionStore::new(
                clients.dynamodb.clone(),
                config.submissions_table,
            )),
            rejections: Arc::new(SqsQueue::new(clients.sqs, config.rejections_queue_url)),
        },
        UserCache::new(config.user_cache_ttl),
    );
    if let Some(max_receive_count) = config.max_receive_count {
        processor = processor.with_max_receive_count(max_receive_count);
    }
    if let Some(quota) = config.quota {
        let counter: Arc<dyn QuotaCounter> = match quota.counter {
            QuotaCounterSettings::Table(table) => {
                Arc::new(DynamoQuotaCounter::new(clients.dynamodb, table))
            }
            // Connects on the first count, not here: a cold start does not wait on the cache.
            QuotaCounterSettings::Cache(cache) => {
                Arc::new(RedisQuotaCounter::from_settings(&cache)?)
            }
        };
        processor = processor.with_quota(Quota {
            policy: quota.policy,
            counter,
        });
    }
    let metrics = EmfMetrics::from_env(&ProcessEnv, "processor");
    let cold_start = ColdStart::new();
    let (processor, metrics, cold_start) = (&processor, &metrics, &cold_start);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let cold = cold_start.take();
        async move {
            let started = std::time::Instant::now();
            let deadline = work_deadline(event.context.deadline);
            let summary = processor.process(&event.payload.records, deadline).await;
            let mut figures = summary.metrics();
            figures.extend(cold.then(Metric::cold_start));
            metrics.emit_batch(figures, started);
            Ok::<SqsBatchResponse, Error>(summary.into_response())
        }
        .instrument(invocation_span(cold))
    }))
    .await
}
