//! Coverage-guided fuzzing of the whole ingest request path, in process: the router with an
//! HS256 verifier and in-memory queue and store. The first byte of the input picks the route
//! and how the Authorization header is built; the rest is the body (and, for a forged token,
//! the token too), or for a board read the hero id and query string. No input may panic
//! or produce a 5xx.

#![no_main]

#[path = "../../ingest/tests/support/fuzz_input.rs"]
mod fuzz_input;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request};
use ingest::boards::Boards;
use ingest::{App, full_router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use shared::auth::{AuthConfig, TokenAlgorithm, TokenVerifier, VerificationKey};
use shared::memory::{MemoryQueue, MemoryRankIndex, MemoryStore, QueueSettings};
use tower::ServiceExt;

use fuzz_input::leaderboard_path;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let config = AuthConfig {
            algorithm: TokenAlgorithm::Hs256,
            key: VerificationKey::Secret(SECRET.to_vec()),
            issuer: "fuzz".into(),
            audience: "scores".into(),
            leeway_seconds: 0,
            key_id: None,
        };
        // Nothing consumes the queue, so it grows with every accepted input (a few hundred
        // bytes each); runs of hours stay far below libFuzzer's default 2 GB RSS limit.
        let app = Arc::new(App::new(
            TokenVerifier::new(&config).expect("valid settings"),
            Arc::new(MemoryQueue::new("fuzz", QueueSettings::default())),
            Arc::new(MemoryStore::new()),
        ));
        let boards = Arc::new(Boards::new(
            TokenVerifier::new(&config).expect("valid settings"),
            Arc::new(MemoryRankIndex::new()),
        ));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "sub": "alice", "iss": "fuzz", "aud": "scores", "exp": now + 24 * 3600
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("a token");
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
            router: full_router(app, boards),
            token,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let harness = harness();
    let path = match mode & 0b11 {
        0 => "/v1/scores".to_owned(),
        1 => leaderboard_path(rest),
        2 => "/v1/scores/batch".to_owned(),
        _ => "/v1/submissions/0195f3a0-0000-7000-8000-000000000000".to_owned(),
    };
    let (authorization, body) = match (mode >> 2) & 0b11 {
        // The valid token; the whole rest is the body.
        0 | 1 => (format!("Bearer {}", harness.token), rest),
        // A forged token: the rest up to the first newline, then the body.
        2 => {
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let forged = String::from_utf8_lossy(&rest[..split]).into_owned();
            (
                format!("Bearer {forged}"),
                rest.get(split + 1..).unwrap_or_default(),
            )
        }
        _ => (String::new(), rest),
    };
    let method = if path.starts_with("/v1/scores") {
        "POST"
    } else {
        "GET"
    };
    let mut request = Request::builder().method(method).uri(&path).header(
        "content-type",
        if mode & 0x10 == 0 {
            "application/json"
        } else {
            "text/plain"
        },
    );
    if let Ok(value) = HeaderValue::from_str(&authorization) {
        request = request.header("authorization", value);
    }
    if mode & 0x20 != 0 {
        request = request.header("idempotency-key", "fuzz-key");
    }
    let request = request.body(Body::from(body.to_vec())).expect("a request");
    let response = harness
        .runtime
        .block_on(harness.router.clone().oneshot(request))
        .expect("the router is infallible");
    assert!(
        !response.status().is_server_error(),
        "{} for {path} with body {:?}",
        response.status(),
        String::from_utf8_lossy(body)
    );
});
