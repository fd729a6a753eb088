//! `emulate`: the deployed system on this machine. Deploys the synthesized CDK template into
//! moto, runs the three real Lambda binaries against a Lambda Runtime API with the deployed
//! functions' environment, and plays API Gateway and the SQS event source mappings from the
//! deployed resources (see `pipeline_tests::emulate`).
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

use clap::Parser;
use pipeline_tests::backend::print_published;
use pipeline_tests::emulate::{Emulation, EmulationOptions, default_bin_dir, prepare_dir};
use shared::ids::UserId;
use shared::users::User;

/// Run the deployed score pipeline locally: the CDK stack in moto, the real Lambda binaries,
/// API Gateway and the event source mappings emulated from the deployed template.
///
/// Needs a running moto (MOTO_ENDPOINT), the prepared template (`scripts/emulate.sh prepare`)
/// and host builds of ingest, processor and notifier; `make emulate` does all of it.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// The moto server to deploy into.
    #[arg(long, env = "MOTO_ENDPOINT")]
    moto_endpoint: String,

    /// Where the API Gateway emulation listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// The directory `scripts/emulate.sh prepare` filled (cdk.out/, jwt-private.pem,
    /// context.json); default target/emulate.
    #[arg(long, env = "EMULATE_DIR")]
    prepared: Option<PathBuf>,

    /// Where the host builds of ingest, processor and notifier are; default: next to this
    /// binary.
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
}

const SEEDED_ACTIVE: &str = "alice";
const SEEDED_SUSPENDED: &str = "mallory";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _logs = shared::telemetry::init();
    let args = Args::parse();
    let options = EmulationOptions {
        prepared: args.prepared.unwrap_or_else(prepare_dir),
        moto_endpoint: args.moto_endpoint,
        bin_dir: args.bin_dir.unwrap_or_else(default_bin_dir),
        stack_name: args.stack_name,
        gateway_addr: args.addr,
        users: vec![
            User::active(UserId::parse(SEEDED_ACTIVE)?),
            User::suspended(UserId::parse(SEEDED_SUSPENDED)?),
        ],
        echo_logs: true,
        encode_every_body: false,
    };
    tracing::info!(stack = %options.stack_name, moto = %options.moto_endpoint, "deploying the synthesized template into moto");
    let emulation = Emulation::start(options)
        .await
        .map_err(|e| format!("the emulation could not start: {e}"))?;
    let stack = emulation.stack;
    let tokens: BTreeMap<&str, String> = [SEEDED_ACTIVE, SEEDED_SUSPENDED]
        .into_iter()
        .map(|user| (user, stack.minter.mint(user, args.token_ttl_seconds)))
        .collect();
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
