//! Least privilege, proven from both sides on the emulated deployment. Every AWS call each
//! function made (moto's request recorder, attributed by the access key id each function signs
//! with) must be allowed by that function's role in the synthesized template, and every action
//! a role's statement grants must be used by some call or be listed below with the reason it
//! is needed. The same check runs on the `users` operator tool against the stack's
//! `OperatorPolicy`.
//!
//! Needs moto and the prepared template: `make test` provides both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipeline_tests::emulate::iam::{
    Call, Statement, allowed, decode, policy_statements, role_statements,
};
use pipeline_tests::emulate::moto::Moto;
use pipeline_tests::emulate::{Emulation, access_key_for, default_bin_dir, start_for_tests};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::ids::UserId;
use shared::users::User;

const DRAIN: Duration = Duration::from_secs(30);

/// Granted actions no call in the emulated run makes, and why each is still needed.
const NEEDED_WITHOUT_A_CALL: &[(&str, &str)] = &[
    (
        "logs:CreateLogStream",
        "Lambda writes the function's stdout and stderr to its log group with the function's role",
    ),
    (
        "logs:PutLogEvents",
        "Lambda writes the function's stdout and stderr to its log group with the function's role",
    ),
    (
        "xray:PutTraceSegments",
        "with active tracing Lambda sends the invocation's segments with the function's role",
    ),
    (
        "xray:PutTelemetryRecords",
        "with active tracing Lambda sends X-Ray telemetry with the function's role",
    ),
    (
        "kms:Decrypt",
        "the rejections topic is encrypted with its own key; SNS uses it on the publisher's behalf (moto does not encrypt)",
    ),
    (
        "kms:GenerateDataKey*",
        "the rejections topic is encrypted with its own key; SNS uses it on the publisher's behalf (moto does not encrypt)",
    ),
    (
        "sqs:GetQueueAttributes",
        "Lambda's event source poller reads the queue's attributes with the function's role",
    ),
    (
        "sqs:GetQueueUrl",
        "granted with the event source mapping (CDK's SqsEventSource); Lambda's poller may resolve the queue by name",
    ),
    (
        "sqs:ChangeMessageVisibility",
        "Lambda's event source poller may return a record early; the emulated poller lets the visibility timeout run out instead",
    ),
    (
        "ec2:CreateNetworkInterface",
        "Lambda creates the VPC function's network interfaces (to reach the cache, and for the processor its VPC endpoints) with the function's role",
    ),
    (
        "ec2:DescribeNetworkInterfaces",
        "Lambda finds the VPC function's network interfaces with the function's role",
    ),
    (
        "ec2:DeleteNetworkInterface",
        "Lambda removes the VPC function's network interfaces with the function's role",
    ),
    (
        "ec2:AssignPrivateIpAddresses",
        "Lambda manages the addresses of the VPC function's network interfaces with the function's role",
    ),
    (
        "ec2:UnassignPrivateIpAddresses",
        "Lambda manages the addresses of the VPC function's network interfaces with the function's role",
    ),
    (
        "dynamodb:ListStreams",
        "granted with the stream event source (CDK's DynamoEventSource, on *, which takes no resource); Lambda's poller may list the table's streams",
    ),
    (
        "dynamodb:GetItem",
        "the processor's conditional writes ask for the stored item when the condition fails (ReturnValuesOnConditionCheckFailure=ALL_OLD), a read the stack grants GetItem for; no call here is a plain GetItem",
    ),
];

/// Granted actions one caller's calls do not show, and why that caller needs them.
const NEEDED_BY_WITHOUT_A_CALL: &[(&str, &str, &str)] = &[(
    "ranker",
    "sqs:SendMessage",
    "Lambda sends a stream batch it gave up on (past the maximum record age) to the on-failure queue with the function's role; the emulated mapping keeps retrying instead",
)];

/// Functions whose code calls no AWS API, and why: they must make no recorded call, and their
/// roles are still checked (every grant explained).
const CALLS_NO_AWS_API: &[(&str, &str)] = &[(
    "boards",
    "it reads the rank index only, over the network (no IAM); Lambda uses its role for the VPC's network interfaces",
)];

fn users() -> Vec<User> {
    vec![
        User::active(UserId::parse("alice").unwrap()),
        User::active(UserId::parse("bob").unwrap()),
        User::suspended(UserId::parse("mallory").unwrap()),
    ]
}

fn score(hero: &str, points: u32) -> Value {
    json!({"heroId": hero, "score": points, "achievedAt": "2026-11-30T12:00:00Z"})
}

/// Everything the functions do in normal operation: accept, reject and notify, a keyed retry
/// and a conflicting reuse of a key, a batch, a status read.
async fn exercise(emulation: &Emulation) {
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", emulation.stack.url);
    let post = |user: &str, key: Option<&str>, body: Value| {
        let path = if body.get("submissions").is_some() {
            "/v1/scores/batch"
        } else {
            "/v1/scores"
        };
        let mut request = http
            .post(url(path))
            .bearer_auth(emulation.stack.token(user))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    let accepted = post("alice", Some("k-1"), score("storm", 10))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = accepted.json::<Value>().await.unwrap()["submissionId"]
        .as_str()
        .unwrap()
        .to_owned();
    for (user, key, body) in [
        ("alice", Some("k-1"), score("storm", 10)),
        ("mallory", None, score("storm", 99)),
        (
            "bob",
            None,
            json!({"submissions": [score("storm", 5), score("rogue", 6)]}),
        ),
    ] {
        assert_eq!(
            post(user, key, body).await.unwrap().status(),
            StatusCode::ACCEPTED
        );
    }
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    // The same key with another score: refused as a conflict and notified.
    assert_eq!(
        post("alice", Some("k-1"), score("storm", 11))
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert!(emulation.stack.wait_until_drained(DRAIN).await);
    for path in [
        format!("/v1/submissions/{id}"),
        "/v1/leaderboards/storm".to_owned(),
        "/v1/leaderboards/storm/players/me?around=2".to_owned(),
    ] {
        let response = pipeline_tests::send_retrying_unavailable(|| {
            http.get(url(&path))
                .bearer_auth(emulation.stack.token("alice"))
        })
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(
        emulation.stack.published().await.len(),
        2,
        "mallory's rejection and the conflict"
    );
}

/// Runs the operator tool as an operator would, signing with `access_key`.
fn operate(emulation: &Emulation, access_key: &str, args: &[&str]) {
    let output = std::process::Command::new(default_bin_dir().join("users"))
        .args(args)
        .env("AWS_ENDPOINT_URL", std::env::var("MOTO_ENDPOINT").unwrap())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", "emulated-secret")
        .env(
            "USERS_TABLE",
            &emulation.resources.outputs["UsersTableName"],
        )
        .env(
            "SUBMISSIONS_TABLE",
            &emulation.resources.outputs["SubmissionsTableName"],
        )
        .output()
        .expect("the users binary runs (make test builds it)");
    assert!(
        output.status.success(),
        "users {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The calls each access key made, from moto's recording.
async fn recorded_calls(moto: &Moto, keys: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<Call>> {
    let recording = moto.recorded_requests().await.unwrap();
    let mut calls: BTreeMap<String, BTreeSet<Call>> = BTreeMap::new();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let authorization = entry["headers"]
            .as_object()
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            })
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !keys.iter().any(|k| authorization.contains(k.as_str())) {
            continue;
        }
        let recorded = decode(&entry).unwrap_or_else(|| {
            panic!(
                "a request the evaluator cannot name: {} {}",
                entry["method"], entry["url"]
            )
        });
        calls
            .entry(recorded.access_key_id)
            .or_default()
            .extend(recorded.calls);
    }
    calls
}

/// Every call allowed; every granted action used or needed for a listed reason.
fn check(caller: &str, statements: &[Statement], calls: &BTreeSet<Call>) -> Vec<String> {
    let mut problems = Vec::new();
    assert!(!statements.is_empty(), "{caller} has no policy statements");
    for statement in statements {
        if statement.has_condition {
            problems.push(format!(
                "{caller}: {} has a Condition this check cannot judge",
                statement.id
            ));
        }
        if statement
            .resources
            .iter()
            .any(|r| r.starts_with("unresolved:"))
        {
            problems.push(format!(
                "{caller}: {} names a resource the deployment does not resolve: {:?}",
                statement.id, statement.resources
            ));
        }
    }
    for call in calls {
        if !allowed(statements, call) {
            problems.push(format!(
                "{caller}: {} on {} is not allowed",
                call.action, call.resource
            ));
        }
    }
    for statement in statements.iter().filter(|s| s.allow) {
        for action in &statement.actions {
            let used = calls.iter().any(|call| {
                Statement {
                    actions: vec![action.clone()],
                    ..statement.clone()
                }
                .grants(call)
            });
            let reason = NEEDED_WITHOUT_A_CALL.iter().any(|(a, _)| a == action)
                || NEEDED_BY_WITHOUT_A_CALL
                    .iter()
                    .any(|(c, a, _)| *c == caller && a == action);
            if !used && !reason {
                problems.push(format!(
                    "{caller}: {} grants {action} on {:?}, which no call used and no reason explains: remove it or say why it is needed",
                    statement.id, statement.resources
                ));
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_allowed_and_every_grant_is_used_or_explained() {
    let moto = Moto::new(std::env::var("MOTO_ENDPOINT").unwrap_or_default());
    // Recording from before the functions start: what they call at start (the stream poller's
    // DescribeStream and GetShardIterator, in the ranker's name, come once, whenever the poller
    // first reads) is recorded however the start and the exercise interleave. Other stacks'
    // calls are recorded too and left out by access key.
    moto.start_recording().await.unwrap();
    let emulation = start_for_tests(users(), |_| {}).await;
    exercise(&emulation).await;

    let operator_key = access_key_for(&emulation.stack_name, "operator");
    operate(&emulation, &operator_key, &["add", "carol"]);
    operate(&emulation, &operator_key, &["suspend", "carol"]);
    operate(&emulation, &operator_key, &["activate", "carol"]);
    operate(&emulation, &operator_key, &["list"]);
    operate(
        &emulation,
        &operator_key,
        &["suspend", "alice", "--revoke-scores"],
    );

    let mut keys: BTreeSet<String> = emulation
        .functions
        .iter()
        .map(|f| f.access_key_id.clone())
        .collect();
    keys.insert(operator_key.clone());
    let calls = recorded_calls(&moto, &keys).await;
    // The rest of the suite need not be recorded.
    moto.stop_recording().await.unwrap();

    let physical = &emulation.resources.physical_ids;
    let mut problems = Vec::new();
    let mut table = Vec::new();
    for function in &emulation.functions {
        let role = function
            .role_logical_id
            .as_deref()
            .expect("each function has a role");
        let statements = role_statements(&emulation.template, physical, role);
        let made = calls
            .get(&function.access_key_id)
            .cloned()
            .unwrap_or_default();
        let calls_none = CALLS_NO_AWS_API.iter().any(|(f, _)| *f == function.binary);
        assert_eq!(
            made.is_empty(),
            calls_none,
            "{}: recorded calls {made:?}; CALLS_NO_AWS_API lists the functions that make none",
            function.binary
        );
        problems.extend(check(function.binary, &statements, &made));
        table.push((function.binary, made));
    }
    let operator_policy = emulation
        .template
        .resources_of_type("AWS::IAM::ManagedPolicy")
        .into_iter()
        .map(|(id, _)| id.to_owned())
        .find(|id| id.starts_with("OperatorPolicy"))
        .expect("the stack defines the operator policy");
    let operator_calls = calls.get(&operator_key).cloned().unwrap_or_default();
    problems.extend(check(
        "users",
        &policy_statements(&emulation.template, physical, &operator_policy),
        &operator_calls,
    ));
    table.push(("users", operator_calls));

    for (caller, made) in &table {
        eprintln!("{caller}:");
        for call in made {
            eprintln!("  {} {}", call.action, call.resource);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_reports_a_call_not_allowed_and_a_grant_not_used() {
    let statement = Statement {
        id: "Policy#0".to_owned(),
        allow: true,
        actions: vec![
            "dynamodb:PutItem".to_owned(),
            "dynamodb:DeleteItem".to_owned(),
        ],
        resources: vec!["arn:aws:dynamodb:us-east-1:123456789012:table/t".to_owned()],
        has_condition: false,
    };
    let calls = BTreeSet::from([
        Call {
            action: "dynamodb:PutItem".to_owned(),
            resource: "arn:aws:dynamodb:us-east-1:123456789012:table/t".to_owned(),
        },
        Call {
            action: "dynamodb:PutItem".to_owned(),
            resource: "arn:aws:dynamodb:us-east-1:123456789012:table/other".to_owned(),
        },
    ]);
    let problems = check("f", &[statement], &calls);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("table/other is not allowed"),
        "{problems:?}"
    );
    assert!(problems[1].contains("dynamodb:DeleteItem"), "{problems:?}");
}
