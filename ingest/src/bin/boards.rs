//! The boards Lambda: API Gateway (HTTP API) events for `/v1/leaderboards/*` in, board pages
//! and player standings from the rank index out. It runs in the rank index's network and talks
//! to nothing else.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use ingest::Authenticator;
use ingest::boards::Boards;
use shared::config::{BoardsConfig, ProcessEnv};
use shared::lambda::{ColdStart, invocation_span};
use shared::metrics::{EmfMetrics, Metric};
use shared::redis_index::RedisRankIndex;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let _logs = shared::telemetry::init();
    let config = BoardsConfig::from_env(&ProcessEnv)?;
    let verifier = Authenticator::from_config(&config.auth)?;
    // Connects on the first read, so a cold start neither waits for nor fails on the cluster.
    let index = Arc::new(RedisRankIndex::new(&config.rank_index_url)?);
    let boards = Arc::new(Boards::new(verifier, index));
    let metrics = EmfMetrics::from_env(&ProcessEnv, "boards");
    let cold_start = Arc::new(ColdStart::new());
    let first_request = move |request: Request, next: Next| {
        let cold = cold_start.take();
        if cold {
            metrics.emit(&[Metric::cold_start()]);
        }
        next.run(request).instrument(invocation_span(cold))
    };
    lambda_http::run(ingest::boards_router(boards).layer(middleware::from_fn(first_request))).await
}
