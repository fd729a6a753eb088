//! `GET /openapi.json`: served without a token, and a true description of the API. The limits it
//! documents are checked against the router's behaviour at and just past each limit.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ingest::boards::Boards;
use ingest::{App, full_router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::auth::{AuthConfig, TokenAlgorithm, TokenVerifier, VerificationKey};
use shared::board::{BoardChange, BoardRef, Entry};
use shared::ids::{SubmissionId, UserId};
use shared::memory::{MemoryQueue, MemoryRankIndex, MemoryStore, QueueSettings};
use shared::period::Period;
use shared::ports::RankIndex;
use shared::record::FailureReason;
use shared::rejection::RejectionReason;
use shared::submission::{HeroId, Score};
use tower::ServiceExt;

const SECRET: &[u8] = b"openapi-secret-openapi-secret-0123";

fn app() -> Router {
    app_with(MemoryRankIndex::new())
}

/// The whole API (ingest's routes and the boards'), the boards served from `index`.
fn app_with(index: MemoryRankIndex) -> Router {
    let config = AuthConfig {
        algorithm: TokenAlgorithm::Hs256,
        key: VerificationKey::Secret(SECRET.to_vec()),
        issuer: "iss".into(),
        audience: "aud".into(),
        leeway_seconds: 0,
        key_id: None,
    };
    full_router(
        Arc::new(App::new(
            TokenVerifier::new(&config).unwrap(),
            Arc::new(MemoryQueue::new("openapi", QueueSettings::default())),
            Arc::new(MemoryStore::new()),
        )),
        Arc::new(Boards::new(
            TokenVerifier::new(&config).unwrap(),
            Arc::new(index),
        )),
    )
}

fn token() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({ "sub": "alice", "iss": "iss", "aud": "aud", "exp": now + 3600 });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn document(app: &Router) -> Value {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {}", token()))
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

async fn post(app: &Router, path: &str, body: &Value) -> StatusCode {
    let request = Request::post(path)
        .header("authorization", format!("Bearer {}", token()))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await.0
}

fn number(schema: &Value, key: &str) -> u64 {
    schema[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {schema}"))
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_lists_every_route() {
    let app = app();
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "0195f3a0-0000-7000-8000-000000000000")
                .replace("{heroId}", "storm");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let (status, _) = send(&app, request).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but answered {status}"
            );
        }
    }
    let (status, problem) = send(
        &app,
        Request::get("/v1/not-documented")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let documented: Vec<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    assert!(documented.contains(&problem["type"].as_str().unwrap()));
}

#[tokio::test]
async fn the_documented_rejection_reasons_are_the_pipelines() {
    let doc = document(&app()).await;
    let reasons = &doc["components"]["schemas"]["SubmissionStatus"]["properties"]["reason"]["enum"];
    // A status names a stored rejection's reason or a failure's; a conflict is never stored.
    let codes: Vec<&str> = RejectionReason::ALL
        .iter()
        .filter(|r| **r != RejectionReason::IdempotencyConflict)
        .map(|r| r.code())
        .chain(FailureReason::ALL.iter().map(|r| r.code()))
        .collect();
    assert_eq!(reasons, &json!(codes));
    let notified =
        &doc["components"]["schemas"]["RejectionNotification"]["properties"]["reason"]["enum"];
    let all: Vec<&str> = RejectionReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(notified, &json!(all));
    let statuses =
        &doc["components"]["schemas"]["SubmissionStatus"]["properties"]["status"]["enum"];
    assert_eq!(
        statuses,
        &json!(["pending", "accepted", "rejected", "failed"])
    );
}

#[tokio::test]
async fn the_documented_limits_are_the_enforced_ones() {
    let app = app();
    let doc = document(&app).await;
    let submission = &doc["components"]["schemas"]["ScoreSubmission"]["properties"];
    let batch = &doc["components"]["schemas"]["ScoreBatch"]["properties"]["submissions"];

    let max_score = number(&submission["score"], "maximum");
    let min_score = number(&submission["score"], "minimum");
    for (score, expected) in [
        (json!(max_score), StatusCode::ACCEPTED),
        (json!(max_score + 1), StatusCode::BAD_REQUEST),
        (json!(min_score), StatusCode::ACCEPTED),
        (json!(min_score as i64 - 1), StatusCode::BAD_REQUEST),
    ] {
        let body = json!({ "heroId": "storm", "score": score });
        assert_eq!(post(&app, "/v1/scores", &body).await, expected, "{body}");
    }

    let hero_max = number(&submission["heroId"], "maxLength") as usize;
    for (length, expected) in [
        (hero_max, StatusCode::ACCEPTED),
        (hero_max + 1, StatusCode::BAD_REQUEST),
    ] {
        let body = json!({ "heroId": "h".repeat(length), "score": 1 });
        assert_eq!(post(&app, "/v1/scores", &body).await, expected, "{length}");
    }

    let ref_max = number(&submission["clientRef"], "maxLength") as usize;
    for (length, expected) in [
        (ref_max, StatusCode::ACCEPTED),
        (ref_max + 1, StatusCode::BAD_REQUEST),
    ] {
        let body = json!({ "heroId": "storm", "score": 1, "clientRef": "r".repeat(length) });
        assert_eq!(post(&app, "/v1/scores", &body).await, expected, "{length}");
    }

    let batch_max = number(batch, "maxItems") as usize;
    for (count, expected) in [
        (batch_max, StatusCode::ACCEPTED),
        (batch_max + 1, StatusCode::BAD_REQUEST),
        (0, StatusCode::BAD_REQUEST),
    ] {
        let items: Vec<Value> = (0..count)
            .map(|_| json!({ "heroId": "storm", "score": 1 }))
            .collect();
        let body = json!({ "submissions": items });
        assert_eq!(
            post(&app, "/v1/scores/batch", &body).await,
            expected,
            "{count}"
        );
    }

    let unknown = json!({ "heroId": "storm", "score": 1, "extra": true });
    assert!(!submission.as_object().unwrap().contains_key("extra"));
    assert_eq!(
        doc["components"]["schemas"]["ScoreSubmission"]["additionalProperties"],
        json!(false)
    );
    assert_eq!(
        post(&app, "/v1/scores", &unknown).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_documented_leaderboard_limits_are_the_enforced_ones() {
    // GIVEN a board of more players than a page can show
    let index = MemoryRankIndex::new();
    let now = time::OffsetDateTime::now_utc();
    let board = BoardRef {
        hero_id: HeroId::parse("storm").unwrap(),
        board: Period::AllTime.board_of(now.date()),
    };
    let changes: Vec<BoardChange> = (0..250u32)
        .map(|i| BoardChange::Offer {
            board: board.clone(),
            entry: Entry {
                user_id: UserId::parse(format!("player-{i}")).unwrap(),
                score: Score::new(i).unwrap(),
                submission_id: SubmissionId::new_unique(),
                received_at: now,
            },
            expires_at: None,
        })
        .collect();
    index.apply(&changes).await.unwrap();
    let app = app_with(index);
    let doc = document(&app).await;
    let parameters = doc["paths"]["/v1/leaderboards/{heroId}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = &parameters.iter().find(|p| p["name"] == "limit").unwrap()["schema"];

    // WHEN the board is read without a limit THEN the documented default number of entries comes back
    let (status, board) = get(&app, "/v1/leaderboards/storm").await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(
        board["entries"].as_array().unwrap().len() as u64,
        number(limit, "default")
    );

    // AND a standing's `around` is what the document says, each end and one past it
    let standing = doc["paths"]["/v1/leaderboards/{heroId}/players/{userId}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let around = &standing.iter().find(|p| p["name"] == "around").unwrap()["schema"];
    let (status, body) = get(&app, "/v1/leaderboards/storm/players/player-100").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["entries"].as_array().unwrap().len() as u64,
        2 * number(around, "default") + 1
    );
    for (asked, ok) in [
        (number(around, "minimum"), true),
        (number(around, "maximum"), true),
        (number(around, "maximum") + 1, false),
    ] {
        let (status, body) = get(
            &app,
            &format!("/v1/leaderboards/storm/players/player-100?around={asked}"),
        )
        .await;
        if ok {
            assert_eq!(
                body["entries"].as_array().unwrap().len() as u64,
                2 * asked + 1
            );
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "around={asked}: {body}");
        }
    }

    // AND the documented range is what is taken, each end and one past it
    let (min, max) = (number(limit, "minimum"), number(limit, "maximum"));
    for (asked, expected) in [
        (min, Some(min)),
        (max, Some(max)),
        (min - 1, None),
        (max + 1, None),
    ] {
        let (status, body) = get(&app, &format!("/v1/leaderboards/storm?limit={asked}")).await;
        match expected {
            Some(entries) => {
                assert_eq!(status, StatusCode::OK, "limit={asked}: {body}");
                assert_eq!(body["entries"].as_array().unwrap().len() as u64, entries);
            }
            None => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "limit={asked}: {body}");
                assert_eq!(body["errors"][0]["parameter"], "limit", "{body}");
            }
        }
    }

    // AND the hero id follows the same rule as in a submission
    assert_eq!(parameters[0]["$ref"], "#/components/parameters/HeroId");
    let hero = &doc["components"]["parameters"]["HeroId"];
    assert_eq!(hero["name"], "heroId");
    let hero_max = number(&hero["schema"], "maxLength") as usize;
    let (status, _) = get(&app, &format!("/v1/leaderboards/{}", "h".repeat(hero_max))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(
        &app,
        &format!("/v1/leaderboards/{}", "h".repeat(hero_max + 1)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["parameter"], "heroId", "{body}");
}
