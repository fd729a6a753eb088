//! `bare`: the ceiling of this HTTP stack (tokio + hyper + axum), for `scripts/compare.sh`.
//!
//! By default (`--app bare`) it answers `POST /v1/scores` and `POST /v1/scores/batch` with a
//! 202 shaped like the ingest API's (same headers, a body of the same size) after reading the
//! request body, without parsing it, verifying the token or enqueueing anything.
//!
//! With `--app ingest` it serves the real ingest router (token verification, validation, ids,
//! queue messages) on a queue port that encodes each message and drops it: the ingest function
//! alone, without the processor and notifier that share the local stack's process. Comparing
//! the three (bare, ingest alone, the whole local stack) shows where the time goes.
//!
//! Prints `{"url": ..., "tokens": {...}}` on stdout when ready (a token for `alice` with
//! `--app ingest`); Ctrl-C (or SIGTERM) stops it.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use clap::{Parser, ValueEnum};
use pipeline_tests::TokenMinter;
use pipeline_tests::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER};
use shared::auth::TokenVerifier;
use shared::memory::MemoryStore;
use shared::message::{QueuedRequest, encode};
use shared::ports::{PortError, SubmissionQueue};

// The ingest function's allocator, so that `--app ingest` measures what deploys; the ceiling
// runs on it too, which keeps the two comparable.
#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

/// A bare axum server answering 202 to score submissions without looking at them (or, with
/// `--app ingest`, the ingest router alone on a queue that drops what it is given).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (port 0 for any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// What to serve.
    #[arg(long, value_enum, default_value_t = AppKind::Bare)]
    app: AppKind,

    /// With --app ingest: the HS256 secret tokens are verified with (issuer and audience as
    /// the local stack's).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AppKind {
    /// 202 without reading more than the body bytes.
    Bare,
    /// The ingest router, with messages encoded and dropped.
    Ingest,
}

const STATUS_URL: &str = "/v1/submissions/019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b";
const BODY: &str = r#"{"submissionId":"019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b","statusUrl":"/v1/submissions/019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b"}"#;
const CORRELATION_ID: &str = "019aa7b2-5f3e-7c1d-9a4b-000000000000";

async fn accepted(_body: Bytes) -> impl IntoResponse {
    (
        StatusCode::ACCEPTED,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::LOCATION, HeaderValue::from_static(STATUS_URL)),
            (
                HeaderName::from_static("x-correlation-id"),
                HeaderValue::from_static(CORRELATION_ID),
            ),
        ],
        BODY,
    )
}

/// Encodes each request as its SQS body would be and keeps nothing, so memory stays flat.
struct DroppingQueue;

#[async_trait]
impl SubmissionQueue for DroppingQueue {
    async fn enqueue(
        &self,
        request: &QueuedRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<(), PortError> {
        std::hint::black_box(encode(request));
        Ok(())
    }
}

/// The app, and the tokens to print in the ready line (as `local` does).
fn app(args: &Args) -> Result<(Router, serde_json::Value), Box<dyn std::error::Error>> {
    Ok(match args.app {
        AppKind::Bare => (
            Router::new()
                .route("/v1/scores", post(accepted))
                .route("/v1/scores/batch", post(accepted)),
            serde_json::json!({}),
        ),
        AppKind::Ingest => {
            let secret = args
                .jwt_secret
                .as_deref()
                .ok_or("--app ingest needs --jwt-secret (or JWT_SECRET)")?;
            let minter = TokenMinter::new(secret.as_bytes(), LOCAL_ISSUER, LOCAL_AUDIENCE);
            let router = ingest::router(Arc::new(ingest::App::new(
                TokenVerifier::new(&minter.auth_config())?,
                Arc::new(DroppingQueue),
                Arc::new(MemoryStore::new()),
            )));
            (
                router,
                serde_json::json!({ "alice": minter.mint("alice", 24 * 3600) }),
            )
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Only the ingest app logs; the bare one has nothing to say.
    let _logs = (args.app == AppKind::Ingest).then(shared::telemetry::init);
    let (app, tokens) = app(&args)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    println!(
        "{}",
        serde_json::json!({ "url": format!("http://{addr}"), "tokens": tokens })
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(pipeline_tests::signals::shutdown_signal())
        .await?;
    Ok(())
}
