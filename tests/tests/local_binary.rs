//! The `local` binary as a user runs it: start, read the ready line, submit with the printed
//! tokens, see the notification on stdout, stop with Ctrl-C (SIGINT) and exit cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[tokio::test]
async fn the_local_binary_prints_a_usable_token_and_the_notifications() {
    run_local_and_submit(&[]).await;
}

#[tokio::test]
async fn the_local_binary_provisions_and_uses_an_aws_endpoint() {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "MOTO_ENDPOINT is not set: run this test through `scripts/moto.sh run -- cargo test` (make test does this)"
    );
    let prefix = format!("local-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let args = [
        "--backend",
        "aws",
        "--provision",
        "--prefix",
        &prefix,
        "--user-quota-limit",
        "5",
    ];
    let ready = run_local_and_submit(&args).await;
    assert_eq!(ready["backend"], "aws");
    assert_eq!(
        ready["resources"]["SUBMISSIONS_TABLE"],
        format!("{prefix}-submissions")
    );
    assert_eq!(
        ready["resources"]["QUOTAS_TABLE"],
        format!("{prefix}-quotas")
    );
}

#[tokio::test]
async fn the_local_binarys_logs_carry_the_correlation_id_and_end_with_the_stop_line() {
    // GIVEN the local stack at the info level, its stderr going to a file
    let log_path =
        std::env::temp_dir().join(format!("local-logs-{}.txt", uuid::Uuid::now_v7().simple()));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_local"))
        .args(["--addr", "127.0.0.1:0", "--drain-timeout-seconds", "5"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("the local binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: Value = serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap();

    // WHEN a submission with a correlation id goes through, and the stack is stopped
    let url = ready["url"].as_str().unwrap();
    let alice = ready["tokens"]["alice"].as_str().unwrap();
    assert_eq!(post_score(url, Some(alice), "trace-me-42").await, 202);
    // AND a request without a token is refused
    assert_eq!(post_score(url, None, "refuse-me-43").await, 401);
    stop(child).await;

    // THEN the log holds the submission's correlation id at ingest and on the processor's
    // batch line, the refusal with the caller's address, and everything up to the line
    // written last before the process exited
    let logs = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).ok();
    let traced: Vec<&str> = logs.lines().filter(|l| l.contains("trace-me-42")).collect();
    assert!(
        traced.iter().any(|l| l.contains("request enqueued")),
        "{logs}"
    );
    assert!(
        traced
            .iter()
            .any(|l| l.contains("batch processed") && l.contains("accepted_requests=trace-me-42")),
        "{logs}"
    );
    assert!(
        logs.lines().any(|l| l.contains("refuse-me-43")
            && l.contains("request refused")
            && l.contains("source_ip=127.0.0.1")),
        "{logs}"
    );
    let last = logs.lines().last().unwrap_or_default();
    assert!(
        last.contains("stopped; all queued work finished"),
        "the last line is {last:?}"
    );
}

/// Posts one score to the stack at `url` as `token` (or with none), with `correlation_id`;
/// returns the status.
async fn post_score(url: &str, token: Option<&str>, correlation_id: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/scores"))
        .header("content-type", "application/json")
        .header("x-correlation-id", correlation_id)
        .body(r#"{"heroId":"storm","score":1}"#);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Sends Ctrl-C (SIGINT) and waits for a clean exit.
async fn stop(child: std::process::Child) {
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut child = child;
    let exit = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("the local binary stops within 20 s of Ctrl-C")
    .unwrap()
    .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Starts `local` with extra arguments, submits as alice and mallory, checks the notification
/// and a clean Ctrl-C exit; returns the ready line.
async fn run_local_and_submit(extra_args: &[&str]) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--drain-timeout-seconds",
            "5",
            "--visibility-timeout-seconds",
            "1",
        ])
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the local binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: Value = serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    for (user, score) in [("alice", 10), ("mallory", 20)] {
        let token = ready["tokens"][user].as_str().unwrap();
        let response = client
            .post(format!("{url}/v1/scores"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(format!(r#"{{"heroId":"storm","score":{score}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{user}");
    }

    let notification: Value = serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap();
    assert_eq!(notification["userId"], "mallory");
    assert_eq!(notification["reason"], "suspended_user");
    assert_eq!(notification["score"], 20);
    for field in ["submissionId", "heroId", "rejectedAt"] {
        assert!(notification[field].is_string(), "{field} in {notification}");
    }

    stop(child).await;
    assert!(stdout.next().is_none(), "nothing else was printed");
    ready
}
