//! A bounded, seeded mutation fuzz of the request path on stable Rust: valid and hostile seed
//! requests are mutated byte by byte and sent through the router in process. No input may panic
//! or produce a 5xx. The coverage-guided target is `fuzz/fuzz_targets/request.rs` (cargo fuzz).
//! FUZZ_SMOKE_ITERATIONS and FUZZ_SMOKE_SEED tune a run; the seed is printed.

#[path = "support/fuzz_input.rs"]
mod fuzz_input;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ingest::boards::Boards;
use ingest::{App, full_router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use shared::auth::{AuthConfig, TokenAlgorithm, TokenVerifier, VerificationKey};
use shared::memory::{MemoryQueue, MemoryRankIndex, MemoryStore, QueueSettings};
use tower::ServiceExt;

use fuzz_input::leaderboard_path;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
const DEFAULT_ITERATIONS: usize = 20_000;

fn token() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "sub": "alice", "iss": "fuzz", "aud": "scores", "exp": now + 3600 });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"heroId":"storm","score":9001}"#,
        r#"{"heroId":"storm","score":1,"achievedAt":"2026-01-01T00:00:00Z","clientRef":"r-1"}"#,
        r#"{"submissions":[{"heroId":"a","score":1},{"heroId":"b","score":2,"clientRef":"x"}]}"#,
        r#"{"heroId":"a","score":1e3,"score":2}"#,
        r#"[[[[{"heroId":null}]]]]"#,
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Board reads to mutate: a hero id, `?`, then the query string.
const LEADERBOARD_SEEDS: &[&str] = &[
    "storm",
    "storm?limit=10",
    "storm?limit=100&limit=1",
    "s?page=2&limit=0",
    "storm?limit=%31%30&+=%",
    "storm?period=weekly&date=2026-11-30&cursor=bm90IGEgY3Vyc29y",
    "storm/players/me?around=25&period=daily",
    "storm/players/auth0%7Cbob?around=0",
];

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"-1",
        b"1e309",
        b"\\u0000",
        b"\xff",
        b"null",
        b"9999999999999999999999",
    ];
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = if out.is_empty() {
            0
        } else {
            rng.random_range(0..=out.len())
        };
        match rng.random_range(0..5u8) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !out.is_empty() => {
                let end = (at + rng.random_range(1..8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let piece = INTERESTING[rng.random_range(0..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            3 => out.splice(at..at, [rng.random::<u8>()]).for_each(drop),
            _ => {
                let copy: Vec<u8> = out.clone();
                out.splice(at..at, copy.into_iter().take(64));
            }
        }
    }
    out
}

#[tokio::test]
async fn mutated_requests_never_panic_or_fail_the_server() {
    let seed: u64 = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let iterations: usize = std::env::var("FUZZ_SMOKE_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    println!("fuzz smoke: {iterations} requests, seed {seed} (repeat with FUZZ_SMOKE_SEED={seed})");
    let config = AuthConfig {
        algorithm: TokenAlgorithm::Hs256,
        key: VerificationKey::Secret(SECRET.to_vec()),
        issuer: "fuzz".into(),
        audience: "scores".into(),
        leeway_seconds: 0,
        key_id: None,
    };
    let app = Arc::new(App::new(
        TokenVerifier::new(&config).unwrap(),
        Arc::new(MemoryQueue::new("fuzz", QueueSettings::default())),
        Arc::new(MemoryStore::new()),
    ));
    let boards = Arc::new(Boards::new(
        TokenVerifier::new(&config).unwrap(),
        Arc::new(MemoryRankIndex::new()),
    ));
    let router = full_router(app, boards);
    let token = token();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut accepted = 0;
    for _ in 0..iterations {
        let seed_body = &seeds[rng.random_range(0..seeds.len())];
        let body = mutate(&mut rng, seed_body);
        let (method, path) = match rng.random_range(0..5u8) {
            0 | 1 => ("POST", "/v1/scores".to_owned()),
            2 | 3 => ("POST", "/v1/scores/batch".to_owned()),
            _ => {
                let seed = LEADERBOARD_SEEDS[rng.random_range(0..LEADERBOARD_SEEDS.len())];
                ("GET", leaderboard_path(&mutate(&mut rng, seed.as_bytes())))
            }
        };
        let authorization = if rng.random_bool(0.9) {
            format!("Bearer {token}")
        } else {
            format!(
                "Bearer {}",
                String::from_utf8_lossy(&mutate(&mut rng, token.as_bytes()))
            )
        };
        let mut request = Request::builder()
            .method(method)
            .uri(&path)
            .header("content-type", "application/json");
        if let Ok(value) = axum::http::HeaderValue::from_str(&authorization) {
            request = request.header("authorization", value);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body.clone())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{status} for {method} {path} with body {:?} (seed {seed})",
            String::from_utf8_lossy(&body)
        );
        if status.is_success() {
            accepted += 1;
        }
    }
    println!(
        "fuzz smoke: {accepted} of {iterations} mutated requests were still valid and answered 2xx"
    );
}
