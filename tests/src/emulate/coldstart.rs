//! Cold starts, measured: for one function, start a fresh process with the deployed
//! environment, invoke it at once with an event that needs no AWS call, and take the time from
//! the process start to the invocation's response, and the process's peak RSS (`VmHWM`). A
//! benchmark (`make coldstart`), never a timed test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::process::Command;

use super::runtime_api::{InvokeOutcome, RuntimeApi};

/// The figures of one cold start.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    /// Process start to the first invocation's response.
    pub first_response: Duration,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

/// Why a run could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("{binary} did not answer its first invocation: {outcome:?}")]
    NoAnswer {
        binary: String,
        outcome: InvokeOutcome,
    },
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// One cold start of `binary` with `environment` (its `AWS_LAMBDA_RUNTIME_API` replaced).
pub async fn measure_once(
    runtime: &RuntimeApi,
    name: &str,
    binary: &Path,
    environment: &BTreeMap<String, String>,
    event: Bytes,
) -> Result<ColdStart, ColdStartError> {
    let api = runtime.register(name);
    let mut environment = environment.clone();
    environment.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), api);
    environment.insert("AWS_LAMBDA_FUNCTION_NAME".to_owned(), name.to_owned());
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(&environment)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ColdStartError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
    let outcome = runtime
        .invoke(
            name,
            &format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            event,
            Duration::from_secs(30),
            super::gateway::new_trace_header(),
        )
        .await;
    let first_response = started.elapsed();
    let peak_rss_kib = child.id().map_or(0, peak_rss_kib);
    let _ = child.kill().await;
    match outcome {
        InvokeOutcome::Response(_) => Ok(ColdStart {
            first_response,
            peak_rss_kib,
        }),
        outcome => Err(ColdStartError::NoAnswer {
            binary: binary.display().to_string(),
            outcome,
        }),
    }
}

/// The median and the 90th percentile of `values`.
pub fn median_and_p90(mut values: Vec<f64>) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_pick_ranks() {
        let (median, p90) = median_and_p90((1..=11).map(f64::from).collect());
        assert_eq!((median, p90), (6.0, 10.0));
        assert_eq!(median_and_p90(vec![]), (0.0, 0.0));
    }
}
