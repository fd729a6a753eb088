//! Counting and summarising: latency histograms (HdrHistogram, microseconds), counts by status
//! and by error, per scenario; the end-of-run [`Summary`] and its human rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::mix::Scenario;

/// Highest latency a histogram tracks exactly, in microseconds (larger values are clamped).
const MAX_TRACKED_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

fn micros(latency: Duration) -> u64 {
    (latency.as_micros() as u64).clamp(1, MAX_TRACKED_US)
}

/// Counts of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioCounts {
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub expected: u64,
    pub unexpected: u64,
    pub errors: u64,
    pub submissions_accepted: u64,
}

impl ScenarioCounts {
    fn new() -> Self {
        Self {
            latency: histogram(),
            statuses: BTreeMap::new(),
            expected: 0,
            unexpected: 0,
            errors: 0,
            submissions_accepted: 0,
        }
    }

    fn merge(&mut self, other: &ScenarioCounts) {
        let _ = self.latency.add(&other.latency);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.expected += other.expected;
        self.unexpected += other.unexpected;
        self.errors += other.errors;
        self.submissions_accepted += other.submissions_accepted;
    }

    fn requests(&self) -> u64 {
        self.expected + self.unexpected + self.errors
    }
}

/// Everything counted so far (by one shard of workers, or merged).
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Latency of every request that got a response.
    pub latency: Histogram<u64>,
    pub scenarios: [ScenarioCounts; Scenario::ALL.len()],
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first message seen per error kind, to say what went wrong.
    pub error_samples: BTreeMap<String, String>,
    /// Open model: requests that found no free connection until more than [`LATE_SEND`] after
    /// their intended send time (the server was holding every connection).
    pub late_sends: u64,
    pub max_send_lag: Duration,
}

/// How far behind schedule a send may start before it counts as late.
pub const LATE_SEND: Duration = Duration::from_millis(1);

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            latency: histogram(),
            scenarios: std::array::from_fn(|_| ScenarioCounts::new()),
            errors_by_kind: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            late_sends: 0,
            max_send_lag: Duration::ZERO,
        }
    }

    /// A response arrived `latency` after the request's (intended) start.
    pub fn record_response(
        &mut self,
        scenario: Scenario,
        status: u16,
        latency: Duration,
        submissions_if_accepted: u64,
    ) {
        let us = micros(latency);
        self.latency.saturating_record(us);
        let counts = &mut self.scenarios[scenario.index()];
        counts.latency.saturating_record(us);
        *counts.statuses.entry(status).or_default() += 1;
        if status == scenario.expected_status() {
            counts.expected += 1;
            if status == 202 {
                counts.submissions_accepted += submissions_if_accepted;
            }
        } else {
            counts.unexpected += 1;
        }
    }

    /// A request got no response.
    pub fn record_error(&mut self, scenario: Scenario, kind: &str, detail: &str) {
        self.scenarios[scenario.index()].errors += 1;
        *self.errors_by_kind.entry(kind.to_owned()).or_default() += 1;
        if !self.error_samples.contains_key(kind) {
            self.error_samples
                .insert(kind.to_owned(), detail.to_owned());
        }
    }

    /// A request (open model) found a free connection `lag` after its intended send time.
    pub fn record_send_lag(&mut self, lag: Duration) {
        if lag > LATE_SEND {
            self.late_sends += 1;
        }
        self.max_send_lag = self.max_send_lag.max(lag);
    }

    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        for (mine, theirs) in self.scenarios.iter_mut().zip(&other.scenarios) {
            mine.merge(theirs);
        }
        for (kind, n) in &other.errors_by_kind {
            *self.errors_by_kind.entry(kind.clone()).or_default() += n;
        }
        for (kind, sample) in &other.error_samples {
            self.error_samples
                .entry(kind.clone())
                .or_insert_with(|| sample.clone());
        }
        self.late_sends += other.late_sends;
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
    }

    /// Requests finished (with a response or an error).
    pub fn completed(&self) -> u64 {
        self.scenarios.iter().map(ScenarioCounts::requests).sum()
    }

    pub fn errors(&self) -> u64 {
        self.scenarios.iter().map(|s| s.errors).sum()
    }

    pub fn unexpected(&self) -> u64 {
        self.scenarios.iter().map(|s| s.unexpected).sum()
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// How many responses these figures cover.
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p99_9_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// Results of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub requests: u64,
    pub expected_status: u16,
    /// Responses with the expected status.
    pub expected: u64,
    /// Responses with another status.
    pub unexpected: u64,
    /// Requests without a response.
    pub errors: u64,
    pub submissions_accepted: u64,
    pub requests_per_s: f64,
    pub status_codes: BTreeMap<u16, u64>,
    pub latency: LatencySummary,
}

/// The end-of-run report (`--json` prints exactly this).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub target: String,
    /// `closed` (each worker sends its next request when the last one is answered) or `open`
    /// (requests start at a fixed rate; latency counts from the intended start).
    pub model: String,
    pub concurrency: usize,
    pub target_rate_per_s: Option<f64>,
    pub mix: String,
    pub batch_size: usize,
    pub elapsed_s: f64,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    pub requests: u64,
    pub requests_per_s: f64,
    pub expected: u64,
    pub unexpected: u64,
    pub errors: u64,
    /// Submissions in requests answered 202.
    pub submissions_accepted: u64,
    pub submissions_per_s: f64,
    /// Every request that got a response.
    pub latency: LatencySummary,
    pub status_codes: BTreeMap<u16, u64>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub scenarios: BTreeMap<String, ScenarioSummary>,
    /// Open model: requests that found no free connection until more than 1 ms after their
    /// intended send time, because the server held every connection (or the generator could not
    /// keep up). Their latency counts from the intended time.
    pub late_sends: u64,
    pub max_send_lag_ms: f64,
    /// CPU the generator used, as a share of one core (near 1.0 with one pinned core means the
    /// generator, not the server, may be the bottleneck).
    pub generator_cpu_cores: Option<f64>,
}

/// How a run was set up, for the summary.
#[derive(Clone, Debug)]
pub struct RunShape {
    pub target: String,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub mix: String,
    pub batch_size: usize,
}

impl Summary {
    pub fn build(
        shape: &RunShape,
        recorder: &Recorder,
        elapsed: Duration,
        interrupted: bool,
        generator_cpu_cores: Option<f64>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut status_codes: BTreeMap<u16, u64> = BTreeMap::new();
        let mut scenarios = BTreeMap::new();
        for scenario in Scenario::ALL {
            let counts = &recorder.scenarios[scenario.index()];
            for (status, n) in &counts.statuses {
                *status_codes.entry(*status).or_default() += n;
            }
            if counts.requests() == 0 {
                continue;
            }
            scenarios.insert(
                scenario.name().to_owned(),
                ScenarioSummary {
                    requests: counts.requests(),
                    expected_status: scenario.expected_status(),
                    expected: counts.expected,
                    unexpected: counts.unexpected,
                    errors: counts.errors,
                    submissions_accepted: counts.submissions_accepted,
                    requests_per_s: counts.requests() as f64 / seconds,
                    status_codes: counts.statuses.clone(),
                    latency: LatencySummary::of(&counts.latency),
                },
            );
        }
        let requests = recorder.completed();
        let submissions_accepted = recorder
            .scenarios
            .iter()
            .map(|s| s.submissions_accepted)
            .sum::<u64>();
        Self {
            target: shape.target.clone(),
            model: if shape.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_owned(),
            concurrency: shape.concurrency,
            target_rate_per_s: shape.rate,
            mix: shape.mix.clone(),
            batch_size: shape.batch_size,
            elapsed_s: elapsed.as_secs_f64(),
            interrupted,
            requests,
            requests_per_s: requests as f64 / seconds,
            expected: recorder.scenarios.iter().map(|s| s.expected).sum(),
            unexpected: recorder.unexpected(),
            errors: recorder.errors(),
            submissions_accepted,
            submissions_per_s: submissions_accepted as f64 / seconds,
            latency: LatencySummary::of(&recorder.latency),
            status_codes,
            errors_by_kind: recorder.errors_by_kind.clone(),
            error_samples: recorder.error_samples.clone(),
            scenarios,
            late_sends: recorder.late_sends,
            max_send_lag_ms: recorder.max_send_lag.as_secs_f64() * 1000.0,
            generator_cpu_cores,
        }
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let model = match self.target_rate_per_s {
            Some(rate) => format!(
                "open model at {rate:.0} req/s, up to {} in flight",
                self.concurrency
            ),
            None => format!("closed model, {} connections", self.concurrency),
        };
        let _ = writeln!(out, "target      {}", self.target);
        let _ = writeln!(
            out,
            "load        {model}; mix {}; batch size {}",
            self.mix, self.batch_size
        );
        let _ = writeln!(
            out,
            "ran         {:.2} s{}",
            self.elapsed_s,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "requests    {} ({:.0} req/s); {} as expected, {} unexpected status, {} without response",
            self.requests, self.requests_per_s, self.expected, self.unexpected, self.errors
        );
        let _ = writeln!(
            out,
            "submissions {} accepted ({:.0}/s)",
            self.submissions_accepted, self.submissions_per_s
        );
        let l = &self.latency;
        let _ = writeln!(
            out,
            "latency     p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms, {} responses)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p99_9_ms, l.max_ms, l.mean_ms, l.count
        );
        if self.target_rate_per_s.is_some() {
            let _ = writeln!(
                out,
                "schedule    {} requests waited more than 1 ms for a free connection (max {:.3} ms); their latency counts from the intended send time",
                self.late_sends, self.max_send_lag_ms
            );
        }
        let statuses: Vec<String> = self
            .status_codes
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(out, "status      {}", or_none(&statuses.join(", ")));
        let errors: Vec<String> = self
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let _ = writeln!(out, "errors      {}", or_none(&errors.join(", ")));
        for (kind, sample) in &self.error_samples {
            let _ = writeln!(out, "            first {kind} error: {sample}");
        }
        if let Some(cores) = self.generator_cpu_cores {
            let _ = writeln!(out, "generator   used {cores:.2} CPU cores");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>10} {:>7} {:>11} {:>9} {:>9} {:>9}",
            "scenario",
            "requests",
            "req/s",
            "expected",
            "unexpected",
            "errors",
            "submissions",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        for (name, s) in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<20} {:>9} {:>9.0} {:>9} {:>10} {:>7} {:>11} {:>9.3} {:>9.3} {:>9.3}",
                format!("{name} ({})", s.expected_status),
                s.requests,
                s.requests_per_s,
                s.expected,
                s.unexpected,
                s.errors,
                s.submissions_accepted,
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.latency.max_ms
            );
        }
        out
    }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}
