//! `loadgen startup-time`: how long a server takes from process start to its first 202.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args as ClapArgs;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use serde::{Deserialize, Serialize};

use super::cli::parse_duration;
use super::client::{Connector, Target};
use super::mix::Scenario;
use super::payload::{Bodies, Tokens};
use crate::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER, TokenMinter};

/// Options of `loadgen startup-time`.
#[derive(ClapArgs, Debug, Clone)]
pub struct StartupArgs {
    /// HS256 secret the server verifies tokens with (pass the same to the server).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    #[arg(long, default_value = LOCAL_ISSUER)]
    pub issuer: String,

    #[arg(long, default_value = LOCAL_AUDIENCE)]
    pub audience: String,

    /// The user to submit as (must be active on the server for a 202).
    #[arg(long, default_value = "alice")]
    pub user: String,

    /// How many times to start the server (1 to 50).
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,

    /// Give up on one start after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// The server command and its arguments, after `--`. It must print a JSON line with "url"
    /// first on stdout and listen on a loopback address.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// One start of the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartupRun {
    /// From spawning the process to reading its ready line.
    pub ready_line_ms: f64,
    /// From spawning the process to the first 202.
    pub first_202_ms: f64,
    /// Resident memory right after the first 202, KiB.
    pub rss_kib: Option<u64>,
}

/// All starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartupReport {
    pub command: String,
    pub runs: Vec<StartupRun>,
    pub first_202_ms_median: f64,
    pub first_202_ms_min: f64,
    pub first_202_ms_max: f64,
}

impl StartupReport {
    pub fn render(&self) -> String {
        let runs: Vec<String> = self
            .runs
            .iter()
            .map(|r| format!("{:.2}", r.first_202_ms))
            .collect();
        format!(
            "command     {}\nfirst 202   median {:.2} ms, min {:.2} ms, max {:.2} ms after process start ({} starts: {} ms)\n",
            self.command,
            self.first_202_ms_median,
            self.first_202_ms_min,
            self.first_202_ms_max,
            self.runs.len(),
            runs.join(", ")
        )
    }
}

/// Starts the command `repeat` times and times each start to its first 202.
pub async fn startup_time(args: &StartupArgs) -> Result<StartupReport, String> {
    if args.repeat == 0 || args.repeat > 50 {
        return Err("--repeat must be 1 to 50".to_owned());
    }
    if args.jwt_secret.len() < 32 {
        return Err("--jwt-secret must be at least 32 bytes long".to_owned());
    }
    let minter = TokenMinter::new(
        args.jwt_secret.as_bytes(),
        args.issuer.clone(),
        args.audience.clone(),
    );
    let tokens = Tokens::mint(&minter, std::slice::from_ref(&args.user), 3600)?;
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        runs.push(one_start(args, &tokens).await?);
    }
    let mut times: Vec<f64> = runs.iter().map(|r| r.first_202_ms).collect();
    times.sort_by(f64::total_cmp);
    Ok(StartupReport {
        command: shown_command(&args.command),
        first_202_ms_median: median(&times),
        first_202_ms_min: times.first().copied().unwrap_or_default(),
        first_202_ms_max: times.last().copied().unwrap_or_default(),
        runs,
    })
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A server process started from a command line. Dropping it stops it with SIGINT (as Ctrl-C
/// would), or kills it if it lingers; [`Server::stop`] does the same and says how it ended.
pub struct Server {
    child: Child,
    pub program: String,
    /// When the process was spawned.
    pub started: Instant,
    /// From spawning the process to reading its ready line.
    pub ready_after: Duration,
    /// The `url` of its ready line (a loopback address).
    pub url: String,
}

/// How a server ended after SIGINT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    /// It exited by itself with status 0.
    pub clean: bool,
    /// Its exit code, if it exited (`None` when it had to be killed, or died of a signal).
    pub exit_code: Option<i32>,
    /// From SIGINT to exit (or to the kill).
    pub seconds: f64,
}

impl Server {
    /// Starts `command` and waits up to `timeout` for its ready line: JSON with a loopback
    /// "url", first on stdout. The rest of stdout is drained and discarded; stderr is discarded.
    pub async fn start(command: &[String], timeout: Duration) -> Result<Self, String> {
        let (program, rest) = command.split_first().ok_or("no server command after --")?;
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the server's stdout is not piped")?;
        let mut server = Server {
            child,
            program: program.clone(),
            started,
            ready_after: Duration::ZERO,
            url: String::new(),
        };
        // The ready line is read on a thread (std pipes block); the rest of stdout is drained
        // there too, so the server never writes into a closed pipe.
        let (line_tx, line_rx) = tokio::sync::oneshot::channel::<std::io::Result<String>>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = line_tx.send(read);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = tokio::time::timeout(timeout, line_rx)
            .await
            .map_err(|_| format!("{program} printed no ready line within {timeout:?}"))?
            .map_err(|_| format!("{program} stopped before printing a ready line"))?
            .map_err(|e| format!("reading {program}'s stdout: {e}"))?;
        if line.is_empty() {
            return Err(format!(
                "{program} stopped before printing a ready line (end of its stdout)"
            ));
        }
        server.ready_after = started.elapsed();
        let ready: serde_json::Value = serde_json::from_str(line.trim())
            .map_err(|e| format!("{program}'s first line is not JSON ({e}): {line}"))?;
        let url = ready["url"]
            .as_str()
            .ok_or_else(|| format!("{program}'s first line has no \"url\": {line}"))?;
        if !Target::parse(url)?.is_loopback() {
            return Err(format!("{url} is not a loopback address"));
        }
        server.url = url.to_owned();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT and waits up to `patience` for the process to exit, then kills it.
    pub fn stop(mut self, patience: Duration) -> Shutdown {
        self.stop_within(patience)
    }

    fn stop_within(&mut self, patience: Duration) -> Shutdown {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Shutdown {
                clean: status.success(),
                exit_code: status.code(),
                seconds: 0.0,
            };
        }
        let asked = Instant::now();
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        while asked.elapsed() < patience {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Shutdown {
                    clean: status.success(),
                    exit_code: status.code(),
                    seconds: asked.elapsed().as_secs_f64(),
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Shutdown {
            clean: false,
            exit_code: None,
            seconds: asked.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_within(Duration::from_secs(15));
    }
}

async fn one_start(args: &StartupArgs, tokens: &Tokens) -> Result<StartupRun, String> {
    let server = Server::start(&args.command, args.timeout).await?;
    let (program, started, pid) = (server.program.clone(), server.started, server.pid());
    let ready_line_ms = server.ready_after.as_secs_f64() * 1000.0;
    let target = Arc::new(Target::parse(&server.url)?);

    let connector = Connector::new(target.clone(), args.timeout)?;
    let body = Bodies::new(1).body(Scenario::Single, 0);
    let deadline = started + args.timeout;
    let first_202_ms = loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "{program} answered no 202 within {:?}",
                args.timeout
            ));
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(target.uri(&Scenario::Single.path(0)))
            .header(HOST, target.authority.clone())
            .header(AUTHORIZATION, tokens.valid(0).clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::clone(&body)))
            .map_err(|e| e.to_string())?;
        let answer = match connector.connect().await {
            Ok(mut connection) => connection.send_for_body(request).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok((202, _)) => break started.elapsed().as_secs_f64() * 1000.0,
            Ok((status, body)) => {
                return Err(format!(
                    "{program} answered {status} instead of 202: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            // Not listening yet: try again at once.
            Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
        }
    };
    let rss_kib = rss_kib(pid);
    drop(server);
    Ok(StartupRun {
        ready_line_ms,
        first_202_ms,
        rss_kib,
    })
}

/// A command line for a report, with the value of any secret-looking option (`--jwt-secret`,
/// `--secret=...`, `--token`) replaced by `***`.
pub fn shown_command(command: &[String]) -> String {
    let secret = |arg: &str| {
        let name = arg
            .trim_start_matches('-')
            .split('=')
            .next()
            .unwrap_or_default();
        arg.starts_with("--") && (name.contains("secret") || name.contains("token"))
    };
    let mut shown = Vec::with_capacity(command.len());
    let mut hide_next = false;
    for arg in command {
        if hide_next {
            shown.push("***".to_owned());
            hide_next = false;
        } else if secret(arg) {
            match arg.split_once('=') {
                Some((name, _)) => shown.push(format!("{name}=***")),
                None => {
                    shown.push(arg.clone());
                    hide_next = true;
                }
            }
        } else {
            shown.push(arg.clone());
        }
    }
    shown.join(" ")
}

/// A process's resident set (VmRSS) in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

/// A process's peak resident set (VmHWM) in KiB, from /proc.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field_kib(pid, "VmHWM:")
}

fn status_field_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
