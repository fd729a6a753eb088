//! What only the emulated deployment can show (see `pipeline_tests::emulate`): the request
//! shapes API Gateway makes that break first deploys, and the real binaries' log lines as
//! CloudWatch would get them. The end-to-end scenarios themselves run on it in e2e.rs.
//!
//! Needs moto and the prepared template: `make test` provides both.

use std::collections::BTreeSet;
use std::time::Duration;

use pipeline_tests::emulate::{Emulation, start_for_tests};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::ids::UserId;
use shared::users::User;

const DRAIN: Duration = Duration::from_secs(30);

fn users() -> Vec<User> {
    vec![
        User::active(UserId::parse("alice").unwrap()),
        User::suspended(UserId::parse("mallory").unwrap()),
    ]
}

fn score(points: u32) -> String {
    json!({"heroId": "storm", "score": points, "achievedAt": "2026-11-30T12:00:00Z"}).to_string()
}

async fn post(
    emulation: &Emulation,
    user: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/scores", emulation.stack.url))
        .bearer_auth(emulation.stack.token(user))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_encoded_body_is_decoded_by_the_function_and_accepted() {
    let emulation = start_for_tests(users(), |o| o.encode_every_body = true).await;
    let (status, _, body) =
        json_of(post(&emulation, "alice", "application/json", score(7)).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    let id = shared::ids::SubmissionId::parse(body["submissionId"].as_str().unwrap()).unwrap();
    let stored = emulation.stack.stored(id).await.expect("stored");
    assert_eq!(stored.score, shared::submission::Score::new(7).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_api_gateway_encodes_for_its_media_type_is_still_a_415_problem() {
    // curl -d without -H sends this type; the gateway base64-encodes such bodies.
    let emulation = start_for_tests(users(), |_| {}).await;
    let response = post(
        &emulation,
        "alice",
        "application/x-www-form-urlencoded",
        score(7),
    )
    .await;
    let (status, content_type, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_paths_reach_the_function_decoded_on_the_default_stage() {
    let emulation = start_for_tests(users(), |_| {}).await;
    assert_eq!(
        emulation.template.stage_name().unwrap(),
        "$default",
        "on any other stage lambda_http prefixes every path with the stage name, and no route matches"
    );
    let (status, _, body) =
        json_of(post(&emulation, "alice", "application/json", score(3)).await).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["submissionId"].as_str().unwrap().to_owned();
    assert!(emulation.stack.wait_until_drained(DRAIN).await);

    let get = |path: String| {
        let url = format!("{}{path}", emulation.stack.url);
        let token = emulation.stack.token("alice");
        async move {
            json_of(
                reqwest::Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // A client that encodes the id's hyphens still reaches the same submission.
    let (status, _, status_body) = get(format!("/v1/submissions/{}", id.replace('-', "%2D"))).await;
    assert_eq!(status, StatusCode::OK, "{status_body}");
    assert_eq!(status_body["status"], "accepted");
    // Decoded characters a URI cannot hold (a space, an emoji) are problem JSON, not a 500.
    for path in [
        "/v1/submissions/a%20b",
        "/v1/submissions/%F0%9F%98%80",
        "/v1/leaderboards/st%20orm",
    ] {
        let (status, content_type, problem) = get(path.to_owned()).await;
        assert!(status.is_client_error(), "{path}: {status} {problem}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
    }
}

/// Every line a function writes is one JSON object with Lambda's keys; every line written
/// during an invocation names it; one submission's correlation id and X-Ray trace are in all
/// three stages' lines; each of the five functions reports its cold start once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_log_lambda_json_lines_that_tie_the_three_stages_together() {
    let emulation = start_for_tests(users(), |_| {}).await;
    // An accepted score, ranked by the ranker and read through the boards function.
    let accepted = post(&emulation, "alice", "application/json", score(7)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    let board: Value = reqwest::Client::new()
        .get(format!("{}/v1/leaderboards/storm", emulation.stack.url))
        .bearer_auth(emulation.stack.token("alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(board["entries"][0]["userId"], "alice", "{board}");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/scores", emulation.stack.url))
        .bearer_auth(emulation.stack.token("mallory"))
        .header("content-type", "application/json")
        .header("x-correlation-id", "emulated-trail-1")
        .body(score(9))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    assert_eq!(emulation.stack.published().await.len(), 1);

    // The lines reach the sink through pipes read by other tasks: wait until each function's
    // metrics line (the last line an invocation writes) and the notifier's line of this
    // submission are in, rather than racing the readers.
    let complete = |lines: &[pipeline_tests::emulate::functions::LogLine]| {
        emulation.functions.iter().all(|f| {
            lines
                .iter()
                .any(|l| l.function == f.name && l.line.contains("\"ColdStart\""))
        }) && lines.iter().any(|l| {
            l.line.contains("emulated-trail-1") && l.line.contains("\"target\":\"notifier\"")
        })
    };
    let waited_until = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut lines = emulation.logs.lines();
    while !complete(&lines) && tokio::time::Instant::now() < waited_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        lines = emulation.logs.lines();
    }
    let mut correlated = BTreeSet::new();
    let mut trace_roots = BTreeSet::new();
    for function in &emulation.functions {
        let own: Vec<Value> = lines
            .iter()
            .filter(|l| l.function == function.name)
            .map(|l| {
                serde_json::from_str(&l.line).unwrap_or_else(|e| {
                    panic!("{}: not a JSON line ({e}): {}", function.binary, l.line)
                })
            })
            .collect();
        assert!(!own.is_empty(), "{} wrote nothing", function.binary);
        let mut cold_starts = 0;
        for line in &own {
            let timestamp = line["timestamp"].as_str().unwrap_or_default();
            assert!(
                time::OffsetDateTime::parse(
                    timestamp,
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok(),
                "{}: no RFC 3339 timestamp: {line}",
                function.binary
            );
            assert!(
                matches!(
                    line["level"].as_str(),
                    Some("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR")
                ),
                "{}: no level: {line}",
                function.binary
            );
            if line.get("_aws").is_some() {
                cold_starts += line["ColdStart"].as_f64().unwrap_or(0.0) as u32;
                continue;
            }
            assert!(
                line["message"].is_string(),
                "{}: no message: {line}",
                function.binary
            );
            if line["correlation_id"] == "emulated-trail-1" {
                assert!(
                    line["requestId"].is_string(),
                    "{}: an invocation's line without its requestId: {line}",
                    function.binary
                );
                correlated.insert(function.binary);
                let root = line["xrayTraceId"]
                    .as_str()
                    .and_then(|t| t.split(';').next())
                    .unwrap_or_else(|| panic!("{}: no X-Ray trace id: {line}", function.binary))
                    .to_owned();
                trace_roots.insert((function.binary, root));
            }
        }
        assert_eq!(
            cold_starts, 1,
            "{}: one ColdStart metric per started process",
            function.binary
        );
    }
    assert_eq!(
        correlated,
        BTreeSet::from(["ingest", "notifier", "processor"]),
        "the correlation id is in every stage's lines"
    );
    // One X-Ray trace from ingest through the submissions queue to the processor. The hop to
    // the notifier goes through SendMessageBatch, whose entries' system attributes moto drops
    // (moto/sqs/models.py, send_message_batch); shared/src/aws/sqs.rs tests what they carry.
    let root_of = |binary: &str| {
        trace_roots
            .iter()
            .find(|(b, _)| *b == binary)
            .map(|(_, root)| root.clone())
    };
    assert!(root_of("ingest").is_some());
    assert_eq!(
        root_of("ingest"),
        root_of("processor"),
        "the processor continues ingest's trace: {trace_roots:?}"
    );
}
