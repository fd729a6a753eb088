//! The boards Lambda: API Gateway (HTTP API) events for `/v1/leaderboards/*` in, board pages
//! and player standings from the rank index out. It runs in the rank index's network and talks
//! to nothing else.

use std::sync::Arc;

use ingest::Authenticator;
use ingest::boards::Boards;
use shared::config::{BoardsConfig, ProcessEnv};
use shared::redis_index::RedisRankIndex;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let _logs = shared::telemetry::init();
    let config = BoardsConfig::from_env(&ProcessEnv)?;
    let verifier = Authenticator::from_config(&config.auth)?;
    // Connects on the first read, so a cold start neither waits for nor fails on the cluster.
    let index = Arc::new(RedisRankIndex::from_settings(&config.rank_index)?);
    let boards = Arc::new(Boards::new(verifier, index));
    ingest::run_on_lambda(ingest::boards_router(boards), "boards").await
}
