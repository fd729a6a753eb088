//! Running a plan: workers on one connection each, a closed or an open (fixed-rate) model,
//! live progress once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cli::Plan;
use super::client::{Connection, Connector, TransportError};
use super::mix::Scenario;
use super::payload::Bodies;
use super::stats::{Recorder, RunShape, Summary};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot reach {url}: {source} (is the server running?)")]
    Unreachable { url: String, source: TransportError },
    #[error("{0}")]
    Setup(String),
}

/// A once-a-second view of a run in progress.
#[derive(Clone, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    pub completed: u64,
    /// The request bound, when there is one.
    pub total: Option<u64>,
    /// The time bound, when there is one.
    pub duration: Option<Duration>,
    /// Requests finished in the last interval, per second.
    pub recent_per_s: f64,
    pub errors: u64,
    pub unexpected: u64,
    pub p99_ms: f64,
}

impl Progress {
    /// One line for stderr.
    pub fn line(&self) -> String {
        let clock = match self.duration {
            Some(duration) => format!(
                "{:>6.1}s/{}s",
                self.elapsed.as_secs_f64(),
                duration.as_secs_f64()
            ),
            None => format!("{:>6.1}s", self.elapsed.as_secs_f64()),
        };
        let done = match self.total {
            Some(total) => format!(
                "{}/{} ({:.0}%)",
                self.completed,
                total,
                100.0 * self.completed as f64 / total.max(1) as f64
            ),
            None => self.completed.to_string(),
        };
        format!(
            "[{clock}] {done} done  {:.0} req/s  errors {}  unexpected {}  p99 {:.3} ms",
            self.recent_per_s, self.errors, self.unexpected, self.p99_ms
        )
    }
}

/// Everything the workers share.
struct Shared {
    plan: Arc<Plan>,
    bodies: Bodies,
    content_type: HeaderValue,
    next_index: AtomicU64,
    start: Instant,
    end: Option<Instant>,
    shards: Vec<Mutex<Recorder>>,
}

impl Shared {
    fn shard(&self, worker: usize) -> &Mutex<Recorder> {
        &self.shards[worker % self.shards.len()]
    }

    fn merged(&self) -> Recorder {
        let mut all = Recorder::new();
        for shard in &self.shards {
            all.merge(&shard.lock().unwrap_or_else(PoisonError::into_inner));
        }
        all
    }

    fn request(&self, scenario: Scenario, index: u64) -> Request<Full<Bytes>> {
        let tokens = &self.plan.tokens;
        let authorization = match scenario {
            Scenario::InvalidToken => tokens.tampered(index),
            _ => tokens.valid(index),
        };
        let target = &self.plan.target;
        let request = Request::builder()
            .uri(target.uri(&scenario.path(index)))
            .header(HOST, target.authority.clone())
            .header(AUTHORIZATION, authorization.clone());
        let request = if scenario.is_read() {
            request.method(Method::GET)
        } else {
            request
                .method(Method::POST)
                .header(CONTENT_TYPE, self.content_type.clone())
        };
        request
            .body(Full::new(self.bodies.body(scenario, index)))
            .unwrap_or_else(|e| unreachable!("request parts are valid by construction: {e}"))
    }
}

/// Runs the plan until its bound (or until `stop` turns true), calling `on_progress` about
/// once a second, and returns the summary.
pub async fn run(
    plan: Arc<Plan>,
    mut stop: watch::Receiver<bool>,
    on_progress: impl Fn(&Progress) + Send + 'static,
) -> Result<Summary, LoadError> {
    let connector = Connector::new(plan.target.clone(), plan.timeout).map_err(LoadError::Setup)?;
    // Connect every worker before the clock starts, so set-up does not count as load.
    let connections = join_all((0..plan.concurrency).map(|_| connector.connect())).await;
    let mut ready = Vec::with_capacity(connections.len());
    for connection in connections {
        match connection {
            Ok(c) => ready.push(c),
            Err(source) => {
                return Err(LoadError::Unreachable {
                    url: plan.target.url(""),
                    source,
                });
            }
        }
    }

    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let shard_count = plan
        .concurrency
        .min(4 * std::thread::available_parallelism().map_or(1, usize::from));
    let shared = Arc::new(Shared {
        bodies: Bodies::new(plan.batch_size),
        content_type: HeaderValue::from_static("application/json"),
        next_index: AtomicU64::new(0),
        start,
        end: plan.duration.map(|d| start + d),
        shards: (0..shard_count.max(1))
            .map(|_| Mutex::new(Recorder::new()))
            .collect(),
        plan: plan.clone(),
    });

    let workers: Vec<_> = ready
        .into_iter()
        .enumerate()
        .map(|(worker, connection)| {
            let shared = shared.clone();
            let connector = connector.clone();
            let stop = stop.clone();
            tokio::spawn(async move { work(worker, shared, connector, connection, stop).await })
        })
        .collect();

    let reporter = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut last = (Duration::ZERO, 0u64);
            let mut tick = tokio::time::interval_at(
                shared.start + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            loop {
                tick.tick().await;
                let recorder = shared.merged();
                let elapsed = shared.start.elapsed();
                let completed = recorder.completed();
                let window = (elapsed - last.0).as_secs_f64().max(1e-9);
                on_progress(&Progress {
                    elapsed,
                    completed,
                    total: shared.plan.requests,
                    duration: shared.plan.duration,
                    recent_per_s: (completed - last.1) as f64 / window,
                    errors: recorder.errors(),
                    unexpected: recorder.unexpected(),
                    p99_ms: recorder.latency.value_at_quantile(0.99) as f64 / 1000.0,
                });
                last = (elapsed, completed);
            }
        })
    };

    let mut workers_done = join_all(workers);
    let interrupted = tokio::select! {
        _ = &mut workers_done => false,
        true = stop_requested(&mut stop) => {
            // Workers see the flag too; let the requests in flight finish.
            workers_done.await;
            true
        }
    };
    reporter.abort();
    let elapsed = start.elapsed();
    let cpu = match (cpu_before, process_cpu_seconds()) {
        (Some(before), Some(after)) => Some((after - before) / elapsed.as_secs_f64().max(1e-9)),
        _ => None,
    };
    let shape = RunShape {
        target: plan.target.url(""),
        concurrency: plan.concurrency,
        rate: plan.rate,
        mix: plan.mix.to_string(),
        batch_size: plan.batch_size,
    };
    Ok(Summary::build(
        &shape,
        &shared.merged(),
        elapsed,
        interrupted,
        cpu,
    ))
}

/// One worker: claims request numbers until the plan's bound, sends each on its connection
/// (reconnecting after a failure), records the outcome.
async fn work(
    worker: usize,
    shared: Arc<Shared>,
    connector: Connector,
    connection: Connection,
    stop: watch::Receiver<bool>,
) {
    let plan = &shared.plan;
    let mut connection = Some(connection);
    loop {
        if *stop.borrow() {
            return;
        }
        let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
        if plan.requests.is_some_and(|max| index >= max) {
            return;
        }
        let (started, lag) = match plan.rate {
            None => {
                let now = Instant::now();
                if shared.end.is_some_and(|end| now >= end) {
                    return;
                }
                (now, None)
            }
            Some(rate) => {
                let intended = shared.start + Duration::from_secs_f64(index as f64 / rate);
                if shared.end.is_some_and(|end| intended >= end) {
                    return;
                }
                // A connection that frees up only after a request's intended time means the
                // server held the generator back: that request is timed from its intended time,
                // so a stall is not hidden (coordinated omission). A connection that was free in
                // time waits for the timer, which fires up to about a millisecond late; that
                // delay is the generator's, so such a request is timed from when it is sent.
                let backlog = Instant::now().saturating_duration_since(intended);
                if !sleep_until(intended, stop.clone()).await {
                    return;
                }
                let started = if backlog.is_zero() {
                    Instant::now()
                } else {
                    intended
                };
                (started, Some(backlog))
            }
        };
        let scenario = plan.mix.pick(index);
        let request = shared.request(scenario, index);

        let result = match connection.take() {
            Some(c) => Ok(c),
            None => connector.connect().await,
        };
        let result = match result {
            Ok(mut c) => {
                let sent = tokio::time::timeout(plan.timeout, c.send(request)).await;
                match sent {
                    Ok(Ok(answer)) => {
                        connection = Some(c);
                        Ok(answer)
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(TransportError::Timeout),
                }
            }
            Err(e) => Err(e),
        };
        let latency = started.elapsed();
        let failed_to_connect = matches!(result, Err(TransportError::Connect(_)));
        {
            let mut recorder = shared
                .shard(worker)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(lag) = lag {
                recorder.record_send_lag(lag);
            }
            match &result {
                Ok(answer) => recorder.record_response(
                    scenario,
                    answer.status,
                    latency,
                    shared.bodies.submissions_per_request(scenario),
                ),
                Err(e) => recorder.record_error(scenario, e.kind(), &e.to_string()),
            }
        }
        if failed_to_connect {
            // Do not spin on a server that refuses connections.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Resolves to true once `stop` turns true; to false if its sender is gone (never stopping).
async fn stop_requested(stop: &mut watch::Receiver<bool>) -> bool {
    stop.wait_for(|s| *s).await.is_ok()
}

/// Sleeps until `at`; false if told to stop first.
async fn sleep_until(at: Instant, mut stop: watch::Receiver<bool>) -> bool {
    if Instant::now() >= at {
        return !*stop.borrow();
    }
    let slept = tokio::select! {
        () = tokio::time::sleep_until(at) => true,
        true = stop_requested(&mut stop) => false,
    };
    slept && !*stop.borrow()
}

/// CPU time (user + system) this process has used, from /proc (Linux); None elsewhere.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_from_stat(&stat)
}

/// utime + stime from a `/proc/PID/stat` line, in seconds (the kernel reports them in
/// USER_HZ ticks, which is 100 on Linux).
pub fn cpu_seconds_from_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
