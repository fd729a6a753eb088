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
    let alice = shared::ids::UserId::parse("alice").unwrap();
    let stored = emulation.stack.stored(&alice, id).await.expect("stored");
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

/// Every line a function writes is one JSON object with Lambda's keys; every line names its
/// request (correlation id) or its invocation, and warnings both; one submission's correlation
/// id is in all three stages' lines and its X-Ray trace goes from ingest to the processor; each
/// of the five functions reports its cold start once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_log_lambda_json_lines_that_tie_the_three_stages_together() {
    let emulation = start_for_tests(users(), |_| {}).await;
    // An accepted score, ranked by the ranker and read through the boards function.
    let accepted = post(&emulation, "alice", "application/json", score(7)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    let http = reqwest::Client::new();
    let board: Value = pipeline_tests::send_retrying_unavailable(|| {
        http.get(format!("{}/v1/leaderboards/storm", emulation.stack.url))
            .bearer_auth(emulation.stack.token("alice"))
    })
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
    let mut batch_lines = Vec::new();
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
                correlated.insert(function.binary);
            }
            // A line names its request (the correlation id), or else its invocation; a warning
            // or an error names both, and the trace.
            let names_request = line["correlation_id"].is_string();
            let names_invocation = line["requestId"].is_string();
            assert!(
                names_request || names_invocation,
                "{}: a line that names neither its request nor its invocation: {line}",
                function.binary
            );
            if matches!(line["level"].as_str(), Some("WARN" | "ERROR")) {
                assert!(
                    names_invocation && line["target"].is_string(),
                    "{}: {line}",
                    function.binary
                );
            }
            if function.binary == "processor" && line["message"] == "batch processed" {
                batch_lines.push(line.clone());
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
    // One X-Ray trace from ingest through the submissions queue to the processor: the batch
    // that decided mallory's submission was invoked with the trace ingest's invocation had
    // (Lambda takes it from the first record's AWSTraceHeader). The hop to the notifier goes
    // through SendMessageBatch, whose entries' system attributes moto drops
    // (moto/sqs/models.py, send_message_batch); shared/src/aws/sqs.rs tests what they carry.
    let root = |header: &str| header.split(';').next().unwrap_or_default().to_owned();
    let invocations = emulation.runtime.invocations();
    let ingest = emulation
        .functions
        .iter()
        .find(|f| f.binary == "ingest")
        .unwrap();
    let ingest_roots: BTreeSet<String> = invocations
        .iter()
        .filter(|i| i.function == ingest.name)
        .map(|i| root(&i.trace_header))
        .collect();
    let rejecting = batch_lines
        .iter()
        .find(|l| l["rejected"].as_u64() >= Some(1))
        .unwrap_or_else(|| panic!("no batch line with the rejection: {batch_lines:?}"));
    let processor_invocation = invocations
        .iter()
        .find(|i| rejecting["requestId"] == i.request_id.as_str())
        .unwrap_or_else(|| panic!("the batch line names no invocation: {rejecting}"));
    assert_eq!(
        rejecting["xrayTraceId"],
        processor_invocation.trace_header.as_str(),
        "the batch line carries its invocation's trace"
    );
    assert!(
        ingest_roots.contains(&root(&processor_invocation.trace_header)),
        "the processor continues ingest's trace: {} not in {ingest_roots:?}",
        processor_invocation.trace_header
    );
    // The accepted score's request is named on its batch's line.
    assert!(
        batch_lines.iter().any(|l| l["accepted"].as_u64() >= Some(1)
            && l["accepted_requests"]
                .as_str()
                .is_some_and(|r| !r.is_empty())),
        "{batch_lines:?}"
    );
}

/// What the logs of a submission cost as deployed: every byte every function writes (the EMF
/// metric lines and cold starts included) over a run of single submissions, one in twenty
/// refused and notified, divided by the submissions. The bound is 250 bytes at the
/// default level; the figure is printed for docs/COSTS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_costs_at_most_250_bytes_of_log_at_the_default_level() {
    use futures::StreamExt as _;
    const SUBMISSIONS: usize = 200;
    const REFUSED_EVERY: usize = 20;
    let player = |i: usize| format!("player-{i:03}");
    let mut directory: Vec<User> = (0..SUBMISSIONS)
        .filter(|i| i % REFUSED_EVERY != 0)
        .map(|i| User::active(UserId::parse(player(i)).unwrap()))
        .collect();
    directory.extend(
        (0..SUBMISSIONS)
            .filter(|i| i % REFUSED_EVERY == 0)
            .map(|i| User::suspended(UserId::parse(player(i)).unwrap())),
    );
    let emulation = start_for_tests(directory, |_| {}).await;
    let emulation = &emulation;
    let statuses: Vec<StatusCode> = futures::stream::iter(0..SUBMISSIONS)
        .map(|i| async move {
            post(emulation, &player(i), "application/json", score(i as u32))
                .await
                .status()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{statuses:?}"
    );
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    let refused = SUBMISSIONS / REFUSED_EVERY;
    let accepted = SUBMISSIONS - refused;

    // Every stage's lines are in once the ranker has ranked every accepted item and the
    // notifier has logged every refusal.
    let sum_of =
        |lines: &[pipeline_tests::emulate::functions::LogLine], message: &str, field: &str| {
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(&l.line).ok())
                // A batch the ranker could not apply is delivered again and logged again.
                .filter(|l| l["message"] == message && l["retried"] != true)
                .map(|l| l[field].as_u64().unwrap_or(0))
                .sum::<u64>() as usize
        };
    let waited_until = tokio::time::Instant::now() + DRAIN;
    let mut lines = emulation.logs.lines();
    while (sum_of(&lines, "change batch ranked", "records") < accepted
        || sum_of(&lines, "batch notified", "published") < refused)
        && tokio::time::Instant::now() < waited_until
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lines = emulation.logs.lines();
    }
    assert_eq!(sum_of(&lines, "change batch ranked", "records"), accepted);
    assert_eq!(emulation.stack.published().await.len(), refused);

    // Observed: every byte over the submissions. Batches here are as full as the posting rate
    // made them, which a busy machine changes, so the bound is judged at the deployed batch
    // sizes: each stage's per-batch bytes (its batch line, less the request ids it lists, and
    // its metrics line) are spread over full batches of the template's batch size.
    let batch_size_of = |function: &str| {
        emulation
            .mappings
            .iter()
            .find(|m| m.function == function)
            .map(|m| m.poll.batch_size)
            .or_else(|| {
                emulation
                    .stream_mappings
                    .iter()
                    .find(|m| m.function == function)
                    .map(|m| m.batch_size)
            })
    };
    let mut observed_total = 0;
    let mut modeled_total = 0.0;
    let mut by_function = std::collections::BTreeMap::new();
    for function in &emulation.functions {
        let own: Vec<&str> = lines
            .iter()
            .filter(|l| l.function == function.name)
            .map(|l| l.line.as_str())
            .collect();
        let bytes = |line: &str| line.len() + 1;
        let observed: usize = own.iter().map(|l| bytes(l)).sum();
        observed_total += observed;
        let Some(batch_size) = batch_size_of(&function.name) else {
            modeled_total += observed as f64;
            by_function.insert(function.binary, (observed, observed as f64));
            continue;
        };
        let (mut per_batch, mut batches, mut records, mut per_item) = (0, 0, 0, 0);
        for line in &own {
            let value: Value = serde_json::from_str(line).unwrap();
            if value.get("_aws").is_some() {
                per_batch += bytes(line);
            } else if value["records"].is_u64() {
                let listed = value["accepted_requests"].as_str().map_or(0, str::len);
                per_batch += bytes(line) - listed;
                per_item += listed;
                batches += 1;
                records += value["records"].as_u64().unwrap() as usize;
            } else {
                per_item += bytes(line);
            }
        }
        let full_batches = records.div_ceil(batch_size).max(1);
        let modeled =
            per_item as f64 + per_batch as f64 / batches.max(1) as f64 * full_batches as f64;
        modeled_total += modeled;
        by_function.insert(function.binary, (observed, modeled));
    }
    let observed = observed_total as f64 / SUBMISSIONS as f64;
    let at_full_batches = modeled_total / SUBMISSIONS as f64;
    eprintln!(
        "log bytes per submission: {at_full_batches:.1} at the deployed batch sizes, {observed:.1} \
         as batched here ({SUBMISSIONS} singles, {refused} refused); by function (observed \
         bytes, at full batches): {by_function:?}"
    );
    assert!(
        at_full_batches <= 250.0,
        "{at_full_batches:.1} bytes of log per submission; by function: {by_function:?}"
    );
}
