//! `local`: the whole score pipeline in one process, on in-memory adapters.
//!
//! Prints one JSON line to stdout when ready (`{"url": ..., "tokens": {...}}`), then one JSON
//! line per notification it publishes. Logs go to stderr. Ctrl-C drains in-flight work first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pipeline_tests::{LocalStack, StackOptions, TokenMinter};
use shared::ids::UserId;
use shared::memory::QueueSettings;
use shared::message::encode;
use shared::users::User;

/// Run the score ingest pipeline locally: the ingest API on ADDR, with the processor and the
/// notifier fed by in-memory SQS-like queues. Seeds the users `alice` (active) and `mallory`
/// (suspended) and prints a ready-to-use token for each.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "LOCAL_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// HS256 secret for the printed tokens (at least 32 bytes); random per run when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// How long the printed tokens stay valid, in seconds.
    #[arg(long, env = "LOCAL_TOKEN_TTL_SECONDS", default_value_t = 24 * 60 * 60)]
    token_ttl_seconds: i64,

    /// Seconds a failed queue message stays invisible before it is retried.
    #[arg(long, default_value_t = 5)]
    visibility_timeout_seconds: u64,

    /// Receives after which a message moves to the dead-letter list.
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,

    /// On Ctrl-C, how long to wait for queued work to finish, in seconds.
    #[arg(long, default_value_t = 10)]
    drain_timeout_seconds: u64,
}

const SEEDED_ACTIVE: &str = "alice";
const SEEDED_SUSPENDED: &str = "mallory";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::telemetry::init();
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
    let queue = QueueSettings {
        visibility_timeout: Duration::from_secs(args.visibility_timeout_seconds),
        max_receive_count: args.max_receive_count,
    };
    let mut options = StackOptions::for_tests(vec![
        User::active(UserId::parse(SEEDED_ACTIVE)?),
        User::suspended(UserId::parse(SEEDED_SUSPENDED)?),
    ]);
    options.addr = args.addr;
    options.minter = minter;
    options.submissions_queue = queue;
    options.rejections_queue = queue;
    options.on_notification = Some(Box::new(|rejection| println!("{}", encode(rejection))));

    let stack = LocalStack::start(options).await.map_err(|e| {
        format!(
            "cannot start the local stack on {}: {e} (is the port in use? try --addr 127.0.0.1:0)",
            args.addr
        )
    })?;
    let tokens: BTreeMap<&str, String> = [SEEDED_ACTIVE, SEEDED_SUSPENDED]
        .into_iter()
        .map(|user| (user, stack.minter.mint(user, args.token_ttl_seconds)))
        .collect();
    println!(
        "{}",
        serde_json::json!({ "url": stack.url, "tokens": tokens })
    );
    tracing::info!(url = %stack.url, "local stack ready; Ctrl-C to stop");

    shutdown_signal().await;
    tracing::info!("stopping: no new requests; draining queued work");
    let store = stack.store.clone();
    let submissions = stack.submissions.clone();
    let rejections = stack.rejections.clone();
    let drained = stack
        .shutdown(Duration::from_secs(args.drain_timeout_seconds))
        .await;
    let dead_letters = submissions.depth().dead_letters + rejections.depth().dead_letters;
    if drained {
        tracing::info!(
            stored = store.len(),
            dead_letters,
            "stopped; all queued work finished"
        );
    } else {
        tracing::warn!(
            stored = store.len(),
            dead_letters,
            submissions_left = ?submissions.depth(),
            rejections_left = ?rejections.depth(),
            "stopped before the queues drained; in-memory work was lost"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
