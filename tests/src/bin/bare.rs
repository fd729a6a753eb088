//! `bare`: the ceiling of this HTTP stack (tokio + hyper + axum). It answers `POST /v1/scores`
//! and `POST /v1/scores/batch` with a 202 shaped like the ingest API's (same headers, a body of
//! the same size) after reading the request body, without parsing it, verifying the token or
//! enqueueing anything. `scripts/compare.sh` measures the local stack against it.
//!
//! Prints `{"url": ...}` on stdout when ready; Ctrl-C (or SIGTERM) stops it.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Parser;

/// A bare axum server answering 202 to score submissions without looking at them.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (port 0 for any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
}

const SUBMISSION_ID: &str = "019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b";
const STATUS_URL: &str = "/v1/submissions/019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b";
const BODY: &str = r#"{"submissionId":"019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b","statusUrl":"/v1/submissions/019aa7b2-5f3e-7c1d-9a4b-2f6c8e0d1a3b"}"#;
const CORRELATION_ID: &str = "019aa7b2-5f3e-7c1d-9a4b-000000000000";

async fn accepted(_body: Bytes) -> impl IntoResponse {
    debug_assert!(BODY.contains(SUBMISSION_ID));
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let app = Router::new()
        .route("/v1/scores", post(accepted))
        .route("/v1/scores/batch", post(accepted));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("{}", serde_json::json!({ "url": format!("http://{addr}") }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
