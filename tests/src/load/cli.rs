//! The command line of `loadgen` and the validated [`Plan`] it becomes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use shared::limits::MAX_BATCH_SUBMISSIONS;

use super::client::Target;
use super::mix::{DEFAULT_MIX, Mix};
use super::payload::{Tokens, synthetic_user};
use crate::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER, TokenMinter};

/// A run with neither `--duration` nor `--requests` lasts this long.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Longest run allowed.
pub const MAX_DURATION: Duration = Duration::from_secs(60 * 60);
/// Most requests allowed in one run.
pub const MAX_REQUESTS: u64 = 100_000_000;
/// Most connections (and requests in flight) allowed.
pub const MAX_CONCURRENCY: usize = 10_000;
/// Highest fixed arrival rate allowed, requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Longest request timeout allowed.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Most synthetic users.
pub const MAX_USERS: usize = 1_000_000;

const EXAMPLES: &str = "\
Examples:
  # 10 s against the local stack (started with `local --jwt-secret $JWT_SECRET`)
  loadgen http://127.0.0.1:3000 --jwt-secret \"$JWT_SECRET\" --duration 10s

  # 50,000 valid single submissions over 64 connections, machine-readable summary
  loadgen http://127.0.0.1:3000 --jwt-secret \"$JWT_SECRET\" -n 50000 -c 64 --mix single=100 --json

  # a fixed 2,000 req/s for 30 s (open model: a request that waits for a free connection is
  # timed from its intended send time, so a stalled server is not hidden by the generator)
  loadgen http://127.0.0.1:3000 --jwt-secret \"$JWT_SECRET\" --rate 2000 --duration 30s -c 256

  # a deployed API with tokens from your identity provider, one per line
  loadgen https://abc123.execute-api.eu-west-1.amazonaws.com --tokens-file tokens.txt \\
      --duration 60s --rate 200 --allow-remote

  # how long the local stack takes from process start to its first 202
  loadgen startup-time --jwt-secret \"$JWT_SECRET\" -- target/release/local --addr 127.0.0.1:0 --jwt-secret \"$JWT_SECRET\"

  # a 10-minute soak of the local stack at 2,000 req/s, memory sampled every 10 s
  loadgen soak --duration 10m --rate 2000 --jwt-secret \"$JWT_SECRET\" -- target/release/local --addr 127.0.0.1:0 --jwt-secret \"$JWT_SECRET\"

Each run is bounded: by --duration, by --requests, or by both (whichever comes first); with
neither it runs for 10 s. Progress goes to stderr once a second; the summary to stdout.
The exit status is 0 when every request got its expected status, 1 when some did not (or
got no response), 2 for usage errors.";

/// Load generator for the score ingest API.
///
/// Sends a bounded, mixed load of score submissions (valid singles, batches, requests with a
/// tampered token, requests with an invalid body) and, when --mix includes `leaderboard`,
/// leaderboard reads, over HTTP/1.1 keep-alive connections, and
/// reports throughput, latency percentiles (HdrHistogram) and counts by status, by error and by
/// scenario. Without --rate it runs a closed model (each connection sends its next request
/// when the last is answered); with --rate an open model at a fixed arrival rate, where a
/// request that has to wait for a free connection is timed from its intended send time
/// (correcting for coordinated omission).
#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub load: Args,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a server command several times and time each start to its first 202.
    ///
    /// The command must print a JSON line with a "url" field as its first line on stdout (as
    /// `local` and `bare` do). The clock starts just before the process is spawned and stops
    /// when a valid single submission is answered 202. The server is stopped with SIGINT.
    StartupTime(super::startup::StartupArgs),
    /// Start a server command and keep a fixed-rate load on it for a long, bounded time.
    ///
    /// Samples the server's resident memory (RSS) all along, checks every answer, then stops
    /// the server with SIGINT and requires it to drain and exit 0. Reports errors, latency, RSS
    /// at the start, the end and the peak, and RSS growth per accepted submission. The exit
    /// status is 0 only when every answer was the expected one and the stop was clean.
    Soak(super::soak::SoakArgs),
}

/// Options of a load run.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Base URL of the ingest API, e.g. http://127.0.0.1:3000 or a deployed API's URL with its
    /// stage path. Only loopback targets unless --allow-remote.
    #[arg(required = true, value_name = "URL")]
    pub url: Option<String>,

    /// Stop after this long: 10s, 500ms, 2m, or plain seconds. Default 10s when --requests is
    /// not given either; at most 1h.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests (at most 100,000,000).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,

    /// Connections, each with one request in flight (with --rate: the most requests in flight).
    #[arg(short, long, default_value_t = 16)]
    pub concurrency: usize,

    /// Fixed arrival rate in requests per second (open model). Give enough --concurrency for
    /// rate x latency; requests that wait for a free connection are counted as late and timed
    /// from their intended send time.
    #[arg(short, long)]
    pub rate: Option<f64>,

    /// Scenario weights: single (202), batch (202), invalid-token (401), invalid-body (400),
    /// leaderboard (a read of one of the heroes the submissions use, 200).
    #[arg(short, long, default_value = DEFAULT_MIX, value_parser = Mix::parse)]
    pub mix: Mix,

    /// Submissions per batch request (1 to 100).
    #[arg(short, long, default_value_t = 10)]
    pub batch_size: usize,

    /// HS256 secret to mint tokens with (at least 32 bytes; the one the server verifies with).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `iss` of minted tokens.
    #[arg(long, default_value = LOCAL_ISSUER)]
    pub issuer: String,

    /// `aud` of minted tokens.
    #[arg(long, default_value = LOCAL_AUDIENCE)]
    pub audience: String,

    /// Mint tokens for N synthetic users named load-user-000000, load-user-000001, ...
    /// (the server's users directory decides whether their submissions are accepted).
    #[arg(short, long, conflicts_with = "user")]
    pub users: Option<usize>,

    /// Mint tokens for these users (comma-separated or repeated). Default: alice, the local
    /// stack's active user.
    #[arg(long, value_delimiter = ',')]
    pub user: Vec<String>,

    /// Read bearer tokens from this file, one per line, instead of minting them.
    #[arg(long, value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Per-request timeout (also the connect timeout); at most 120s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Allow a target that is not on loopback (a deployed API).
    #[arg(long)]
    pub allow_remote: bool,

    /// Print the summary as JSON on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,

    /// No live progress on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// A validated, bounded run.
#[derive(Debug)]
pub struct Plan {
    pub target: Arc<Target>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub mix: Mix,
    pub batch_size: usize,
    pub tokens: Tokens,
    pub timeout: Duration,
}

impl Plan {
    /// Checks the arguments, resolves the target and prepares the tokens.
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let url = args.url.as_deref().ok_or("a target URL is required")?;
        let (duration, requests) = bounds(args.duration, args.requests)?;
        if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
            return Err(format!(
                "--concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
                args.concurrency
            ));
        }
        if let Some(rate) = args.rate
            && !(rate > 0.0 && rate <= MAX_RATE)
        {
            return Err(format!(
                "--rate must be above 0 and at most {MAX_RATE}, not {rate}"
            ));
        }
        if args.batch_size == 0 || args.batch_size > MAX_BATCH_SUBMISSIONS {
            return Err(format!(
                "--batch-size must be 1 to {MAX_BATCH_SUBMISSIONS} (the API's batch limit), not {}",
                args.batch_size
            ));
        }
        if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
            return Err(format!(
                "--timeout must be above 0 and at most {}s",
                MAX_TIMEOUT.as_secs()
            ));
        }
        let target = Target::parse(url)?;
        if !target.is_loopback() && !args.allow_remote {
            let addrs: Vec<String> = target.addrs.iter().map(|a| a.ip().to_string()).collect();
            return Err(format!(
                "refusing to send load to {} ({}): it is not a loopback address. Load against a \
                 deployed stack costs money, counts against its throttling limits and may page \
                 whoever runs it, and this machine may only send load to 127.0.0.1. If you own \
                 the target and mean it, pass --allow-remote.",
                target.host,
                addrs.join(", ")
            ));
        }
        let token_ttl = duration.unwrap_or(MAX_DURATION) + args.timeout + Duration::from_secs(3600);
        let tokens = tokens(args, token_ttl.as_secs() as i64)?;
        Ok(Self {
            target: Arc::new(target),
            duration,
            requests,
            concurrency: args.concurrency,
            rate: args.rate,
            mix: args.mix.clone(),
            batch_size: args.batch_size,
            tokens,
            timeout: args.timeout,
        })
    }
}

/// The run's bounds: at least one, each within its cap; the default when neither is given.
pub fn bounds(
    duration: Option<Duration>,
    requests: Option<u64>,
) -> Result<(Option<Duration>, Option<u64>), String> {
    if let Some(d) = duration
        && (d.is_zero() || d > MAX_DURATION)
    {
        return Err(format!(
            "--duration must be above 0 and at most {}s (runs are always bounded)",
            MAX_DURATION.as_secs()
        ));
    }
    if let Some(n) = requests
        && (n == 0 || n > MAX_REQUESTS)
    {
        return Err(format!(
            "--requests must be 1 to {MAX_REQUESTS} (runs are always bounded)"
        ));
    }
    Ok(match (duration, requests) {
        (None, None) => (Some(DEFAULT_DURATION), None),
        bounds => bounds,
    })
}

fn tokens(args: &Args, ttl_seconds: i64) -> Result<Tokens, String> {
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --tokens-file {}: {e}", path.display()))?;
        return Tokens::parse_lines(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let secret = args.jwt_secret.as_deref().ok_or(
        "no tokens: pass --jwt-secret (or set JWT_SECRET) to mint them with the server's HS256 \
         secret, or --tokens-file with one token per line",
    )?;
    if secret.len() < 32 {
        return Err(
            "--jwt-secret must be at least 32 bytes long (the API refuses shorter secrets)"
                .to_owned(),
        );
    }
    let subjects: Vec<String> = match args.users {
        Some(0) => return Err("--users must be at least 1".to_owned()),
        Some(n) if n > MAX_USERS => return Err(format!("--users must be at most {MAX_USERS}")),
        Some(n) => (0..n).map(synthetic_user).collect(),
        None if args.user.is_empty() => vec!["alice".to_owned()],
        None => args.user.clone(),
    };
    if let Some(bad) = subjects
        .iter()
        .find(|s| shared::ids::UserId::parse(s.as_str()).is_err())
    {
        return Err(format!("`{bad}` is not a valid user id"));
    }
    let minter = TokenMinter::new(
        secret.as_bytes(),
        args.issuer.clone(),
        args.audience.clone(),
    );
    Tokens::mint(&minter, &subjects, ttl_seconds)
}

/// `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}
