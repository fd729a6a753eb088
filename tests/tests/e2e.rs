//! End-to-end: real HTTP against the assembled pipeline (ingest -> queue -> processor -> store,
//! rejections -> queue -> notifier), with fault injection on every port. Every scenario runs
//! on the in-memory backend and on the AWS adapters against moto (which `make test` starts;
//! without MOTO_ENDPOINT the aws variants fail and say so). Every scenario that needs no fault
//! injection and no redelivery also runs on the emulated deployment: the synthesized CDK stack
//! deployed into moto, the real Lambda binaries, API Gateway and the event source mappings
//! played from the deployed resources (`pipeline_tests::emulate`). Redelivery there waits for
//! the deployed visibility timeout (three minutes), and the binaries cannot be given faults.

use std::time::Duration;

use pipeline_tests::backend::aws::{
    AwsResources, aws_backend, quota_counter_in_cache_from_env, rank_index_from_env,
};
use pipeline_tests::backend::memory::memory_backend;
use pipeline_tests::emulate::start_for_tests;
use pipeline_tests::{Backend, LocalStack, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::aws::provision::QueueProvisioning;
use shared::aws::{AwsClients, load_sdk_config};
use shared::faults::Times;
use shared::ids::{SubmissionId, UserId};
use shared::limits::MAX_BODY_BYTES;
use shared::memory::QueueSettings;
use shared::ports::PortError;
use shared::quota::QuotaPolicy;
use shared::record::Outcome;
use shared::rejection::RejectionReason;
use shared::users::User;

const DRAIN: Duration = Duration::from_secs(30);
/// Receives after which a message is dead-lettered, on both backends.
const MAX_RECEIVE_COUNT: u32 = 3;
/// Submissions each user may make per hour in these stacks: more than any scenario but the quota
/// one sends for one user.
const HOURLY_QUOTA: u32 = 25;

fn options() -> StackOptions {
    let mut options = StackOptions::for_tests(users());
    // Every batch reads the directory, so a suspension takes effect at once.
    options.user_cache_ttl = Duration::ZERO;
    options.quota = Some(QuotaPolicy::new(HOURLY_QUOTA, Duration::from_secs(3600)).unwrap());
    options
}

fn users() -> Vec<User> {
    vec![
        User::active(UserId::parse("alice").unwrap()),
        User::active(UserId::parse("bob").unwrap()),
        User::suspended(UserId::parse("mallory").unwrap()),
    ]
}

async fn memory_stack() -> LocalStack {
    let settings = QueueSettings {
        visibility_timeout: Duration::from_millis(100),
        max_receive_count: MAX_RECEIVE_COUNT,
    };
    let (backend, _) = memory_backend(settings, None);
    LocalStack::start(options(), backend).await.unwrap()
}

async fn aws_stack() -> LocalStack {
    moto_endpoint();
    let clients = AwsClients::new(&load_sdk_config().await);
    let prefix = format!("e2e-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let queues = QueueProvisioning {
        visibility_timeout_seconds: 1,
        max_receive_count: MAX_RECEIVE_COUNT,
    };
    let resources = AwsResources::provision(&clients, &prefix, queues)
        .await
        .unwrap();
    let rank_index = rank_index_from_env(&prefix).unwrap_or_else(|reason| panic!("{reason}"));
    let mut backend: Backend = aws_backend(
        &clients,
        resources,
        Duration::from_secs(1),
        &moto_endpoint(),
        rank_index,
    );
    backend.max_receive_count = Some(MAX_RECEIVE_COUNT);
    // The quota counted where the stack deploys it by default: in the cache.
    backend.quota_counter =
        Some(quota_counter_in_cache_from_env(&prefix).unwrap_or_else(|reason| panic!("{reason}")));
    let mut options = options();
    options.processor_poll.wait = Duration::from_secs(1);
    options.notifier_poll.wait = Duration::from_secs(1);
    LocalStack::start(options, backend).await.unwrap()
}

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "MOTO_ENDPOINT is not set: the aws-backend and emulated end-to-end tests run against \
             moto; run them through `scripts/moto.sh run -- cargo test` (make test does this)"
        ),
    }
}

async fn emulated_stack() -> LocalStack {
    start_for_tests(users(), |_| {}).await.stack
}

/// Generates one test per scenario (an `async fn(LocalStack)`) and backend: the scenarios in
/// `everywhere` on the memory backend, the AWS adapters against moto and the emulated
/// deployment; those in `not_emulated` (they inject faults, or wait for redeliveries that the
/// deployed three-minute visibility timeout would hold back) on the first two only.
macro_rules! scenarios {
    (
        everywhere: [$($all:ident),* $(,)?],
        not_emulated: [$($local:ident),* $(,)?] $(,)?
    ) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $all() {
                    super::$all(super::memory_stack().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $local() {
                    super::$local(super::memory_stack().await).await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $all() {
                    super::$all(super::aws_stack().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $local() {
                    super::$local(super::aws_stack().await).await;
                }
            )*
        }
        mod emulated {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $all() {
                    super::$all(super::emulated_stack().await).await;
                }
            )*
        }
    };
}

scenarios! {
    everywhere: [
        an_active_users_submission_is_stored_and_its_status_becomes_accepted,
        a_suspended_users_submission_is_rejected_and_notified_exactly_once,
        an_unknown_user_is_rejected_with_its_reason,
        a_retry_with_the_same_idempotency_key_gets_the_same_id_and_is_stored_once,
        a_batch_is_accepted_in_request_order_and_every_item_is_stored,
        an_invalid_batch_item_refuses_the_whole_batch,
        invalid_json_is_a_400_invalid_json_problem,
        invalid_fields_are_a_400_with_errors_per_field,
        an_invalid_idempotency_key_is_a_400_naming_the_header,
        a_repeated_idempotency_key_is_a_400_on_every_front,
        a_missing_or_bad_token_is_a_401_with_www_authenticate,
        unknown_routes_and_unknown_ids_are_a_404,
        another_users_submission_looks_like_one_not_yet_processed,
        a_body_over_the_limit_is_a_413,
        a_body_that_is_not_json_is_a_415,
        shutdown_drains_queued_work_first,
        the_correlation_id_is_echoed_and_travels_to_the_notification,
        submissions_over_the_users_quota_are_rejected_as_rate_limited_and_notified,
        a_rejected_submission_retried_five_times_with_its_key_is_notified_once,
        a_retry_after_the_user_was_suspended_leaves_the_accepted_verdict_standing,
        a_reused_key_with_another_score_leaves_the_first_stored_and_reports_the_conflict,
        a_board_holds_each_players_best_once_and_ranks_the_earlier_of_equal_scores_first,
        a_players_standing_and_the_page_around_them_agree_with_the_board,
        cursors_page_through_a_board_of_250_players_with_no_repeat_and_no_gap,
        a_revocation_takes_the_player_off_every_board_and_their_next_best_stays_off,
        a_board_read_needs_a_token_and_valid_parameters,
    ],
    not_emulated: [
        a_queue_that_keeps_refusing_gets_a_503_and_nothing_is_accepted,
        a_record_that_fails_transiently_is_retried_and_then_stored,
        a_record_that_always_fails_ends_in_the_dead_letters_and_nothing_else_is_lost,
        a_board_the_rank_index_cannot_serve_is_a_503_and_ranking_catches_up_after_faults,
        a_parked_submission_shows_failed_and_after_a_redrive_its_outcome,
    ],
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(stack: &LocalStack) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: stack.url.clone(),
        }
    }

    fn post(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn post_json(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .post(path, Some(token))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        read(response).await
    }

    fn get(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn status_of(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/v1/submissions/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        read(response).await
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn score(hero: &str, points: u32) -> Value {
    json!({ "heroId": hero, "score": points })
}

fn id_of(body: &Value) -> SubmissionId {
    SubmissionId::parse(body["submissionId"].as_str().unwrap()).unwrap()
}

async fn outcome(stack: &LocalStack, user: &str, id: SubmissionId) -> Option<Outcome> {
    stack
        .stored(&UserId::parse(user).unwrap(), id)
        .await
        .map(|r| r.outcome)
}

/// Asserts the response is problem JSON of the given type and returns its body.
async fn expect_problem(response: reqwest::Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are RFC 9457 problem JSON"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Asserts the response is a 503 problem of the given type that says when to retry.
async fn expect_retry_later(response: reqwest::Response, slug: &str) {
    assert_eq!(response.headers()["retry-after"], "2");
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE, slug).await;
}

async fn an_active_users_submission_is_stored_and_its_status_becomes_accepted(stack: LocalStack) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    let (status, body) = client
        .post_json("/v1/scores", &token, &score("storm", 9001))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = id_of(&body);
    assert_eq!(body["statusUrl"], format!("/v1/submissions/{id}"));

    assert!(stack.wait_until_drained(DRAIN).await);
    let record = stack
        .stored(&UserId::parse("alice").unwrap(), id)
        .await
        .unwrap();
    assert_eq!(record.outcome, Outcome::Accepted);
    assert_eq!(record.score.get(), 9001);
    assert_eq!(record.user_id.as_str(), "alice");
    let (status, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "accepted");
    assert_eq!(view["submissionId"], id.to_string());
    assert!(stack.published().await.is_empty());
}

async fn a_suspended_users_submission_is_rejected_and_notified_exactly_once(stack: LocalStack) {
    let client = Client::new(&stack);
    let token = stack.token("mallory");
    let (status, body) = client
        .post_json("/v1/scores", &token, &score("storm", 5))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = id_of(&body);

    assert!(stack.wait_until_drained(DRAIN).await);
    let published = stack.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].submission_id, id);
    assert_eq!(published[0].reason, RejectionReason::SuspendedUser);
    assert_eq!(published[0].user_id.as_str(), "mallory");
    let (_, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(view["status"], "rejected");
    assert_eq!(view["reason"], "suspended_user");
}

async fn an_unknown_user_is_rejected_with_its_reason(stack: LocalStack) {
    let client = Client::new(&stack);
    let (_, body) = client
        .post_json("/v1/scores", &stack.token("ghost"), &score("storm", 5))
        .await;
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        outcome(&stack, "ghost", id_of(&body)).await,
        Some(Outcome::Rejected(RejectionReason::UnknownUser))
    );
}

async fn a_retry_with_the_same_idempotency_key_gets_the_same_id_and_is_stored_once(
    stack: LocalStack,
) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = client
            .post("/v1/scores", Some(&token))
            .header("content-type", "application/json")
            .header("idempotency-key", "run-7-attempt")
            .body(score("storm", 70).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(id_of(&response.json().await.unwrap()));
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        ids[0],
        SubmissionId::from_idempotency_key(&UserId::parse("alice").unwrap(), "run-7-attempt", 0)
    );
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(stack.stored_count().await, 1);

    // The same key from another user is another submission.
    let (_, other) = client
        .post_json("/v1/scores", &stack.token("bob"), &score("storm", 70))
        .await;
    assert_ne!(id_of(&other), ids[0]);
}

async fn a_batch_is_accepted_in_request_order_and_every_item_is_stored(stack: LocalStack) {
    let client = Client::new(&stack);
    let body = json!({ "submissions": [
        { "heroId": "a", "score": 1, "clientRef": "r-1" },
        { "heroId": "b", "score": 2 },
        { "heroId": "c", "score": 3, "achievedAt": "2026-01-01T00:00:00Z" },
    ]});
    let (status, answer) = client
        .post_json("/v1/scores/batch", &stack.token("alice"), &body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let items = answer["submissions"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        id_of(&items[0]),
        SubmissionId::from_client_ref(&UserId::parse("alice").unwrap(), "r-1"),
        "a clientRef makes the id deterministic"
    );
    assert!(stack.wait_until_drained(DRAIN).await);
    for (item, hero) in items.iter().zip(["a", "b", "c"]) {
        let record = stack
            .stored(&UserId::parse("alice").unwrap(), id_of(item))
            .await
            .unwrap();
        assert_eq!(record.hero_id.as_str(), hero);
    }
}

async fn an_invalid_batch_item_refuses_the_whole_batch(stack: LocalStack) {
    let client = Client::new(&stack);
    let body = json!({ "submissions": [score("a", 1), score("b", 2_000_000_000)] });
    let response = client
        .post("/v1/scores/batch", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    assert_eq!(problem["errors"][0]["pointer"], "/submissions/1/score");
    assert!(stack.is_drained().await, "nothing was enqueued");
    assert_eq!(stack.stored_count().await, 0);
}

async fn invalid_json_is_a_400_invalid_json_problem(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body("{\"heroId\": ")
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::BAD_REQUEST, "invalid-json").await;
}

async fn invalid_fields_are_a_400_with_errors_per_field(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body(r#"{"heroId":"bad/id","score":1.5,"extra":true}"#)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/extra"],
        "unknown fields are refused before field checks"
    );
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body(r#"{"heroId":"bad/id","score":1.5}"#)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/heroId", "/score"]);
}

async fn an_invalid_idempotency_key_is_a_400_naming_the_header(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .header("idempotency-key", "k".repeat(300))
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    assert_eq!(problem["errors"][0]["header"], "Idempotency-Key");
}

/// Sent twice, the key reaches a local server as two headers and the deployed function as one
/// value joined with a comma (API Gateway folds repeated headers): both refuse it, so no front
/// derives an id from a key the client did not send.
async fn a_repeated_idempotency_key_is_a_400_on_every_front(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .header("idempotency-key", "first")
        .header("idempotency-key", "second")
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    assert_eq!(problem["errors"][0]["header"], "Idempotency-Key");
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(stack.stored_count().await, 0, "nothing was queued");
}

async fn a_missing_or_bad_token_is_a_401_with_www_authenticate(stack: LocalStack) {
    let client = Client::new(&stack);
    let send = |token: Option<String>| {
        client
            .post("/v1/scores", token.as_deref())
            .header("content-type", "application/json")
            .body(score("a", 1).to_string())
            .send()
    };
    let response = send(None).await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="scores""#
    );
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let expired = stack.minter.mint("alice", -3600);
    let response = send(Some(expired)).await.unwrap();
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#) && challenge.contains("expired"),
        "{challenge}"
    );
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let forged = pipeline_tests::TokenMinter::random_local().mint("alice", 3600);
    let response = send(Some(forged)).await.unwrap();
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(stack.is_drained().await);
    assert_eq!(stack.stored_count().await, 0);
}

async fn unknown_routes_and_unknown_ids_are_a_404(stack: LocalStack) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    let response = client
        .http
        .get(format!("{}/v1/nothing", stack.url))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND, "not-found").await;
    for bad in [
        "not-an-id",
        "0b6f1d9e-4c1a-4b8e-9d3f-2a7c5e1f9b04",
        "..%2F..%2Fetc%2Fpasswd",
    ] {
        let response = client
            .http
            .get(format!("{}/v1/submissions/{bad}", stack.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::NOT_FOUND, "not-found").await;
    }
    let response = client
        .http
        .delete(format!("{}/v1/scores", stack.url))
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
}

async fn another_users_submission_looks_like_one_not_yet_processed(stack: LocalStack) {
    let client = Client::new(&stack);
    let (_, body) = client
        .post_json("/v1/scores", &stack.token("alice"), &score("a", 1))
        .await;
    assert!(stack.wait_until_drained(DRAIN).await);
    let id = id_of(&body).to_string();
    let (status, theirs) = client.status_of(&stack.token("bob"), &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs, json!({ "submissionId": id, "status": "pending" }));
    let never_issued = SubmissionId::new_unique().to_string();
    let (_, unknown) = client.status_of(&stack.token("bob"), &never_issued).await;
    assert_eq!(
        unknown,
        json!({ "submissionId": never_issued, "status": "pending" })
    );
}

async fn a_body_over_the_limit_is_a_413(stack: LocalStack) {
    let client = Client::new(&stack);
    let padding = " ".repeat(MAX_BODY_BYTES);
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body(format!(r#"{{"heroId":"a","score":1}}{padding}"#))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

async fn a_body_that_is_not_json_is_a_415(stack: LocalStack) {
    let client = Client::new(&stack);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = client
            .post("/v1/scores", Some(&stack.token("alice")))
            .body(score("a", 1).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        expect_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json; charset=utf-8")
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "parameters on application/json are fine"
    );
}

async fn a_queue_that_keeps_refusing_gets_a_503_and_nothing_is_accepted(stack: LocalStack) {
    let client = Client::new(&stack);
    stack
        .faults
        .submissions_queue
        .fail_all_calls(PortError::Unavailable {
            service: "sqs",
            detail: "injected outage".into(),
        });
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    expect_retry_later(response, "queue-unavailable").await;
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.stored_count().await,
        0,
        "a refused submission is never processed"
    );
}

async fn a_record_that_fails_transiently_is_retried_and_then_stored(stack: LocalStack) {
    let client = Client::new(&stack);
    let key = "flaky-1";
    let id = SubmissionId::from_idempotency_key(&UserId::parse("alice").unwrap(), key, 0);
    stack.faults.store.fail_item(id, Times::Next(2));
    let response = client
        .post("/v1/scores", Some(&stack.token("alice")))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(outcome(&stack, "alice", id).await, Some(Outcome::Accepted));
    assert_eq!(
        stack.faults.store.injected(),
        2,
        "it failed twice before it went through"
    );
    assert!(stack.dead_letters().await.submissions.is_empty());
}

async fn a_record_that_always_fails_ends_in_the_dead_letters_and_nothing_else_is_lost(
    stack: LocalStack,
) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    let doomed = SubmissionId::from_idempotency_key(&UserId::parse("alice").unwrap(), "doomed", 0);
    stack.faults.store.fail_item(doomed, Times::Always);
    stack
        .backend
        .observe
        .send_raw_submission(r#"{"this is": "poison"}"#)
        .await
        .unwrap();

    let response = client
        .post("/v1/scores", Some(&token))
        .header("content-type", "application/json")
        .header("idempotency-key", "doomed")
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mut fine = Vec::new();
    for i in 0..20 {
        let (status, body) = client.post_json("/v1/scores", &token, &score("a", i)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        fine.push(id_of(&body));
    }
    assert!(stack.wait_until_drained(DRAIN).await);

    let dead = stack.dead_letters().await.submissions;
    assert_eq!(
        dead.len(),
        2,
        "the poison message and the doomed submission: {dead:?}"
    );
    assert!(dead.iter().any(|body| body.contains("poison")));
    assert!(dead.iter().any(|body| body.contains(&doomed.to_string())));
    assert!(
        stack.faults.store.injected() >= u64::from(MAX_RECEIVE_COUNT),
        "the doomed write was tried on every receive"
    );
    for id in fine {
        assert_eq!(
            outcome(&stack, "alice", id).await,
            Some(Outcome::Accepted),
            "{id} was lost"
        );
    }
    // Even its failed marker cannot be written (the store refuses that item): it stays pending
    // while parked, which the dead-letter alarm reports.
    assert_eq!(outcome(&stack, "alice", doomed).await, None);
}

async fn shutdown_drains_queued_work_first(stack: LocalStack) {
    let client = Client::new(&stack);
    let token = stack.token("mallory");
    for i in 0..30 {
        client.post_json("/v1/scores", &token, &score("a", i)).await;
    }
    let observe = stack.backend.observe.clone();
    assert!(stack.shutdown(DRAIN).await);
    assert_eq!(observe.stored_count().await.unwrap(), 30);
    assert_eq!(observe.published().await.unwrap().len(), 30);
}

async fn the_correlation_id_is_echoed_and_travels_to_the_notification(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .post("/v1/scores", Some(&stack.token("mallory")))
        .header("content-type", "application/json")
        .header("x-correlation-id", "trace-abc-123")
        .body(score("a", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "trace-abc-123");
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.published().await[0].correlation_id.as_str(),
        "trace-abc-123"
    );
}

async fn submissions_over_the_users_quota_are_rejected_as_rate_limited_and_notified(
    stack: LocalStack,
) {
    let client = Client::new(&stack);
    let token = stack.token("bob");
    let over = 2;
    let submissions: Vec<Value> = (0..HOURLY_QUOTA + over)
        .map(|i| score("storm", i))
        .collect();
    let (status, answer) = client
        .post_json(
            "/v1/scores/batch",
            &token,
            &json!({ "submissions": submissions }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let ids: Vec<SubmissionId> = answer["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert!(stack.wait_until_drained(DRAIN).await);

    let mut limited = Vec::new();
    for id in &ids {
        match outcome(&stack, "bob", *id).await {
            Some(Outcome::Accepted) => {}
            Some(Outcome::Rejected(RejectionReason::RateLimited)) => limited.push(*id),
            other => panic!("{id} ended as {other:?}"),
        }
    }
    assert_eq!(limited.len(), over as usize);
    let mut notified: Vec<SubmissionId> = stack
        .published()
        .await
        .iter()
        .inspect(|r| assert_eq!(r.reason, RejectionReason::RateLimited))
        .map(|r| r.submission_id)
        .collect();
    notified.sort();
    limited.sort();
    assert_eq!(notified, limited, "exactly the refused ones are notified");
    let (_, view) = client.status_of(&token, &limited[0].to_string()).await;
    assert_eq!(view["status"], "rejected");
    assert_eq!(view["reason"], "rate_limited");
    // Another user's quota is untouched.
    let (status, body) = client
        .post_json("/v1/scores", &stack.token("alice"), &score("storm", 1))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        outcome(&stack, "alice", id_of(&body)).await,
        Some(Outcome::Accepted)
    );
}

#[tokio::test]
async fn a_user_over_the_burst_limit_gets_a_429_and_others_do_not() {
    let settings = QueueSettings {
        visibility_timeout: Duration::from_millis(100),
        max_receive_count: MAX_RECEIVE_COUNT,
    };
    let (backend, _) = memory_backend(settings, None);
    let mut options = StackOptions::for_tests(users());
    options.burst_limit = Some(shared::config::BurstLimit {
        burst: 3,
        // Slow enough that a busy machine's pauses between the requests refill nothing whole.
        per_second: 0.01,
    });
    let stack = LocalStack::start(options, backend).await.unwrap();
    let client = Client::new(&stack);
    let alice = stack.token("alice");
    for i in 0..3 {
        let (status, _) = client.post_json("/v1/scores", &alice, &score("a", i)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let response = client
        .post("/v1/scores", Some(&alice))
        .header("content-type", "application/json")
        .body(score("a", 9).to_string())
        .send()
        .await
        .unwrap();
    // One token refills in 100 s at 0.01/s, less the time since the first request.
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (90..=100).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    let batch = json!({ "submissions": [score("a", 1), score("b", 2)] });
    let (status, _) = client
        .post_json("/v1/scores/batch", &stack.token("bob"), &batch)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "bob has his own bucket");
    let bigger =
        json!({ "submissions": [score("a", 1), score("b", 2), score("c", 3), score("d", 4)] });
    let (status, problem) = client
        .post_json("/v1/scores/batch", &stack.token("bob"), &bigger)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.stored_count().await,
        5,
        "nothing refused was accepted"
    );
}

/// (rank, user, score) of each entry of a board or standing body.
fn board(body: &Value) -> Vec<(u64, String, u64)> {
    body["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {body}"))
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().unwrap(),
                e["userId"].as_str().unwrap().to_owned(),
                e["score"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Reads a board or standing path as `token`, expecting 200, and returns the body.
async fn read_board(client: &Client, path: &str, token: &str) -> Value {
    let response = pipeline_tests::send_retrying_unavailable(|| client.get(path, Some(token)))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "private, max-age=5",
        "{path}"
    );
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Posts each (token, body) in order, each answered 202, and returns the ids.
async fn post_in_order(client: &Client, posts: &[(&String, Value)]) -> Vec<SubmissionId> {
    let mut ids = Vec::new();
    for (token, body) in posts {
        let (status, accepted) = client.post_json("/v1/scores", token, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        ids.push(id_of(&accepted));
    }
    ids
}

async fn a_board_holds_each_players_best_once_and_ranks_the_earlier_of_equal_scores_first(
    stack: LocalStack,
) {
    clear_of_midnight_utc().await;
    // GIVEN several scores each from three players on one hero, a tie on the best score (bob
    // reaches it after alice), a higher score from a suspended user, and one for another hero
    let client = Client::new(&stack);
    let (alice, bob, mallory) = (
        stack.token("alice"),
        stack.token("bob"),
        stack.token("mallory"),
    );
    let ids = post_in_order(
        &client,
        &[
            (&alice, score("storm", 100)),
            (&alice, score("storm", 300)),
            (&bob, score("storm", 200)),
            (&alice, score("storm", 250)),
            (&mallory, score("storm", 1_000_000)),
            (&alice, score("blade", 5_000)),
        ],
    )
    .await;
    assert!(stack.wait_until_drained(DRAIN).await);
    let bobs_tie = post_in_order(&client, &[(&bob, score("storm", 300))]).await[0];
    assert!(stack.wait_until_drained(DRAIN).await);

    // WHEN anyone reads storm's boards (of the day the scores were received, should a run cross
    // midnight UTC)
    // THEN each holds one entry per player, their best, the earlier of the tied scores first;
    // the suspended user's score and the other hero's are absent
    let all_time = read_board(&client, "/v1/leaderboards/storm", &bob).await;
    let received = all_time["entries"][0]["receivedAt"].as_str().unwrap()[..10].to_owned();
    let today = time::Date::parse(
        &received,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .unwrap();
    for period in [
        String::new(),
        "?period=all-time".to_owned(),
        format!("?period=daily&date={received}"),
        format!("?period=weekly&date={received}"),
    ] {
        let body = read_board(&client, &format!("/v1/leaderboards/storm{period}"), &bob).await;
        assert_eq!(body["heroId"], "storm");
        assert_eq!(
            board(&body),
            [(1, "alice".into(), 300), (2, "bob".into(), 300)],
            "{period}: {body}"
        );
        assert_eq!(body["entries"][0]["submissionId"], ids[1].to_string());
        assert_eq!(body["entries"][1]["submissionId"], bobs_tie.to_string());
        assert!(body["entries"][0]["receivedAt"].is_string());
        assert!(body.get("nextCursor").is_none(), "{body}");
    }
    let daily = read_board(
        &client,
        &format!("/v1/leaderboards/storm?period=daily&date={received}"),
        &bob,
    )
    .await;
    assert_eq!(daily["period"], "daily");
    assert_eq!(daily["periodStart"], iso(today));
    assert_eq!(
        (&all_time["period"], &all_time["periodStart"]),
        (&json!("all-time"), &Value::Null)
    );

    // AND a board of another day holds none of today's receipts
    let yesterday = iso(today - time::Duration::days(1));
    let body = read_board(
        &client,
        &format!("/v1/leaderboards/storm?period=daily&date={yesterday}"),
        &bob,
    )
    .await;
    assert_eq!(body["entries"], json!([]), "{body}");
    assert_eq!(body["periodStart"], yesterday);

    // AND a limit keeps the best, with a cursor to the rest
    let body = read_board(&client, "/v1/leaderboards/storm?limit=1", &alice).await;
    assert_eq!(board(&body), [(1, "alice".into(), 300)]);
    let cursor = body["nextCursor"].as_str().expect("more entries follow");
    let body = read_board(
        &client,
        &format!("/v1/leaderboards/storm?limit=1&cursor={cursor}"),
        &alice,
    )
    .await;
    assert_eq!(board(&body), [(2, "bob".into(), 300)]);
    assert!(body.get("nextCursor").is_none(), "{body}");

    // AND a hero nobody played has an empty board
    let body = read_board(&client, "/v1/leaderboards/nobody-plays-this", &alice).await;
    assert_eq!(body["entries"], json!([]));
}

/// The daily and weekly boards turn over at 00:00 UTC. A test that reads them waits out the last
/// two minutes of a day first, rather than have its scores land on two days' boards.
async fn clear_of_midnight_utc() {
    let now = time::OffsetDateTime::now_utc();
    let left_today = time::Duration::DAY - (now.time() - time::Time::MIDNIGHT);
    if left_today < time::Duration::minutes(2) {
        let left = Duration::try_from(left_today).unwrap_or_default();
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

fn iso(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

async fn a_players_standing_and_the_page_around_them_agree_with_the_board(stack: LocalStack) {
    clear_of_midnight_utc().await;
    // GIVEN eight players on one hero, each with one best score
    let client = Client::new(&stack);
    let players: Vec<String> = (0..8).map(|i| format!("standing-{i}")).collect();
    let tokens: Vec<String> = players.iter().map(|p| stack.token(p)).collect();
    for player in &players {
        stack
            .backend
            .observe
            .put_user(&User::active(UserId::parse(player.as_str()).unwrap()))
            .await
            .unwrap();
    }
    let posts: Vec<(&String, Value)> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| (token, score("echo", 10 * (i as u32 + 1))))
        .collect();
    post_in_order(&client, &posts).await;
    assert!(stack.wait_until_drained(DRAIN).await);
    let all_time = read_board(&client, "/v1/leaderboards/echo?limit=100", &tokens[0]).await;
    let whole = board(&all_time);
    assert_eq!(whole.len(), 8);
    // The week the scores were received in, should a run cross Monday 00:00 UTC.
    let received = all_time["entries"][0]["receivedAt"].as_str().unwrap()[..10].to_owned();

    // WHEN a player asks for their own standing (`me`) and another's, with neighbours
    let mine = read_board(
        &client,
        "/v1/leaderboards/echo/players/me?around=2",
        &tokens[4],
    )
    .await;
    let theirs = read_board(
        &client,
        &format!("/v1/leaderboards/echo/players/standing-7?around=2&period=weekly&date={received}"),
        &tokens[0],
    )
    .await;

    // THEN the rank, score and neighbours are the board's
    let place = whole
        .iter()
        .position(|(_, user, _)| user == "standing-4")
        .unwrap();
    assert_eq!(mine["userId"], "standing-4");
    assert_eq!(mine["rank"], whole[place].0);
    assert_eq!(mine["score"], 50);
    assert!(mine["submissionId"].is_string() && mine["receivedAt"].is_string());
    assert_eq!(
        board(&mine),
        whole[place - 2..=place + 2].to_vec(),
        "{mine}"
    );
    assert_eq!(theirs["rank"], 1, "the best score ranks first");
    assert_eq!(
        board(&theirs),
        whole[..3].to_vec(),
        "nothing above the top: {theirs}"
    );
    assert_eq!(theirs["period"], "weekly");

    // AND a player without an entry on the board is a 404 problem
    let response = client
        .get("/v1/leaderboards/echo/players/alice", Some(&tokens[0]))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND, "no-entry").await;
    let response = client
        .get(
            "/v1/leaderboards/echo/players/me?period=daily&date=2026-01-01",
            Some(&tokens[0]),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
    assert_eq!(problem["errors"][0]["parameter"], "date", "{problem}");
}

async fn cursors_page_through_a_board_of_250_players_with_no_repeat_and_no_gap(stack: LocalStack) {
    // GIVEN 250 players with scores on one hero, many of them equal
    use futures::StreamExt;
    const PLAYERS: usize = 250;
    let client = Client::new(&stack);
    let players: Vec<String> = (0..PLAYERS).map(|i| format!("pager-{i:03}")).collect();
    futures::stream::iter(&players)
        .for_each_concurrent(16, |player| {
            let observe = stack.backend.observe.clone();
            async move {
                observe
                    .put_user(&User::active(UserId::parse(player.as_str()).unwrap()))
                    .await
                    .unwrap();
            }
        })
        .await;
    let client_ref = &client;
    let stack_ref = &stack;
    futures::stream::iter(players.iter().enumerate())
        .for_each_concurrent(16, |(i, player)| async move {
            let token = stack_ref.token(player);
            let (status, body) = client_ref
                .post_json("/v1/scores", &token, &score("pager", (i as u32 * 7) % 40))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        })
        .await;
    assert!(stack.wait_until_drained(DRAIN).await);

    // WHEN the board is read page by page, seven entries at a time
    let token = stack.token("alice");
    let mut seen: Vec<(u64, String, u64)> = Vec::new();
    let mut path = "/v1/leaderboards/pager?limit=7".to_owned();
    loop {
        let body = read_board(&client, &path, &token).await;
        let page = board(&body);
        assert!(page.len() <= 7);
        seen.extend(page);
        match body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/leaderboards/pager?limit=7&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= PLAYERS, "paging does not end");
    }

    // THEN every player appears once, ranks run 1..=250, and scores never rise
    assert_eq!(seen.len(), PLAYERS);
    let ranks: Vec<u64> = seen.iter().map(|(rank, _, _)| *rank).collect();
    assert_eq!(ranks, (1..=PLAYERS as u64).collect::<Vec<_>>());
    let mut users: Vec<&String> = seen.iter().map(|(_, user, _)| user).collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), PLAYERS, "no player twice");
    assert!(
        seen.windows(2).all(|pair| pair[0].2 >= pair[1].2),
        "best first"
    );
}

async fn a_revocation_takes_the_player_off_every_board_and_their_next_best_stays_off(
    stack: LocalStack,
) {
    clear_of_midnight_utc().await;
    // GIVEN a cheater with a best and a next-best score on storm, and an honest player
    let client = Client::new(&stack);
    let cheater = "cheater-1";
    stack
        .backend
        .observe
        .put_user(&User::active(UserId::parse(cheater).unwrap()))
        .await
        .unwrap();
    let (cheats, honest) = (stack.token(cheater), stack.token("bob"));
    let ids = post_in_order(
        &client,
        &[
            (&cheats, score("storm", 900)),
            (&cheats, score("storm", 800)),
            (&cheats, score("blade", 700)),
            (&honest, score("storm", 100)),
        ],
    )
    .await;
    assert!(stack.wait_until_drained(DRAIN).await);
    let body = read_board(&client, "/v1/leaderboards/storm", &honest).await;
    assert_eq!(board(&body)[0], (1, cheater.to_owned(), 900));

    // WHEN an operator revokes the cheater's accepted scores (what `users suspend
    // --revoke-scores` writes)
    let mut accepted = Vec::new();
    for id in &ids[..3] {
        accepted.push(
            stack
                .stored(&UserId::parse(cheater).unwrap(), *id)
                .await
                .unwrap(),
        );
    }
    let revoked = shared::record::revoke_accepted(
        accepted,
        RejectionReason::SuspendedUser,
        time::OffsetDateTime::now_utc(),
    );
    assert_eq!(revoked.len(), 3);
    let deadline = tokio::time::Instant::now() + DRAIN;
    let report = stack.backend.store.write(&revoked, deadline).await.unwrap();
    assert!(report.failed.is_empty());
    assert!(stack.wait_until_drained(DRAIN).await);

    // THEN the cheater is on no board of any period, the next-best did not take the best's
    // place, and the honest player moved up
    for hero in ["storm", "blade"] {
        for period in ["all-time", "daily", "weekly"] {
            let body = read_board(
                &client,
                &format!("/v1/leaderboards/{hero}?period={period}"),
                &honest,
            )
            .await;
            assert!(
                board(&body).iter().all(|(_, user, _)| user != cheater),
                "{hero} {period}: {body}"
            );
            let response = client
                .get(
                    &format!("/v1/leaderboards/{hero}/players/{cheater}?period={period}"),
                    Some(&honest),
                )
                .send()
                .await
                .unwrap();
            expect_problem(response, StatusCode::NOT_FOUND, "no-entry").await;
        }
    }
    let body = read_board(&client, "/v1/leaderboards/storm", &honest).await;
    assert_eq!(board(&body), [(1, "bob".into(), 100)]);
}

async fn a_board_read_needs_a_token_and_valid_parameters(stack: LocalStack) {
    let client = Client::new(&stack);
    let response = client
        .get("/v1/leaderboards/storm", None)
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Authentication comes first: bad parameters without a token learn nothing of the rules.
    for path in [
        "/v1/leaderboards/no%20spaces?limit=0",
        "/v1/leaderboards/storm/players/me?around=99",
    ] {
        let response = client.get(path, None).send().await.unwrap();
        expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }

    let token = stack.token("alice");
    for (path, parameter) in [
        ("/v1/leaderboards/storm?limit=0", "limit"),
        ("/v1/leaderboards/storm?limit=ten", "limit"),
        ("/v1/leaderboards/storm?page=2", "page"),
        ("/v1/leaderboards/storm?period=monthly", "period"),
        ("/v1/leaderboards/storm?date=2026-02-30", "date"),
        ("/v1/leaderboards/storm?cursor=not-a-cursor", "cursor"),
        (
            "/v1/leaderboards/storm?period=daily&period=weekly",
            "period",
        ),
        ("/v1/leaderboards/no%20spaces", "heroId"),
        ("/v1/leaderboards/%FF%FE", "heroId"),
        ("/v1/leaderboards/storm/players/me?around=26", "around"),
        ("/v1/leaderboards/storm/players/me?limit=5", "limit"),
    ] {
        let response = client.get(path, Some(&token)).send().await.unwrap();
        let problem = expect_problem(response, StatusCode::BAD_REQUEST, "validation-failed").await;
        assert_eq!(
            problem["errors"][0]["parameter"], parameter,
            "{path}: {problem}"
        );
    }
    // The old submission board is gone.
    let response = client
        .get("/v1/leaderboard/storm", Some(&token))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}

async fn a_board_the_rank_index_cannot_serve_is_a_503_and_ranking_catches_up_after_faults(
    stack: LocalStack,
) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    // The ranker's first two batches fail: the feed delivers them again until they go through.
    stack.faults.rank_index.fail_next_calls(
        2,
        PortError::Unavailable {
            service: "rank index",
            detail: "injected outage".into(),
        },
    );
    post_in_order(&client, &[(&token, score("storm", 42))]).await;
    assert!(stack.wait_until_drained(DRAIN).await);
    assert!(stack.faults.rank_index.injected() >= 2);
    let body = read_board(&client, "/v1/leaderboards/storm", &token).await;
    assert_eq!(board(&body), [(1, "alice".into(), 42)]);

    stack.faults.rank_index.fail_next_calls(
        1,
        PortError::Timeout {
            service: "rank index",
            detail: "injected timeout".into(),
        },
    );
    let response = client
        .get("/v1/leaderboards/storm", Some(&token))
        .send()
        .await
        .unwrap();
    expect_retry_later(response, "boards-unavailable").await;
    // The index answers again: so does the board.
    read_board(&client, "/v1/leaderboards/storm/players/me", &token).await;
}

/// Posts one score with an Idempotency-Key and returns its id.
async fn post_with_key(client: &Client, token: &str, key: &str, body: &Value) -> SubmissionId {
    let response = client
        .post("/v1/scores", Some(token))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id_of(&body)
}

async fn a_rejected_submission_retried_five_times_with_its_key_is_notified_once(stack: LocalStack) {
    // GIVEN a suspended user's submission, sent five times with its key, each after the last
    // was processed (a client that did not hear back)
    let client = Client::new(&stack);
    let token = stack.token("mallory");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(post_with_key(&client, &token, "five-times", &score("storm", 5)).await);
        assert!(stack.wait_until_drained(DRAIN).await);
    }

    // THEN one submission, rejected, notified exactly once
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let told: Vec<_> = stack
        .published()
        .await
        .into_iter()
        .filter(|r| r.submission_id == ids[0])
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].reason, RejectionReason::SuspendedUser);
    let (_, view) = client.status_of(&token, &ids[0].to_string()).await;
    assert_eq!(view["status"], "rejected");
}

async fn a_retry_after_the_user_was_suspended_leaves_the_accepted_verdict_standing(
    stack: LocalStack,
) {
    // GIVEN bob's submission, accepted
    let client = Client::new(&stack);
    let token = stack.token("bob");
    let id = post_with_key(&client, &token, "before-suspension", &score("storm", 40)).await;
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(outcome(&stack, "bob", id).await, Some(Outcome::Accepted));

    // WHEN bob is suspended and the client retries the same submission
    stack
        .backend
        .observe
        .put_user(&User::suspended(UserId::parse("bob").unwrap()))
        .await
        .unwrap();
    let again = post_with_key(&client, &token, "before-suspension", &score("storm", 40)).await;
    assert!(stack.wait_until_drained(DRAIN).await);

    // THEN the accepted verdict stands, and bob is told of no refusal
    assert_eq!(again, id);
    assert_eq!(outcome(&stack, "bob", id).await, Some(Outcome::Accepted));
    assert!(
        stack
            .published()
            .await
            .iter()
            .all(|r| r.submission_id != id),
        "an accepted submission was notified as refused"
    );
    let (_, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(view["status"], "accepted");
}

async fn a_reused_key_with_another_score_leaves_the_first_stored_and_reports_the_conflict(
    stack: LocalStack,
) {
    let client = Client::new(&stack);
    let token = stack.token("alice");
    let id = post_with_key(&client, &token, "reused", &score("storm", 10)).await;
    assert!(stack.wait_until_drained(DRAIN).await);

    let reused = post_with_key(&client, &token, "reused", &score("storm", 99_999)).await;
    assert!(stack.wait_until_drained(DRAIN).await);

    assert_eq!(reused, id, "the same key names the same submission");
    let stored = stack
        .stored(&UserId::parse("alice").unwrap(), id)
        .await
        .expect("stored");
    assert_eq!(
        (stored.score.get(), stored.outcome),
        (10, Outcome::Accepted)
    );
    let told: Vec<_> = stack
        .published()
        .await
        .into_iter()
        .filter(|r| r.submission_id == id)
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].reason, RejectionReason::IdempotencyConflict);
    assert_eq!(
        told[0].score.get(),
        99_999,
        "the notification names the refused score"
    );
    let (_, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(
        (view["status"].as_str(), view["score"].as_u64()),
        (Some("accepted"), Some(10))
    );
}

async fn a_parked_submission_shows_failed_and_after_a_redrive_its_outcome(stack: LocalStack) {
    // GIVEN bob's directory entry unreadable, and a submission of his
    let client = Client::new(&stack);
    let bob = UserId::parse("bob").unwrap();
    stack.backend.observe.corrupt_user(&bob).await.unwrap();
    let token = stack.token("bob");
    let (status, body) = client
        .post_json("/v1/scores", &token, &score("storm", 3))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = id_of(&body);

    // WHEN it is retried up to the redrive limit
    assert!(stack.wait_until_drained(DRAIN).await);

    // THEN it is parked, and its owner sees it failed, with the reason
    assert_eq!(stack.dead_letters().await.submissions.len(), 1);
    let (_, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["reason"], "unreadable_user_entry");

    // AND once the entry is fixed, the operator's redrive brings it to its outcome
    stack
        .backend
        .observe
        .put_user(&User::active(bob))
        .await
        .unwrap();
    assert_eq!(stack.backend.observe.redrive().await.unwrap(), 1);
    assert!(stack.wait_until_drained(DRAIN).await);
    let (_, view) = client.status_of(&token, &id.to_string()).await;
    assert_eq!(view["status"], "accepted", "{view}");
    assert!(stack.dead_letters().await.submissions.is_empty());
}
