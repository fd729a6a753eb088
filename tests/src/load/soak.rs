//! `loadgen soak`: a server under sustained, fixed-rate load for a bounded time, watched from
//! outside: its resident memory sampled all along, every answer checked, and a clean stop
//! (SIGINT, drain, exit 0) required at the end.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cli::{Args, MAX_DURATION, Plan, parse_duration};
use super::mix::{DEFAULT_MIX, Mix};
use super::run::{Progress, cpu_seconds_from_stat, run};
use super::startup::{Server, Shutdown, peak_rss_kib, rss_kib, shown_command};
use super::stats::Summary;
use crate::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER};

/// How long a server gets to drain and exit after SIGINT.
const STOP_PATIENCE: Duration = Duration::from_secs(60);

/// Options of `loadgen soak`.
#[derive(ClapArgs, Debug, Clone)]
pub struct SoakArgs {
    /// How long to keep the load on: 30s, 10m, 1h (at most 1h).
    #[arg(short, long, default_value = "5m", value_parser = parse_duration)]
    pub duration: Duration,

    /// Fixed arrival rate, requests per second (open model).
    #[arg(short, long, default_value_t = 1000.0)]
    pub rate: f64,

    /// Most requests in flight.
    #[arg(short, long, default_value_t = 64)]
    pub concurrency: usize,

    /// Scenario weights, as for a load run.
    #[arg(short, long, default_value = DEFAULT_MIX, value_parser = Mix::parse)]
    pub mix: Mix,

    /// Submissions per batch request.
    #[arg(short, long, default_value_t = 10)]
    pub batch_size: usize,

    /// HS256 secret to mint tokens with (pass the same to the server).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    #[arg(long, default_value = LOCAL_ISSUER)]
    pub issuer: String,

    #[arg(long, default_value = LOCAL_AUDIENCE)]
    pub audience: String,

    /// Users to mint tokens for (comma-separated). Default: alice.
    #[arg(long, value_delimiter = ',')]
    pub user: Vec<String>,

    /// How often to sample the server's memory and print progress.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,

    /// Per-request timeout, and how long the server may take to print its ready line.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// The server command and its arguments, after `--`. It must print a JSON line with "url"
    /// first on stdout, listen on loopback, and stop cleanly on SIGINT.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The server's resident memory at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the load started (0: just before).
    pub elapsed_s: f64,
    pub rss_kib: u64,
    /// Requests answered (or failed) so far.
    pub requests: u64,
}

/// The end-of-soak report (`--json` prints exactly this).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    pub command: String,
    pub duration_s: f64,
    pub target_rate_per_s: f64,
    /// Resident memory once the server was ready, before any load.
    pub rss_start_kib: u64,
    /// Resident memory when the load ended, before the server was stopped.
    pub rss_end_kib: u64,
    /// The server's peak resident memory (VmHWM).
    pub rss_peak_kib: u64,
    /// Growth from start to end per submission accepted; a store that keeps every submission
    /// in memory (the local stack's default) grows by its record size, a leak by more.
    pub rss_growth_bytes_per_accepted_submission: Option<f64>,
    pub samples: Vec<MemorySample>,
    /// CPU the server used during the soak, in seconds (user + system).
    pub server_cpu_seconds: Option<f64>,
    pub shutdown: Shutdown,
    pub load: Summary,
}

impl SoakReport {
    /// Every request got its expected answer and the server stopped cleanly.
    pub fn passed(&self) -> bool {
        self.load.errors == 0 && self.load.unexpected == 0 && self.shutdown.clean
    }

    pub fn render(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut out = format!(
            "command      {}\nsoak         {:.0} s at {} req/s: {} requests ({:.0}/s), {} submissions accepted\n\
             answers      {} expected, {} unexpected, {} without a response\n\
             latency      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             memory       {:.1} MiB at start, {:.1} MiB at end, {:.1} MiB peak",
            self.command,
            self.load.elapsed_s,
            self.target_rate_per_s,
            self.load.requests,
            self.load.requests_per_s,
            self.load.submissions_accepted,
            self.load.expected,
            self.load.unexpected,
            self.load.errors,
            self.load.latency.p50_ms,
            self.load.latency.p99_ms,
            self.load.latency.max_ms,
            mib(self.rss_start_kib),
            mib(self.rss_end_kib),
            mib(self.rss_peak_kib),
        );
        if let Some(per) = self.rss_growth_bytes_per_accepted_submission {
            out.push_str(&format!(" ({per:.0} bytes per accepted submission)"));
        }
        if let Some(cpu) = self.server_cpu_seconds {
            out.push_str(&format!(
                "\nserver cpu   {cpu:.1} s ({:.2} cores)",
                cpu / self.load.elapsed_s.max(1e-9)
            ));
        }
        out.push_str(&format!(
            "\nshutdown     {} in {:.2} s\nverdict      {}\n",
            match (self.shutdown.clean, self.shutdown.exit_code) {
                (true, _) => "drained and exited 0".to_owned(),
                (false, Some(code)) => format!("exited {code}"),
                (false, None) => "had to be killed".to_owned(),
            },
            self.shutdown.seconds,
            if self.passed() {
                "passed"
            } else {
                "FAILED (see unexpected answers, errors or shutdown above)"
            },
        ));
        out
    }
}

/// The latest progress of the load, kept for the memory sampler's lines.
type LatestProgress = Arc<Mutex<Option<Progress>>>;

/// Starts the server, keeps the load on for the duration while sampling its memory, then stops
/// it. `on_sample` hears of each sample as it is taken (for live progress).
pub async fn soak(
    args: &SoakArgs,
    on_sample: impl Fn(&MemorySample, &SoakArgs) + Send + Sync + 'static,
) -> Result<SoakReport, String> {
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        return Err(format!(
            "--duration must be above 0 and at most {}s (a soak is bounded too)",
            MAX_DURATION.as_secs()
        ));
    }
    if args.sample_every < Duration::from_millis(100) {
        return Err("--sample-every must be at least 100ms".to_owned());
    }
    let server = Server::start(&args.command, args.timeout).await?;
    let pid = server.pid();
    let load_args = Args {
        url: Some(server.url.clone()),
        duration: Some(args.duration),
        requests: None,
        concurrency: args.concurrency,
        rate: Some(args.rate),
        mix: args.mix.clone(),
        batch_size: args.batch_size,
        jwt_secret: Some(args.jwt_secret.clone()),
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        users: None,
        user: args.user.clone(),
        tokens_file: None,
        timeout: args.timeout,
        allow_remote: false,
        json: false,
        quiet: true,
    };
    let plan = Arc::new(Plan::from_args(&load_args)?);

    let rss_start_kib = rss_kib(pid).ok_or("cannot read the server's memory from /proc")?;
    let cpu_start = server_cpu_seconds(pid);
    let started = Instant::now();
    let first = MemorySample {
        elapsed_s: 0.0,
        rss_kib: rss_start_kib,
        requests: 0,
    };
    on_sample(&first, args);
    let samples = Arc::new(Mutex::new(vec![first]));
    let latest: LatestProgress = Arc::new(Mutex::new(None));

    let (stop_sampling, mut sampling_stopped) = watch::channel(false);
    let sampler = {
        let (samples, latest, every) = (samples.clone(), latest.clone(), args.sample_every);
        let args = args.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = sampling_stopped.changed() => return,
                }
                let Some(rss) = rss_kib(pid) else { return };
                let requests = lock(&latest).as_ref().map_or(0, |p| p.completed);
                let sample = MemorySample {
                    elapsed_s: started.elapsed().as_secs_f64(),
                    rss_kib: rss,
                    requests,
                };
                on_sample(&sample, &args);
                lock(&samples).push(sample);
            }
        })
    };

    // The load runs to its duration; it is never stopped early from here.
    let (_keep_running, never) = watch::channel(false);
    let progress = latest.clone();
    let load = run(plan, never, move |p| *lock(&progress) = Some(p.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stop_sampling.send(true);
    let _ = sampler.await;

    let rss_end_kib = rss_kib(pid).ok_or("the server exited during the soak")?;
    let rss_peak_kib = peak_rss_kib(pid).unwrap_or(rss_end_kib);
    let server_cpu_seconds = match (cpu_start, server_cpu_seconds(pid)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let mut samples = std::mem::take(&mut *lock(&samples));
    samples.push(MemorySample {
        elapsed_s: started.elapsed().as_secs_f64(),
        rss_kib: rss_end_kib,
        requests: load.requests,
    });
    // Waiting for the exit blocks; keep it off the runtime's worker threads.
    let shutdown = tokio::task::spawn_blocking(move || server.stop(STOP_PATIENCE))
        .await
        .map_err(|e| format!("stopping the server: {e}"))?;
    Ok(SoakReport {
        command: shown_command(&args.command),
        duration_s: args.duration.as_secs_f64(),
        target_rate_per_s: args.rate,
        rss_start_kib,
        rss_end_kib,
        rss_peak_kib,
        rss_growth_bytes_per_accepted_submission: growth_per_submission(
            rss_start_kib,
            rss_end_kib,
            load.submissions_accepted,
        ),
        samples,
        server_cpu_seconds,
        shutdown,
        load,
    })
}

/// Bytes of resident memory gained per accepted submission (None without any).
pub fn growth_per_submission(start_kib: u64, end_kib: u64, accepted: u64) -> Option<f64> {
    (accepted > 0).then(|| (end_kib as f64 - start_kib as f64) * 1024.0 / accepted as f64)
}

/// One progress line for stderr.
pub fn sample_line(sample: &MemorySample, args: &SoakArgs) -> String {
    format!(
        "soak {:>7.1}s/{}s  {:>10} requests  rss {:>8.1} MiB",
        sample.elapsed_s,
        args.duration.as_secs(),
        sample.requests,
        sample.rss_kib as f64 / 1024.0
    )
}

fn server_cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_per_accepted_submission_and_may_be_negative() {
        assert_eq!(growth_per_submission(1_000, 2_000, 1_024), Some(1_000.0));
        assert_eq!(growth_per_submission(2_000, 1_000, 1_024), Some(-1_000.0));
        assert_eq!(growth_per_submission(1_000, 2_000, 0), None);
    }
}
