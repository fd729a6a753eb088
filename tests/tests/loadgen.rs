//! The load generator itself: bounded runs against an in-process local stack whose stored
//! submissions must match the generator's counts, the `loadgen` and `bare` binaries as a user
//! runs them, argument checking, the scenario mix, and the percentile and summary logic.
//! Nothing here asserts how fast anything is.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pipeline_tests::backend::memory::memory_backend;
use pipeline_tests::load::cli::{DEFAULT_DURATION, bounds, parse_duration};
use pipeline_tests::load::payload::{Tokens, synthetic_user, tamper};
use pipeline_tests::load::run::cpu_seconds_from_stat;
use pipeline_tests::load::soak::{SoakArgs, soak};
use pipeline_tests::load::startup::{StartupArgs, shown_command, startup_time};
use pipeline_tests::load::stats::{LatencySummary, Recorder, RunShape};
use pipeline_tests::load::{Cli, LoadError, Mix, Plan, Scenario, Summary, run};
use pipeline_tests::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER};
use pipeline_tests::{LocalStack, StackOptions, TokenMinter};
use shared::auth::TokenVerifier;
use shared::ids::UserId;
use shared::memory::QueueSettings;
use shared::users::User;
use tokio::sync::watch;

const SECRET: &str = "loadgen-test-secret-loadgen-test-secret-0123";
const DRAIN: Duration = Duration::from_secs(30);

fn minter() -> TokenMinter {
    TokenMinter::new(SECRET.as_bytes(), LOCAL_ISSUER, LOCAL_AUDIENCE)
}

async fn stack() -> LocalStack {
    let users = vec![
        User::active(UserId::parse("alice").unwrap()),
        User::suspended(UserId::parse("mallory").unwrap()),
    ];
    let mut options = StackOptions::for_tests(users);
    options.minter = minter();
    let (backend, _) = memory_backend(QueueSettings::default(), None);
    LocalStack::start(options, backend).await.unwrap()
}

/// `loadgen ARGS...` parsed into a load plan.
fn plan(args: &[&str]) -> Result<Plan, String> {
    let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    Plan::from_args(&cli.load)
}

async fn run_plan(plan: Plan) -> Summary {
    let (_stop, stopped) = watch::channel(false);
    tokio::time::timeout(
        Duration::from_secs(60),
        run(Arc::new(plan), stopped, |_| {}),
    )
    .await
    .expect("a bounded run ends")
    .expect("the run starts")
}

// ---- bounded runs against the in-process local stack ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_gets_the_expected_answers_and_the_stack_stores_every_accepted_submission() {
    // GIVEN the local stack, and 200 requests of the default mix with batches of 5
    let stack = stack().await;
    let plan = plan(&[
        &stack.url,
        "--requests",
        "200",
        "--concurrency",
        "4",
        "--mix",
        "single=70,batch=10,invalid-token=10,invalid-body=10",
        "--batch-size",
        "5",
        "--jwt-secret",
        SECRET,
        "--quiet",
    ])
    .unwrap();

    // WHEN the load runs
    let summary = run_plan(plan).await;

    // THEN every request got the answer its scenario expects, in the mix's exact proportions
    assert_eq!(summary.requests, 200);
    assert_eq!(summary.expected, 200, "{}", summary.render());
    assert_eq!((summary.unexpected, summary.errors), (0, 0));
    let scenario = |name: &str| &summary.scenarios[name];
    assert_eq!(scenario("single").requests, 140);
    assert_eq!(scenario("batch").requests, 20);
    assert_eq!(scenario("invalid-token").status_codes.get(&401), Some(&20));
    assert_eq!(scenario("invalid-body").status_codes.get(&400), Some(&20));
    assert_eq!(summary.status_codes.get(&202), Some(&160));
    assert_eq!(summary.latency.count, 200);
    // AND the stack stored exactly the submissions the generator counted as accepted
    assert_eq!(summary.submissions_accepted, 140 + 20 * 5);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.stored_count().await as u64,
        summary.submissions_accepted
    );
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboard_reads_in_the_mix_are_answered_200_and_see_the_stored_scores() {
    // GIVEN the local stack, and a mix of submissions and leaderboard reads
    let stack = stack().await;
    let args = |requests: &'static str| {
        plan(&[
            &stack.url,
            "--requests",
            requests,
            "--concurrency",
            "4",
            "--mix",
            "single=50,leaderboard=50",
            "--jwt-secret",
            SECRET,
            "--quiet",
        ])
        .unwrap()
    };

    // WHEN the load runs
    let summary = run_plan(args("200")).await;

    // THEN reads are answered 200 and count no submissions
    assert_eq!(summary.expected, 200, "{}", summary.render());
    let reads = &summary.scenarios["leaderboard"];
    assert_eq!(reads.requests, 100);
    assert_eq!(reads.status_codes.get(&200), Some(&100));
    assert_eq!(summary.submissions_accepted, 100);

    // AND a board the generator reads holds what it submitted for that hero
    assert!(stack.wait_until_drained(DRAIN).await);
    let response = reqwest::Client::new()
        .get(format!("{}{}", stack.url, Scenario::Leaderboard.path(0)))
        .bearer_auth(stack.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let board: serde_json::Value = response.json().await.unwrap();
    assert!(!board["entries"].as_array().unwrap().is_empty(), "{board}");
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_over_the_users_so_a_suspended_users_share_is_rejected_and_notified() {
    // GIVEN tokens for alice (active) and mallory (suspended), used in turn
    let stack = stack().await;
    let plan = plan(&[
        &stack.url,
        "-n",
        "60",
        "-c",
        "3",
        "--mix",
        "single=1",
        "--jwt-secret",
        SECRET,
        "--user",
        "alice,mallory",
        "-q",
    ])
    .unwrap();
    assert_eq!(plan.tokens.len(), 2);

    // WHEN 60 single submissions are sent
    let summary = run_plan(plan).await;

    // THEN all are accepted by ingest, all are stored, and mallory's half is notified
    assert_eq!(summary.submissions_accepted, 60);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(stack.stored_count().await, 60);
    let published = stack.published().await;
    assert_eq!(published.len(), 30);
    assert!(published.iter().all(|r| r.user_id.as_str() == "mallory"));
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_run_sends_the_bounded_count_and_says_it_was_open() {
    let stack = stack().await;
    let plan = plan(&[
        &stack.url,
        "--rate",
        "400",
        "--requests",
        "40",
        "-c",
        "8",
        "--mix",
        "single=1",
        "--jwt-secret",
        SECRET,
        "-q",
    ])
    .unwrap();
    let summary = run_plan(plan).await;
    assert_eq!(summary.model, "open");
    assert_eq!(summary.target_rate_per_s, Some(400.0));
    assert_eq!(summary.requests, 40);
    assert_eq!(summary.expected, 40);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(stack.stored_count().await, 40);
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_file_are_used_and_wrong_ones_are_counted_as_unexpected() {
    // GIVEN a token file with one valid token and one signed with another secret
    let stack = stack().await;
    let other = TokenMinter::new(
        "another-secret-another-secret-another-secret".as_bytes(),
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
    );
    let dir = std::env::temp_dir().join(format!("loadgen-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens.txt");
    std::fs::write(
        &file,
        format!(
            "# tokens\n\n{}\n{}\n",
            minter().mint("alice", 600),
            other.mint("alice", 600)
        ),
    )
    .unwrap();
    let plan = plan(&[
        &stack.url,
        "-n",
        "10",
        "-c",
        "1",
        "--mix",
        "single=1",
        "--tokens-file",
        file.to_str().unwrap(),
        "-q",
    ])
    .unwrap();

    // WHEN 10 singles go out, alternating the two tokens
    let summary = run_plan(plan).await;
    std::fs::remove_dir_all(&dir).unwrap();

    // THEN the valid half is accepted and the other half is a counted 401
    assert_eq!(summary.expected, 5);
    assert_eq!(summary.unexpected, 5);
    assert_eq!(summary.status_codes.get(&401), Some(&5));
    assert_eq!(summary.submissions_accepted, 5);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(stack.stored_count().await, 5);
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_a_long_run_early_and_still_summarises() {
    let stack = stack().await;
    let plan = plan(&[
        &stack.url,
        "--duration",
        "10m",
        "--mix",
        "single=1",
        "--jwt-secret",
        SECRET,
        "-q",
    ])
    .unwrap();
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(run(Arc::new(plan), stopped, |_| {}));
    // Stop once some submissions have gone all the way through.
    for _ in 0..1500 {
        if stack.stored_count().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the run stops when told")
        .unwrap()
        .unwrap();
    assert!(summary.interrupted);
    assert!(summary.requests > 0);
    assert_eq!(summary.requests, summary.expected);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.stored_count().await as u64,
        summary.submissions_accepted
    );
    assert!(stack.shutdown(DRAIN).await);
}

#[tokio::test]
async fn a_target_that_refuses_connections_is_reported_before_the_run_starts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let plan = plan(&[&url, "-n", "5", "--jwt-secret", SECRET, "-q"]).unwrap();
    let (_stop, stopped) = watch::channel(false);
    let error = run(Arc::new(plan), stopped, |_| {}).await.unwrap_err();
    assert!(matches!(error, LoadError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains(&url), "{error}");
}

// ---- the binaries ----

/// A child process stopped on drop, so a failing test leaves no server behind.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(program: &str, args: &[&str]) -> (Spawned, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    (Spawned(child), ready["url"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loadgen_binary_prints_a_json_summary_that_matches_what_the_stack_stored() {
    let stack = stack().await;
    let url = stack.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args([
                &url,
                "-n",
                "50",
                "-c",
                "2",
                "--batch-size",
                "3",
                "--json",
                "-q",
            ])
            .env("JWT_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Summary = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary.requests, 50);
    assert_eq!(summary.expected, 50);
    // The default mix over 50 requests: 35 singles and 5 batches of 3.
    assert_eq!(summary.submissions_accepted, 35 + 5 * 3);
    assert!(stack.wait_until_drained(DRAIN).await);
    assert_eq!(
        stack.stored_count().await as u64,
        summary.submissions_accepted
    );
    assert!(stack.shutdown(DRAIN).await);
}

#[test]
fn the_loadgen_binary_refuses_a_remote_target_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["http://192.0.2.10:8080", "-n", "1", "--jwt-secret", SECRET])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn the_loadgen_binary_explains_itself() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--duration",
        "--requests",
        "--concurrency",
        "--rate",
        "--mix",
        "--batch-size",
        "--jwt-secret",
        "--users",
        "--tokens-file",
        "--allow-remote",
        "--json",
        "startup-time",
    ] {
        assert!(help.contains(option), "--help does not mention {option}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_server_answers_every_submission_202() {
    let (_bare, url) = spawn_server(env!("CARGO_BIN_EXE_bare"), &["--addr", "127.0.0.1:0"]);
    let plan = plan(&[
        &url,
        "-n",
        "30",
        "--mix",
        "single=2,batch=1",
        "--jwt-secret",
        SECRET,
        "-q",
    ])
    .unwrap();
    let summary = run_plan(plan).await;
    assert_eq!(summary.status_codes.get(&202), Some(&30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_server_in_ingest_mode_runs_the_real_checks() {
    // GIVEN `bare --app ingest`: the ingest router alone, verifying with the shared secret
    let (_ingest, url) = spawn_server(
        env!("CARGO_BIN_EXE_bare"),
        &[
            "--app",
            "ingest",
            "--addr",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
        ],
    );
    // WHEN the default mix is sent
    let plan = plan(&[&url, "-n", "40", "--jwt-secret", SECRET, "-q"]).unwrap();
    let summary = run_plan(plan).await;
    // THEN valid requests are accepted and the invalid ones refused, as by the local stack
    assert_eq!(summary.expected, 40, "{}", summary.render());
    assert_eq!(summary.status_codes.get(&401), Some(&4));
    assert_eq!(summary.status_codes.get(&400), Some(&4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_time_starts_the_local_binary_and_waits_for_its_first_202() {
    let args = StartupArgs {
        jwt_secret: SECRET.to_owned(),
        issuer: LOCAL_ISSUER.to_owned(),
        audience: LOCAL_AUDIENCE.to_owned(),
        user: "alice".to_owned(),
        repeat: 2,
        timeout: Duration::from_secs(30),
        json: true,
        command: vec![
            env!("CARGO_BIN_EXE_local").to_owned(),
            "--addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--jwt-secret".to_owned(),
            SECRET.to_owned(),
        ],
    };
    let report = startup_time(&args).await.unwrap();
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        assert!(run.ready_line_ms <= run.first_202_ms);
    }
    assert!(report.first_202_ms_min <= report.first_202_ms_median);
    assert!(report.first_202_ms_median <= report.first_202_ms_max);
}

#[tokio::test]
async fn startup_time_reports_a_server_that_never_accepts() {
    // `bare` answers 202 to anything, so use `local` with a different secret: it answers 401.
    let args = StartupArgs {
        jwt_secret: SECRET.to_owned(),
        issuer: LOCAL_ISSUER.to_owned(),
        audience: LOCAL_AUDIENCE.to_owned(),
        user: "alice".to_owned(),
        repeat: 1,
        timeout: Duration::from_secs(30),
        json: false,
        command: vec![
            env!("CARGO_BIN_EXE_local").to_owned(),
            "--addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--jwt-secret".to_owned(),
            "a-different-secret-a-different-secret-xyz".to_owned(),
        ],
    };
    let error = startup_time(&args).await.unwrap_err();
    assert!(error.contains("401"), "{error}");
}

fn soak_args(duration: Duration, command: Vec<String>) -> SoakArgs {
    SoakArgs {
        duration,
        rate: 200.0,
        concurrency: 8,
        mix: Mix::parse("single=70,batch=10,invalid-token=10,invalid-body=10").unwrap(),
        batch_size: 5,
        jwt_secret: SECRET.to_owned(),
        issuer: LOCAL_ISSUER.to_owned(),
        audience: LOCAL_AUDIENCE.to_owned(),
        user: vec![],
        sample_every: Duration::from_millis(500),
        timeout: Duration::from_secs(30),
        json: true,
        command,
    }
}

fn local_command(secret: &str) -> Vec<String> {
    [
        env!("CARGO_BIN_EXE_local"),
        "--addr",
        "127.0.0.1:0",
        "--jwt-secret",
        secret,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_samples_the_servers_memory_checks_every_answer_and_stops_it_cleanly() {
    let args = soak_args(Duration::from_secs(3), local_command(SECRET));
    let samples = Arc::new(std::sync::Mutex::new(0));
    let seen = samples.clone();
    let report = soak(&args, move |_, _| *seen.lock().unwrap() += 1)
        .await
        .unwrap();
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.load.requests, report.load.expected);
    assert!(report.load.submissions_accepted > 0);
    // A sample before the load, about one per 500 ms, and one at the end.
    assert!(report.samples.len() >= 5, "{:?}", report.samples);
    assert_eq!(*samples.lock().unwrap(), report.samples.len() - 1);
    assert!(
        report
            .samples
            .windows(2)
            .all(|w| w[0].elapsed_s <= w[1].elapsed_s)
    );
    assert_eq!(report.samples[0].rss_kib, report.rss_start_kib);
    assert_eq!(report.samples.last().unwrap().rss_kib, report.rss_end_kib);
    assert!(report.rss_peak_kib >= report.rss_end_kib.max(report.rss_start_kib));
    assert!(report.rss_growth_bytes_per_accepted_submission.is_some());
    assert!(report.shutdown.clean && report.shutdown.exit_code == Some(0));
    assert!(!report.command.contains(SECRET), "{}", report.command);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_fails_when_the_server_answers_wrongly() {
    // The server verifies with another secret: every valid submission gets a 401.
    let args = soak_args(
        Duration::from_secs(1),
        local_command("a-different-secret-a-different-secret-xyz"),
    );
    let report = soak(&args, |_, _| {}).await.unwrap();
    assert!(!report.passed());
    assert!(report.load.unexpected > 0);
    assert!(report.render().contains("FAILED"));
}

#[tokio::test]
async fn a_soak_refuses_an_unbounded_run_and_a_server_that_never_gets_ready() {
    let too_long = soak_args(Duration::from_secs(2 * 3600), local_command(SECRET));
    let error = soak(&too_long, |_, _| {}).await.unwrap_err();
    assert!(error.contains("at most 3600s"), "{error}");
    let silent = soak_args(Duration::from_secs(1), vec!["true".to_owned()]);
    let error = soak(&silent, |_, _| {}).await.unwrap_err();
    assert!(error.contains("ready line"), "{error}");
}

#[test]
fn secrets_are_hidden_in_reported_commands() {
    let command = [
        "local",
        "--jwt-secret",
        "s3cret",
        "--token=abc",
        "--addr",
        "x",
    ]
    .map(str::to_owned);
    assert_eq!(
        shown_command(&command),
        "local --jwt-secret *** --token=*** --addr x"
    );
}

// ---- arguments ----

#[test]
fn without_bounds_a_run_lasts_the_default_duration() {
    let plan = plan(&["http://127.0.0.1:9", "--jwt-secret", SECRET]).unwrap();
    assert_eq!(plan.duration, Some(DEFAULT_DURATION));
    assert_eq!(plan.requests, None);
}

#[test]
fn both_bounds_are_kept_and_each_is_capped() {
    assert_eq!(
        bounds(Some(Duration::from_secs(5)), Some(10)).unwrap(),
        (Some(Duration::from_secs(5)), Some(10))
    );
    assert_eq!(bounds(None, Some(10)).unwrap(), (None, Some(10)));
    assert!(bounds(Some(Duration::ZERO), None).is_err());
    assert!(bounds(Some(Duration::from_secs(2 * 3600)), None).is_err());
    assert!(bounds(None, Some(0)).is_err());
    assert!(bounds(None, Some(1_000_000_000)).is_err());
}

#[test]
fn a_remote_target_needs_allow_remote() {
    let refused = plan(&["http://192.0.2.10:8080", "--jwt-secret", SECRET]).unwrap_err();
    assert!(refused.contains("not a loopback address"), "{refused}");
    assert!(refused.contains("--allow-remote"), "{refused}");
    let allowed = plan(&[
        "https://192.0.2.10/prod",
        "--jwt-secret",
        SECRET,
        "--allow-remote",
    ])
    .unwrap();
    assert!(allowed.target.https);
    assert_eq!(allowed.target.port, 443);
    assert_eq!(allowed.target.uri("/v1/scores"), "/prod/v1/scores");
}

#[test]
fn localhost_names_count_as_loopback() {
    let plan = plan(&["http://localhost:3000/", "-n", "1", "--jwt-secret", SECRET]).unwrap();
    assert!(plan.target.is_loopback());
    assert_eq!(plan.target.uri("/v1/scores"), "/v1/scores");
}

#[test]
fn out_of_range_options_are_refused_with_a_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["-n", "1", "--jwt-secret", "short"], "at least 32 bytes"),
        (&["-n", "1"], "--tokens-file"),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--batch-size", "101"],
            "--batch-size",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "-c", "0"],
            "--concurrency",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--rate", "0"],
            "--rate",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--mix", "single=0"],
            "positive weight",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--mix", "bulk=3"],
            "unknown scenario",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--users", "0"],
            "--users",
        ),
        (
            &["-n", "1", "--jwt-secret", SECRET, "--timeout", "0s"],
            "--timeout",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["http://127.0.0.1:9"];
        all.extend_from_slice(args);
        let error = plan(&all).unwrap_err();
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    let no_url = Cli::try_parse_from(["loadgen", "-n", "1"]).unwrap_err();
    assert!(no_url.to_string().contains("<URL>"), "{no_url}");
}

#[test]
fn synthetic_users_each_get_a_token() {
    let plan = plan(&["http://127.0.0.1:9", "--jwt-secret", SECRET, "--users", "3"]).unwrap();
    assert_eq!(plan.tokens.len(), 3);
    assert_eq!(synthetic_user(7), "load-user-000007");
    let verifier = TokenVerifier::new(&minter().auth_config()).unwrap();
    let header = plan.tokens.valid(1).to_str().unwrap();
    let principal = verifier
        .verify(header.strip_prefix("Bearer ").unwrap())
        .unwrap();
    assert_eq!(principal.subject.as_str(), "load-user-000001");
}

#[test]
fn durations_take_common_units() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    assert!(parse_duration("ten").is_err());
    assert!(parse_duration("5 days").is_err());
}

// ---- tokens and the mix ----

#[test]
fn a_tampered_token_keeps_its_shape_and_fails_verification() {
    let token = minter().mint("alice", 600);
    let tampered = tamper(&token);
    assert_ne!(tampered, token);
    assert_eq!(tampered.len(), token.len());
    assert_eq!(tampered.split('.').count(), 3);
    let verifier = TokenVerifier::new(&minter().auth_config()).unwrap();
    assert!(verifier.verify(&token).is_ok());
    assert!(verifier.verify(&tampered).is_err());
}

#[test]
fn a_token_file_skips_comments_and_blank_lines_and_refuses_non_tokens() {
    let token = minter().mint("alice", 600);
    let tokens = Tokens::parse_lines(&format!("# comment\n\n{token}\nBearer {token}\n")).unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens.valid(0), tokens.valid(1));
    assert!(Tokens::parse_lines("# nothing here\n").is_err());
    assert!(Tokens::parse_lines("not-a-jwt\n").is_err());
}

#[test]
fn the_mix_has_exact_proportions_per_period_and_interleaves() {
    let mix = Mix::parse("single=70,batch=10,invalid-token=10,invalid-body=10").unwrap();
    assert_eq!(mix.period(), 10);
    let count = |s: Scenario| (0..1000).filter(|i| mix.pick(*i) == s).count();
    assert_eq!(count(Scenario::Single), 700);
    assert_eq!(count(Scenario::Batch), 100);
    assert_eq!(count(Scenario::InvalidToken), 100);
    assert_eq!(count(Scenario::InvalidBody), 100);

    let even = Mix::parse("single=1, batch=1").unwrap();
    let sequence: Vec<Scenario> = (0..4).map(|i| even.pick(i)).collect();
    assert_eq!(
        sequence,
        [
            Scenario::Single,
            Scenario::Batch,
            Scenario::Single,
            Scenario::Batch
        ]
    );
    assert_eq!(even.to_string(), "single=1,batch=1");
    assert!(Mix::parse("single=1,single=2").is_err());
    assert!(Mix::parse("single").is_err());
    let reads = Mix::parse("leaderboard=1").unwrap();
    assert_eq!(reads.pick(0), Scenario::Leaderboard);
    assert!(Scenario::Leaderboard.is_read());
    assert_eq!(
        Scenario::Leaderboard.path(3),
        "/v1/leaderboards/hero-3?limit=10"
    );
}

// ---- percentiles and the summary ----

fn shape() -> RunShape {
    RunShape {
        target: "http://127.0.0.1:3000".to_owned(),
        concurrency: 4,
        rate: None,
        mix: "single=1".to_owned(),
        batch_size: 10,
    }
}

#[test]
fn percentiles_come_from_the_recorded_latencies() {
    let mut recorder = Recorder::new();
    for ms in 1..=1000u64 {
        recorder.record_response(Scenario::Single, 202, Duration::from_millis(ms), 1);
    }
    let latency = LatencySummary::of(&recorder.latency);
    let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.002;
    assert_eq!(latency.count, 1000);
    assert!(close(latency.p50_ms, 500.0), "{latency:?}");
    assert!(close(latency.p90_ms, 900.0), "{latency:?}");
    assert!(close(latency.p99_ms, 990.0), "{latency:?}");
    assert!(close(latency.p99_9_ms, 999.0), "{latency:?}");
    assert!(close(latency.max_ms, 1000.0), "{latency:?}");
    assert!(close(latency.mean_ms, 500.5), "{latency:?}");
}

#[test]
fn the_summary_counts_by_status_error_and_scenario() {
    // GIVEN two shards' worth of outcomes
    let mut a = Recorder::new();
    a.record_response(Scenario::Single, 202, Duration::from_millis(1), 1);
    a.record_response(Scenario::Single, 503, Duration::from_millis(2), 1);
    a.record_response(Scenario::Batch, 202, Duration::from_millis(3), 10);
    a.record_error(
        Scenario::Batch,
        "timeout",
        "no response within the request timeout",
    );
    let mut b = Recorder::new();
    b.record_response(Scenario::InvalidToken, 401, Duration::from_millis(1), 1);
    b.record_response(Scenario::InvalidBody, 202, Duration::from_millis(1), 1);
    b.record_error(Scenario::Single, "connect", "connection refused");
    b.record_error(Scenario::Single, "connect", "connection refused again");

    // WHEN they are merged and summarised over 2 seconds
    a.merge(&b);
    let summary = Summary::build(&shape(), &a, Duration::from_secs(2), false, None);

    // THEN the totals, statuses, errors and per-scenario figures add up
    assert_eq!(summary.requests, 8);
    assert_eq!(summary.requests_per_s, 4.0);
    assert_eq!(summary.expected, 3);
    assert_eq!(
        summary.unexpected, 2,
        "the 503 and the 202 to an invalid body"
    );
    assert_eq!(summary.errors, 3);
    assert_eq!(
        summary.submissions_accepted, 11,
        "only expected 202s carry submissions"
    );
    assert_eq!(summary.latency.count, 5, "errors have no latency");
    assert_eq!(summary.status_codes.get(&202), Some(&3));
    assert_eq!(summary.errors_by_kind.get("connect"), Some(&2));
    assert_eq!(summary.error_samples["connect"], "connection refused");
    let single = &summary.scenarios["single"];
    assert_eq!(
        (
            single.requests,
            single.expected,
            single.unexpected,
            single.errors
        ),
        (4, 1, 1, 2)
    );
    assert_eq!(summary.scenarios["batch"].submissions_accepted, 10);
    assert_eq!(summary.model, "closed");

    // AND the JSON form carries the same figures and the human form names them
    let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["status_codes"]["503"], 1);
    assert_eq!(json["scenarios"]["invalid-token"]["expected"], 1);
    let back: Summary = serde_json::from_value(json).unwrap();
    assert_eq!(back, summary);
    let text = summary.render();
    for needle in [
        "p99",
        "503: 1",
        "connect: 2",
        "invalid-body (400)",
        "timeout",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn an_open_model_summary_reports_late_sends() {
    let mut recorder = Recorder::new();
    recorder.record_send_lag(Duration::from_micros(100));
    recorder.record_send_lag(Duration::from_millis(5));
    recorder.record_response(Scenario::Single, 202, Duration::from_millis(6), 1);
    let shape = RunShape {
        rate: Some(100.0),
        ..shape()
    };
    let summary = Summary::build(&shape, &recorder, Duration::from_secs(1), false, Some(0.5));
    assert_eq!(summary.model, "open");
    assert_eq!(summary.late_sends, 1);
    assert_eq!(summary.max_send_lag_ms, 5.0);
    assert!(
        summary
            .render()
            .contains("1 requests waited more than 1 ms for a free connection")
    );
}

#[test]
fn cpu_time_is_read_from_a_proc_stat_line_whose_name_has_spaces() {
    let line = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 2 0 1";
    assert_eq!(cpu_seconds_from_stat(line), Some(3.0));
    assert_eq!(cpu_seconds_from_stat("garbage"), None);
}
