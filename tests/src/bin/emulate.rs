//! `emulate`: the deployed system on this machine. Deploys the synthesized CDK template into
//! moto, runs the five real Lambda binaries against a Lambda Runtime API with the deployed
//! functions' environment, and plays API Gateway and the SQS and DynamoDB stream event source
//! mappings from the deployed resources, with a Redis cluster standing in for the serverless
//! cache (see `pipeline_tests::emulate`).
//!
//! Prints one JSON line to stdout when ready (`{"url": ..., "tokens": {...}}`), then one JSON
//! line per notification the topic publishes. The functions' log lines go to stderr as
//! CloudWatch Logs would get them. Ctrl-C stops everything it started.
//!
//! `make emulate` runs it with everything set up (synth, moto, host builds).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use clap::Parser;
use pipeline_tests::backend::print_published;
use pipeline_tests::emulate::coldstart::{measure_once, median_and_p90};
use pipeline_tests::emulate::runtime_api::RuntimeApi;
use pipeline_tests::emulate::{
    Emulation, EmulationOptions, RankIndexStandIn, default_bin_dir, prepare_dir,
};
use pipeline_tests::tokens::{seeded_tokens, seeded_users};

/// Run the deployed score pipeline locally: the CDK stack in moto, the real Lambda binaries,
/// API Gateway and the event source mappings emulated from the deployed template.
///
/// Needs a running moto (MOTO_ENDPOINT), a Redis cluster (RANK_INDEX_TLS_URL), the prepared
/// template (`scripts/emulate.sh prepare`) and host builds of the five functions; `make
/// emulate` does all of it.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// The moto server to deploy into.
    #[arg(long, env = "MOTO_ENDPOINT")]
    moto_endpoint: String,

    /// The Redis or Valkey cluster the ranker and boards functions use instead of the stack's
    /// serverless cache, rediss:// as deployed (`scripts/redis.sh start` prints one).
    #[arg(long, env = "RANK_INDEX_TLS_URL")]
    rank_index_url: String,

    /// The CA file the functions trust for that cluster's certificate (`scripts/redis.sh`
    /// makes one per run).
    #[arg(long, env = "RANK_INDEX_CA_FILE")]
    rank_index_ca_file: Option<PathBuf>,

    /// The rank index key namespace of this deployment; default: the stack name.
    #[arg(long)]
    rank_index_namespace: Option<String>,

    /// Where the API Gateway emulation listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// The directory `scripts/emulate.sh prepare` filled (cdk.out/, jwt-private.pem,
    /// context.json); default target/emulate.
    #[arg(long, env = "EMULATE_DIR")]
    prepared: Option<PathBuf>,

    /// Where the host builds of the five functions are; default: next to this binary.
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// The CloudFormation stack name.
    #[arg(long, default_value = "ScorePipeline-emulated")]
    stack_name: String,

    /// How long the printed tokens stay valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_seconds: i64,

    /// How long Ctrl-C waits for queued work to finish, in seconds.
    #[arg(long, default_value_t = 30)]
    drain_timeout_seconds: u64,

    /// Instead of serving: measure this many cold starts of each function (and of --hello),
    /// print a Markdown table on stdout, and stop (`make coldstart`).
    #[arg(long, requires = "hello")]
    cold_starts: Option<usize>,

    /// A hello-world lambda_runtime function built the same way, the cold-start baseline.
    #[arg(long)]
    hello: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _logs = shared::telemetry::init();
    let args = Args::parse();
    let options_bin_dir = args.bin_dir.clone().unwrap_or_else(default_bin_dir);
    let options = EmulationOptions {
        prepared: args.prepared.clone().unwrap_or_else(prepare_dir),
        moto_endpoint: args.moto_endpoint.clone(),
        bin_dir: options_bin_dir.clone(),
        stack_name: args.stack_name.clone(),
        gateway_addr: args.addr,
        users: seeded_users(),
        echo_logs: true,
        encode_every_body: false,
        rank_index: RankIndexStandIn {
            url: args.rank_index_url.clone(),
            ca_file: args.rank_index_ca_file.clone(),
            // This binary reads no board itself; the plain address when there is one.
            harness_url: std::env::var(shared::config::RANK_INDEX_URL)
                .unwrap_or_else(|_| args.rank_index_url.clone()),
            namespace: args
                .rank_index_namespace
                .clone()
                .unwrap_or_else(|| args.stack_name.clone()),
        },
    };
    tracing::info!(stack = %options.stack_name, moto = %options.moto_endpoint, "deploying the synthesized template into moto");
    let emulation = Emulation::start(options)
        .await
        .map_err(|e| format!("the emulation could not start: {e}"))?;
    if let (Some(runs), Some(hello)) = (args.cold_starts, &args.hello) {
        let table = cold_start_table(&emulation, &options_bin_dir, hello, runs).await?;
        println!("{table}");
        emulation.stack.shutdown(Duration::from_secs(5)).await;
        return Ok(());
    }
    let stack = emulation.stack;
    let tokens = seeded_tokens(&stack.minter, args.token_ttl_seconds);
    let functions: BTreeMap<&str, &str> = emulation
        .functions
        .iter()
        .map(|f| (f.binary, f.name.as_str()))
        .collect();
    println!(
        "{}",
        serde_json::json!({ "url": stack.url, "tokens": tokens, "functions": functions })
    );
    tracing::info!(url = %stack.url, "emulated deployment ready; Ctrl-C to stop");
    let printer = tokio::spawn(print_published(stack.backend.observe.clone()));

    pipeline_tests::signals::shutdown_signal().await;
    tracing::info!("stopping: no new requests; draining queued work");
    let drained = stack
        .shutdown(Duration::from_secs(args.drain_timeout_seconds))
        .await;
    printer.abort();
    if !drained {
        tracing::warn!("stopped before the queues drained");
    }
    Ok(())
}

/// The event each function gets for its first invocation: one that needs no AWS call.
fn first_event(binary: &str) -> Bytes {
    let event = match binary {
        // The boards function answers this path with a 404 of its own.
        "ingest" | "boards" => serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/openapi.json",
            "rawQueryString": "", "headers": {"host": "localhost"}, "isBase64Encoded": false,
            "requestContext": {
                "accountId": "123456789012", "apiId": "coldstart", "domainName": "localhost",
                "http": {"method": "GET", "path": "/openapi.json", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "coldstart"},
                "requestId": "coldstart", "routeKey": "$default", "stage": "$default",
                "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0
            }
        }),
        "processor" | "notifier" | "ranker" => serde_json::json!({ "Records": [] }),
        _ => serde_json::json!({ "hello": "world" }),
    };
    Bytes::from(event.to_string())
}

/// Cold starts of each deployed function and of the hello-world baseline, as Markdown.
async fn cold_start_table(
    emulation: &Emulation,
    bin_dir: &std::path::Path,
    hello: &std::path::Path,
    runs: usize,
) -> Result<String, Box<dyn std::error::Error>> {
    let runtime = RuntimeApi::start().await?;
    let hello_environment: BTreeMap<String, String> = [
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_REGION", "us-east-1"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut subjects: Vec<(String, std::path::PathBuf, BTreeMap<String, String>)> =
        vec![("hello".to_owned(), hello.to_owned(), hello_environment)];
    for function in &emulation.functions {
        subjects.push((
            function.binary.to_owned(),
            bin_dir.join(function.binary),
            function.environment.clone(),
        ));
    }
    let mut rows = Vec::new();
    let mut hello_median = None;
    for (label, binary, environment) in subjects {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for run in 0..runs {
            let name = format!("coldstart-{label}-{run}");
            let measured =
                measure_once(&runtime, &name, &binary, &environment, first_event(&label)).await?;
            times.push(measured.first_response.as_secs_f64() * 1000.0);
            rss.push(measured.peak_rss_kib as f64 / 1024.0);
        }
        let (median, p90) = median_and_p90(times);
        let (rss_median, _) = median_and_p90(rss);
        let baseline = *hello_median.get_or_insert(median);
        rows.push(format!(
            "| {label} | {median:.1} | {p90:.1} | {:.2}x | {rss_median:.1} |",
            median / baseline
        ));
    }
    Ok(format!(
        "| function | first response, median (ms) | p90 (ms) | vs hello | peak RSS, median (MiB) |\n\
         | --- | ---: | ---: | ---: | ---: |\n{}\n\n{runs} cold starts each: process start to the \
         first invocation's response under the emulated Runtime API, with the deployed \
         environment.",
        rows.join("\n")
    ))
}
