//! `peer`: a straightforward score-ingest server, for `scripts/compare.sh` only.
//!
//! What a competent team would write in an afternoon with the same crates: axum, jsonwebtoken
//! (HS256, issuer, audience and expiry checked), serde with unknown fields refused, a bounded
//! channel to a task that encodes each message as JSON (as an SQS body would be) and drops it.
//! It is the bar the real ingest router must clear in the comparison; it is not part of the
//! pipeline, and nothing else uses it.
//!
//! Prints `{"url": ..., "tokens": {"alice": ...}}` on stdout when ready; Ctrl-C stops it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pipeline_tests::TokenMinter;
use pipeline_tests::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A straightforward axum + jsonwebtoken + serde ingest server (the comparison's peer).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (port 0 for any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// The HS256 secret tokens are verified with (issuer and audience as the local stack's).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Submission {
    hero_id: String,
    score: u32,
    achieved_at: Option<String>,
    client_ref: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    submission_id: uuid::Uuid,
    user_id: String,
    submission: Submission,
}

struct Peer {
    key: DecodingKey,
    validation: Validation,
    queue: mpsc::Sender<Message>,
}

async fn post_score(State(peer): State<Arc<Peer>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(Ok(token)) =
        token.map(|t| jsonwebtoken::decode::<Claims>(t, &peer.key, &peer.validation))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()) != Some(b"application/json") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let submission = match serde_json::from_slice::<Submission>(&body) {
        Ok(submission) if !submission.hero_id.is_empty() && submission.score <= 1_000_000_000 => {
            submission
        }
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    let submission_id = uuid::Uuid::now_v7();
    let message = Message {
        submission_id,
        user_id: token.claims.sub,
        submission,
    };
    if peer.queue.send(message).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let status_url = format!("/v1/submissions/{submission_id}");
    let body = serde_json::json!({ "submissionId": submission_id, "statusUrl": status_url });
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let minter = TokenMinter::new(args.jwt_secret.as_bytes(), LOCAL_ISSUER, LOCAL_AUDIENCE);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[LOCAL_ISSUER]);
    validation.set_audience(&[LOCAL_AUDIENCE]);
    let (queue, mut messages) = mpsc::channel::<Message>(1024);
    tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            std::hint::black_box(serde_json::to_string(&message).ok());
        }
    });
    let peer = Arc::new(Peer {
        key: DecodingKey::from_secret(args.jwt_secret.as_bytes()),
        validation,
        queue,
    });
    let app = Router::new()
        .route("/v1/scores", post(post_score))
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    let token = minter.mint("alice", 24 * 3600);
    println!(
        "{}",
        serde_json::json!({ "url": format!("http://{addr}"), "tokens": { "alice": token } })
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(pipeline_tests::signals::shutdown_signal())
        .await?;
    Ok(())
}
