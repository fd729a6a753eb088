//! `local`: the whole score pipeline in one process, on in-memory adapters (or, with
//! `--backend aws`, on the SDK adapters).
//!
//! Prints one JSON line to stdout when ready (`{"url": ..., "tokens": {...}}`), then one JSON
//! line per notification it publishes. Logs go to stderr. Ctrl-C drains in-flight work first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use pipeline_tests::backend::aws::{
    AwsResources, aws_backend, quota_counter_in_cache_from_env, rank_index_from_env,
};
use pipeline_tests::backend::memory::memory_backend;
use pipeline_tests::backend::print_published;
use pipeline_tests::tokens::{seeded_tokens, seeded_users};
use pipeline_tests::{LocalStack, StackOptions, TokenMinter};
use shared::aws::provision::QueueProvisioning;
use shared::aws::{AwsClients, load_sdk_config};
use shared::config::{ProcessEnv, QUOTA_COUNTER};
use shared::memory::MemoryRankIndex;
use shared::memory::QueueSettings;
use shared::message::encode;
use shared::quota::QuotaPolicy;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

/// Run the score ingest pipeline locally: the ingest API on ADDR, with the processor and the
/// notifier fed by SQS-like queues. By default everything is in memory; with `--backend aws` the
/// same handlers use DynamoDB, SQS and SNS wherever the standard AWS environment points
/// (AWS_ENDPOINT_URL for moto or LocalStack, AWS_REGION, credentials). Seeds the users `alice`
/// (active) and `mallory` (suspended) and prints a ready-to-use token for each.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "LOCAL_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// Where queues, tables and the topic live.
    #[arg(long, env = "LOCAL_BACKEND", value_enum, default_value_t = BackendKind::Memory)]
    backend: BackendKind,

    /// With --backend aws: create any missing tables, queues (with DLQs and redrive) and topic,
    /// named PREFIX-..., and seed the users. Without it the resources come from
    /// SUBMISSIONS_TABLE, USERS_TABLE, SUBMISSIONS_QUEUE_URL, REJECTIONS_QUEUE_URL and
    /// REJECTIONS_TOPIC_ARN (and, when --user-quota-limit is above 0, QUOTAS_TABLE, or
    /// QUOTA_COUNTER=cache to count in the Redis cluster at RANK_INDEX_URL as the deployed
    /// processor does), and no users are written.
    #[arg(long)]
    provision: bool,

    /// Name prefix of the resources --provision creates.
    #[arg(long, default_value = "score-local")]
    prefix: String,

    /// HS256 secret for the printed tokens (at least 32 bytes); random per run when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// How long the printed tokens stay valid, in seconds.
    #[arg(long, env = "LOCAL_TOKEN_TTL_SECONDS", default_value_t = 24 * 60 * 60)]
    token_ttl_seconds: i64,

    /// Seconds a failed queue message stays invisible before it is retried.
    #[arg(long, default_value_t = 5)]
    visibility_timeout_seconds: u32,

    /// Receives after which a message moves to the dead-letter queue (the queues' redrive
    /// limit: with --backend aws and no --provision, give the existing queues' value). On a
    /// message's last receive the processor marks what it cannot finish `failed`.
    #[arg(long, env = "MAX_RECEIVE_COUNT", default_value_t = 5)]
    max_receive_count: u32,

    /// Per-user burst limit at ingest, in submissions (0: off, the default here; Lambda
    /// defaults to 200, see INGEST_BURST_LIMIT).
    #[arg(long, env = "INGEST_BURST_LIMIT", default_value_t = 0)]
    burst_limit: u32,

    /// Submissions per second a user may sustain once the burst is spent.
    #[arg(long, env = "INGEST_RATE_PER_SECOND", default_value_t = 50.0)]
    rate_per_second: f64,

    /// Per-user quota the processor enforces, in submissions per window; over it, submissions
    /// are rejected as `rate_limited` (0: off, the default here; Lambda defaults to 120, see
    /// USER_QUOTA_LIMIT).
    #[arg(long, env = "USER_QUOTA_LIMIT", default_value_t = 0)]
    user_quota_limit: u32,

    /// Length of a quota window, in seconds.
    #[arg(long, env = "USER_QUOTA_WINDOW_SECONDS", default_value_t = 60)]
    user_quota_window_seconds: u64,

    /// On Ctrl-C, how long to wait for queued work to finish, in seconds.
    #[arg(long, default_value_t = 10)]
    drain_timeout_seconds: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// In-memory queues, table and directory in this process.
    Memory,
    /// The AWS SDK adapters, configured by the standard AWS environment.
    Aws,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _logs = shared::telemetry::init();
    let args = Args::parse();
    let minter = match &args.jwt_secret {
        Some(secret) if secret.len() < 32 => {
            return Err("JWT_SECRET (--jwt-secret) must be at least 32 bytes long".into());
        }
        Some(secret) => TokenMinter::new(
            secret.as_bytes(),
            pipeline_tests::tokens::LOCAL_ISSUER,
            pipeline_tests::tokens::LOCAL_AUDIENCE,
        ),
        None => TokenMinter::random_local(),
    };
    let seeded = seeded_users();
    let print_notification =
        |rejection: &shared::message::Rejection| println!("{}", encode(rejection));
    let (backend, users, resources) = match args.backend {
        BackendKind::Memory => {
            let settings = QueueSettings {
                visibility_timeout: Duration::from_secs(args.visibility_timeout_seconds.into()),
                max_receive_count: args.max_receive_count,
            };
            let (backend, _) = memory_backend(settings, Some(Box::new(print_notification)));
            (backend, seeded, None)
        }
        BackendKind::Aws => {
            let clients = AwsClients::new(&load_sdk_config().await);
            let resources = if args.provision {
                let queues = QueueProvisioning {
                    visibility_timeout_seconds: args.visibility_timeout_seconds,
                    max_receive_count: args.max_receive_count,
                };
                AwsResources::provision(&clients, &args.prefix, queues)
                    .await
                    .map_err(|e| format!("provisioning failed: {e} (is AWS_ENDPOINT_URL pointing at a running emulator?)"))?
            } else {
                AwsResources::from_env(&ProcessEnv)
                    .map_err(|e| format!("{e}; or pass --provision to create the resources"))?
            };
            let redelivery = Duration::from_secs(args.visibility_timeout_seconds.into());
            // The table's stream is read as an emulator serves it; the boards live in the Redis
            // cluster RANK_INDEX_URL names, or in memory without one.
            let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
                "the aws backend reads the submissions table's stream from an AWS API emulator: \
                 set AWS_ENDPOINT_URL (scripts/moto.sh start prints it)"
            })?;
            let rank_index = rank_index_from_env(&args.prefix).unwrap_or_else(|reason| {
                tracing::warn!(%reason, "keeping the boards in memory");
                Arc::new(MemoryRankIndex::new())
            });
            let mut backend = aws_backend(
                &clients,
                resources.clone(),
                redelivery,
                &endpoint,
                rank_index,
            );
            backend.max_receive_count = Some(args.max_receive_count);
            // As the processor reads it: QUOTA_COUNTER=cache counts in the cluster at
            // RANK_INDEX_URL; otherwise (the default) in the quotas table.
            if std::env::var(QUOTA_COUNTER).is_ok_and(|counter| counter.trim() == "cache") {
                backend.quota_counter = Some(quota_counter_in_cache_from_env(&args.prefix)?);
            }
            let users = if args.provision { seeded } else { Vec::new() };
            (backend, users, Some(resources))
        }
    };
    let mut options = StackOptions::for_tests(users);
    options.addr = args.addr;
    options.minter = minter;
    options.burst_limit = (args.burst_limit > 0).then_some(shared::config::BurstLimit {
        burst: args.burst_limit,
        per_second: args.rate_per_second,
    });
    if args.user_quota_limit > 0 {
        let window = Duration::from_secs(args.user_quota_window_seconds);
        options.quota = Some(
            QuotaPolicy::new(args.user_quota_limit, window)
                .map_err(|e| format!("--user-quota-limit/--user-quota-window-seconds: {e}"))?,
        );
    }
    if args.backend == BackendKind::Aws {
        // Long polls, as the event source mapping does; SQS counts wait time in whole seconds.
        options.processor_poll.wait = Duration::from_secs(1);
        options.notifier_poll.wait = Duration::from_secs(1);
    }

    let stack = LocalStack::start(options, backend.clone()).await?;
    let tokens = seeded_tokens(&stack.minter, args.token_ttl_seconds);
    let mut ready =
        serde_json::json!({ "url": stack.url, "tokens": tokens, "backend": backend.label });
    if let Some(resources) = &resources {
        ready["resources"] = resources.as_env();
    }
    println!("{ready}");
    tracing::info!(url = %stack.url, backend = backend.label, "local stack ready; Ctrl-C to stop");
    let printer = (args.backend == BackendKind::Aws && args.provision)
        .then(|| tokio::spawn(print_published(backend.observe.clone())));

    pipeline_tests::signals::shutdown_signal().await;
    tracing::info!("stopping: no new requests; draining queued work");
    let drained = stack
        .shutdown(Duration::from_secs(args.drain_timeout_seconds))
        .await;
    if let Some(printer) = printer {
        printer.abort();
    }
    let observe = &backend.observe;
    let stored = observe.stored_count().await.unwrap_or_default();
    if drained {
        tracing::info!(stored, "stopped; all queued work finished");
    } else {
        tracing::warn!(
            stored,
            "stopped before the queues drained; queued work is left in the queues"
        );
    }
    Ok(())
}
