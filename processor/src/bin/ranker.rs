//! The ranker Lambda: the submissions table's stream in (a DynamoDB event source mapping), the
//! rank index's boards brought up to date, a partial batch response out.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use processor::ranker::{FeedRecord, Ranker};
use shared::config::{ProcessEnv, RankerConfig};
use shared::lambda::{ColdStart, invocation_span, work_deadline};
use shared::metrics::{EmfMetrics, Metric};
use shared::redis_index::RedisRankIndex;
use tracing::Instrument;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _logs = shared::telemetry::init();
    let config = RankerConfig::from_env(&ProcessEnv)?;
    let ranker = Ranker::new(Arc::new(RedisRankIndex::from_settings(&config.rank_index)?));
    let metrics = EmfMetrics::from_env(&ProcessEnv, "ranker");
    let cold_start = ColdStart::new();
    let (ranker, metrics, cold_start) = (&ranker, &metrics, &cold_start);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let cold = cold_start.take();
        async move {
            let started = std::time::Instant::now();
            let deadline = work_deadline(event.context.deadline);
            let records: Vec<FeedRecord> = event
                .payload
                .records
                .iter()
                .map(FeedRecord::from_stream)
                .collect();
            let summary = ranker.rank(&records, deadline).await;
            let mut figures = summary.metrics();
            figures.extend(cold.then(Metric::cold_start));
            metrics.emit_batch(figures, started);
            Ok::<DynamoDbEventResponse, Error>(summary.into_response())
        }
        .instrument(invocation_span(cold))
    }))
    .await
}
