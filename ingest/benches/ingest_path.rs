//! The ingest request path in process: the real `ingest::router` driven with tower's `oneshot`
//! (no sockets), so every step a Lambda invocation runs after API Gateway is measured: routing,
//! the correlation-id middleware, bearer-token verification, content-type and body checks,
//! strict parsing and validation, id assignment, building the versioned queue message and
//! encoding it as the SQS message body would be, and the 202 response. The queue port encodes
//! each message and drops it (an in-memory queue would grow without bound over millions of
//! iterations). HS256 and ES256 tokens; single submissions and batches of 100.
//!
//! `single_json_logs` adds the Lambda's JSON log output at `info` (to a sink): the log lines are
//! part of what an invocation costs. The steps are also timed on their own (`ingest_steps`) to
//! show where the time goes.
//!
//! `leaderboard` reads a page of a board of 10,000 players (the in-memory rank index) at 10 and
//! 100 entries through the boards router: routing, token verification, query validation, the
//! page and the JSON answer. The rank index itself, on Redis at 1,000,000 players, has its own
//! bench (`cargo bench -p score-shared --bench rank_index`).
//!
//! Run: `cargo bench -p score-ingest --bench ingest_path` (short by default: 1 s warm-up,
//! 3 s measurement per benchmark; pass `-- --measurement-time 10` for steadier figures).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use ingest::App;
use ingest::boards::Boards;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shared::auth::TokenVerifier;
use shared::board::{BoardChange, BoardRef, Entry};
use shared::config::auth_from_env;
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::memory::{MemoryRankIndex, MemoryStore};
use shared::message::{Principal, QueuedItem, QueuedRequest, REQUEST_MESSAGE_VERSION, encode};
use shared::period::Period;
use shared::ports::{PortError, RankIndex, SubmissionQueue};
use shared::submission::{HeroId, Score, parse_submission};
use time::OffsetDateTime;
use tower::ServiceExt;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "scores-api";
const HS256_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";

/// Encodes each request as its SQS body would be, counts the bytes, keeps nothing.
#[derive(Default)]
struct EncodingQueue {
    bytes: AtomicU64,
}

#[async_trait]
impl SubmissionQueue for EncodingQueue {
    async fn enqueue(
        &self,
        request: &QueuedRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<(), PortError> {
        let body = encode(request);
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        black_box(body);
        Ok(())
    }
}

fn testdata(name: &str) -> String {
    let path = format!("{}/../shared/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A verifier and a token it accepts, configured the way the Lambda is (from its environment).
struct Keys {
    algorithm: &'static str,
    verifier: TokenVerifier,
    token: String,
}

fn keys(algorithm: &'static str) -> Keys {
    let (signing, env_key, env_value, jwt_algorithm) = match algorithm {
        "HS256" => (
            EncodingKey::from_secret(HS256_SECRET.as_bytes()),
            "JWT_SECRET",
            HS256_SECRET.to_owned(),
            Algorithm::HS256,
        ),
        "ES256" => (
            EncodingKey::from_ec_pem(testdata("ec-private.pem").as_bytes()).unwrap(),
            "JWT_PUBLIC_KEY_PEM",
            testdata("ec-public.pem"),
            Algorithm::ES256,
        ),
        other => panic!("no keys for {other}"),
    };
    let env = |name: &str| match name {
        "JWT_ALGORITHM" => Some(algorithm.to_owned()),
        "JWT_ISSUER" => Some(ISSUER.to_owned()),
        "JWT_AUDIENCE" => Some(AUDIENCE.to_owned()),
        n if n == env_key => Some(env_value.clone()),
        _ => None,
    };
    let config = auth_from_env(&env).expect("bench auth configuration");
    let verifier = TokenVerifier::new(&config).expect("bench verifier");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now,
        "exp": now + 24 * 3600, "jti": "bench-token", "scope": "scores:write",
    });
    let token = jsonwebtoken::encode(&Header::new(jwt_algorithm), &claims, &signing).unwrap();
    Keys {
        algorithm,
        verifier,
        token,
    }
}

fn app(verifier: TokenVerifier) -> (axum::Router, Arc<EncodingQueue>) {
    app_with(verifier, MemoryStore::new())
}

fn app_with(verifier: TokenVerifier, store: MemoryStore) -> (axum::Router, Arc<EncodingQueue>) {
    let queue = Arc::new(EncodingQueue::default());
    let app = Arc::new(App::new(verifier, queue.clone(), Arc::new(store)));
    (ingest::router(app), queue)
}

/// The boards router over a rank index holding `count` players on storm's all-time board.
fn boards_with(
    runtime: &tokio::runtime::Runtime,
    verifier: TokenVerifier,
    count: u32,
) -> axum::Router {
    let index = MemoryRankIndex::new();
    let now = OffsetDateTime::now_utc();
    let board = BoardRef {
        hero_id: HeroId::parse("storm").unwrap(),
        board: Period::AllTime.board_of(now.date()),
    };
    let changes: Vec<BoardChange> = (0..count)
        .map(|i| BoardChange::Offer {
            board: board.clone(),
            entry: Entry {
                user_id: UserId::parse(format!("player-{i}")).unwrap(),
                score: Score::new(i * 7 % 1_000_000).unwrap(),
                submission_id: SubmissionId::new_unique(),
                received_at: now,
            },
            expires_at: None,
        })
        .collect();
    runtime.block_on(index.apply(&changes)).unwrap();
    ingest::boards_router(Arc::new(Boards::new(verifier, Arc::new(index))))
}

fn achieved_at() -> String {
    let t = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn single_body(achieved_at: &str) -> String {
    format!(r#"{{"heroId":"storm","score":9001,"achievedAt":"{achieved_at}"}}"#)
}

fn batch_body(achieved_at: &str, n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"heroId":"hero-{}","score":{i},"achievedAt":"{achieved_at}"}}"#,
                i % 8
            )
        })
        .collect();
    format!(r#"{{"submissions":[{}]}}"#, items.join(","))
}

fn request(path: &str, token: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(router: &axum::Router, request: Request<Body>) -> StatusCode {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    black_box(response.into_body().collect().await.unwrap().to_bytes());
    status
}

fn ingest_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let achieved_at = achieved_at();
    let single = single_body(&achieved_at);
    let batch = batch_body(&achieved_at, 100);
    let mut group = c.benchmark_group("ingest_path");
    for algorithm in ["HS256", "ES256"] {
        let Keys {
            algorithm,
            verifier,
            token,
        } = keys(algorithm);
        let (router, queue) = app(verifier);
        for (name, path, body, submissions) in [
            ("single", "/v1/scores", &single, 1u64),
            ("batch100", "/v1/scores/batch", &batch, 100),
        ] {
            // The path under test must be the accepted one.
            let status = runtime.block_on(call(&router, request(path, &token, body)));
            assert_eq!(status, StatusCode::ACCEPTED, "{name} {algorithm}");
            group.throughput(Throughput::Elements(submissions));
            group.bench_function(BenchmarkId::new(name, algorithm), |b| {
                b.to_async(&runtime)
                    .iter(|| call(&router, request(path, &token, body)));
            });
        }
        assert!(queue.bytes.load(Ordering::Relaxed) > 0);
        if algorithm == "HS256" {
            // As deployed: the Lambda's JSON log lines at info (one per submission, plus the
            // request span), written to a sink.
            let _logs = tracing::subscriber::set_default(lambda_json_logs());
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new("single_json_logs", algorithm), |b| {
                b.to_async(&runtime)
                    .iter(|| call(&router, request("/v1/scores", &token, &single)));
            });
        }
    }
    group.finish();
}

fn leaderboard(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Keys {
        verifier, token, ..
    } = keys("HS256");
    let router = boards_with(&runtime, verifier, 10_000);
    let read = |path: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut group = c.benchmark_group("leaderboard");
    for entries in [10, 100] {
        let path = format!("/v1/leaderboards/storm?limit={entries}");
        let status = runtime.block_on(call(&router, read(&path)));
        assert_eq!(status, StatusCode::OK, "{path}");
        group.bench_function(BenchmarkId::new("read", entries), |b| {
            b.to_async(&runtime).iter(|| call(&router, read(&path)));
        });
    }
    group.finish();
}

/// The Lambda's log format (shared::telemetry under Lambda) at `info`, written to a sink.
fn lambda_json_logs() -> impl tracing::Subscriber + Send + Sync {
    shared::telemetry::lambda_json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        std::io::sink,
    )
}

fn ingest_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_steps");
    for algorithm in ["HS256", "ES256"] {
        let keys = keys(algorithm);
        assert!(keys.verifier.verify(&keys.token).is_ok());
        group.bench_function(BenchmarkId::new("verify_token", keys.algorithm), |b| {
            b.iter(|| keys.verifier.verify(black_box(&keys.token)).unwrap());
        });
    }
    let body = single_body(&achieved_at());
    let now = OffsetDateTime::now_utc();
    group.bench_function("parse_and_validate_single", |b| {
        b.iter(|| parse_submission(black_box(body.as_bytes()), now).unwrap());
    });
    let submission = parse_submission(body.as_bytes(), now).unwrap();
    let message = QueuedRequest {
        v: REQUEST_MESSAGE_VERSION,
        correlation_id: CorrelationId::generate(),
        received_at: now,
        principal: Principal {
            subject: UserId::parse("alice").unwrap(),
            token_id: Some("bench-token".to_owned()),
            scopes: vec!["scores:write".to_owned()],
        },
        submissions: vec![QueuedItem {
            submission_id: SubmissionId::new_unique(),
            submission,
        }],
    };
    group.bench_function("encode_queue_message", |b| {
        b.iter(|| encode(black_box(&message)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = ingest_path, ingest_steps, leaderboard
}
criterion_main!(benches);
