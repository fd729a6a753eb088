//! The processor handling one SQS batch of 100 accepted submissions (100 single-submission
//! requests as ingest enqueues them, v2 messages; 100 distinct, active
//! users) over the in-memory adapters: decode, authorize against the users directory (through
//! the user cache), write 100 records in chunks of 25, nothing to hand to the rejections queue.
//!
//! Variants:
//! - `cold_cache`: the cache is off, so every batch looks its 100 users up (one call);
//! - `warm_cache`: every user is cached, as in a warm Lambda within the TTL (no lookup);
//! - `warm_cache_json_logs`: as warm, with the Lambda's JSON log format at `info` written to
//!   /dev/null, one write per line as under Lambda: the batch's line (and a line per rejected or
//!   unfinished submission, none here) is part of its CPU;
//! - `accepted_100_new/store_latency_5ms`: a fresh batch of new submissions each time, against a
//!   store that waits 5 ms (a DynamoDB request in the region) for each round of requests the
//!   DynamoDB adapter would make: one per BatchWriteItem call (the calls run concurrently), and
//!   one per `STORE_PUT_CONCURRENCY` conditional PutItems (the adapter keeps that many in
//!   flight), so the time shows how many request rounds the batch waits for;
//!
//! Before timing, one batch is run on fresh adapters and the port calls it made are printed
//! (the goals: one conditional put per record, at most 1 user lookup, 0 when cached). After
//! timing, 1,000 fresh warm batches are run once more and timed by this thread's CPU clock
//! (`/proc/thread-self/schedstat`), for the per-record CPU figure.
//!
//! Run: `cargo bench -p score-processor --bench batch`. Per-record time is the reported time
//! divided by 100 (criterion's throughput line shows records per second).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use processor::{Ports, Processor, UserCache};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::limits::STORE_PUT_CONCURRENCY;
use shared::memory::{MemoryQueue, MemoryStore, MemoryUserDirectory, QueueSettings};
use shared::message::{Principal, QueuedItem, QueuedRequest, REQUEST_MESSAGE_VERSION, encode};
use shared::ports::{BatchReport, PortError, PutReport, SubmissionStore};
use shared::record::{SubmissionKey, SubmissionRecord};
use shared::submission::{HeroId, Score, ScoreSubmission};
use shared::users::User;
use time::OffsetDateTime;

#[global_allocator]
static ALLOCATOR: shared::Allocator = shared::Allocator;

const RECORDS: usize = 100;

fn user(i: usize) -> UserId {
    UserId::parse(format!("user-{i:03}")).unwrap()
}

/// 100 single-submission requests, encoded as ingest enqueues them (v2 request messages).
fn batch() -> Vec<SqsMessage> {
    let now = OffsetDateTime::now_utc();
    (0..RECORDS)
        .map(|i| {
            let message = QueuedRequest {
                v: REQUEST_MESSAGE_VERSION,
                correlation_id: CorrelationId::generate(),
                received_at: now,
                principal: Principal {
                    subject: user(i),
                    token_id: Some(format!("token-{i}")),
                    scopes: vec!["scores:write".to_owned()],
                },
                submissions: vec![QueuedItem {
                    submission_id: SubmissionId::new_unique(),
                    submission: ScoreSubmission {
                        hero_id: HeroId::parse("storm").unwrap(),
                        score: Score::new(i as u32 * 10).unwrap(),
                        achieved_at: Some(now - time::Duration::minutes(1)),
                        client_ref: None,
                    },
                }],
            };
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("message-{i}"));
            record.receipt_handle = Some(format!("receipt-{i}"));
            record.body = Some(encode(&message));
            record
        })
        .collect()
}

/// The memory store, waiting `latency` per round of DynamoDB requests the real adapter makes.
struct LatencyStore {
    inner: Arc<MemoryStore>,
    latency: Duration,
}

impl LatencyStore {
    async fn rounds(&self, requests: usize, per_round: usize) {
        let rounds = requests.div_ceil(per_round).max(1) as u32;
        tokio::time::sleep(self.latency * rounds).await;
    }
}

#[async_trait]
impl SubmissionStore for LatencyStore {
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        deadline: tokio::time::Instant,
    ) -> Result<PutReport, PortError> {
        self.rounds(records.len(), STORE_PUT_CONCURRENCY).await;
        self.inner.put_new(records, deadline).await
    }

    async fn mark_notified(
        &self,
        keys: &[SubmissionKey],
        at: OffsetDateTime,
        deadline: tokio::time::Instant,
    ) -> Result<BatchReport, PortError> {
        self.rounds(keys.len(), STORE_PUT_CONCURRENCY).await;
        self.inner.mark_notified(keys, at, deadline).await
    }

    async fn write(
        &self,
        records: &[SubmissionRecord],
        deadline: tokio::time::Instant,
    ) -> Result<BatchReport, PortError> {
        self.rounds(1, 1).await;
        self.inner.write(records, deadline).await
    }

    async fn get(&self, key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError> {
        self.rounds(1, 1).await;
        self.inner.get(key).await
    }

    async fn get_many(
        &self,
        keys: &[SubmissionKey],
        deadline: tokio::time::Instant,
    ) -> Result<std::collections::HashMap<SubmissionId, SubmissionRecord>, PortError> {
        self.rounds(1, 1).await;
        self.inner.get_many(keys, deadline).await
    }
}

/// A store that takes every put as new and keeps nothing, for the CPU figure: a memory table that
/// grows by 100,000 records in the measurement would be counted (its growth, its page faults),
/// and no deployed processor holds its records.
struct DiscardingStore;

#[async_trait]
impl SubmissionStore for DiscardingStore {
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        _deadline: tokio::time::Instant,
    ) -> Result<PutReport, PortError> {
        black_box(records);
        Ok(PutReport::default())
    }

    async fn mark_notified(
        &self,
        _keys: &[SubmissionKey],
        _at: OffsetDateTime,
        _deadline: tokio::time::Instant,
    ) -> Result<BatchReport, PortError> {
        Ok(BatchReport::default())
    }

    async fn write(
        &self,
        _records: &[SubmissionRecord],
        _deadline: tokio::time::Instant,
    ) -> Result<BatchReport, PortError> {
        Ok(BatchReport::default())
    }

    async fn get(&self, _key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError> {
        Ok(None)
    }

    async fn get_many(
        &self,
        _keys: &[SubmissionKey],
        _deadline: tokio::time::Instant,
    ) -> Result<std::collections::HashMap<SubmissionId, SubmissionRecord>, PortError> {
        Ok(std::collections::HashMap::new())
    }
}

struct Fixture {
    processor: Processor,
    store: Arc<MemoryStore>,
    directory: Arc<MemoryUserDirectory>,
    rejections: Arc<MemoryQueue>,
}

fn fixture(cache_ttl: Duration) -> Fixture {
    fixture_with_store_latency(cache_ttl, Duration::ZERO)
}

/// A fixture whose every store call first waits `latency`.
fn fixture_with_store_latency(cache_ttl: Duration, latency: Duration) -> Fixture {
    let directory = Arc::new(MemoryUserDirectory::new(
        (0..RECORDS).map(|i| User::active(user(i))),
    ));
    let store = Arc::new(MemoryStore::new());
    let rejections = Arc::new(MemoryQueue::new("rejections", QueueSettings::default()));
    let store_port: Arc<dyn SubmissionStore> = if latency.is_zero() {
        store.clone()
    } else {
        Arc::new(LatencyStore {
            inner: store.clone(),
            latency,
        })
    };
    let processor = Processor::new(
        Ports {
            users: directory.clone(),
            store: store_port,
            rejections: rejections.clone(),
        },
        UserCache::new(cache_ttl),
    );
    Fixture {
        processor,
        store,
        directory,
        rejections,
    }
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(10)
}

/// Port calls of one batch on fresh adapters, then of a second batch with a warm cache.
fn report_port_calls(runtime: &tokio::runtime::Runtime, records: &[SqsMessage]) {
    let f = fixture(Duration::from_secs(3600));
    let first = runtime.block_on(f.processor.process(records, deadline()));
    assert!(first.failed_message_ids.is_empty());
    assert_eq!(first.accepted, RECORDS);
    let (writes, lookups) = (store_calls(&f.store), f.directory.lookup_calls());
    let second = runtime.block_on(f.processor.process(&batch(), deadline()));
    assert_eq!(second.accepted, RECORDS);
    let warm_lookups = f.directory.lookup_calls() - lookups;
    let warm_writes = store_calls(&f.store) - writes;
    assert_eq!(f.store.len(), 2 * RECORDS);
    assert!(f.rejections.depth().is_drained());
    eprintln!(
        "processor, {RECORDS} new accepted records: {writes} store write requests and {lookups} \
         user lookup call(s) with a cold cache; {warm_writes} write requests and {warm_lookups} \
         lookups with a warm cache (goals: one conditional put per record, <= 1 lookup, 0 when \
         cached: {})",
        if writes as usize == RECORDS && lookups <= 1 && warm_lookups == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// DynamoDB write requests the store stands for: batch writes and single-item writes.
fn store_calls(store: &MemoryStore) -> u64 {
    store.write_calls() + store.item_writes()
}

/// This thread's CPU time so far (Linux `/proc/thread-self/schedstat`, nanoseconds on CPU).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn batch_of_100(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let records = batch();
    report_port_calls(&runtime, &records);

    let mut group = c.benchmark_group("processor_batch");
    group.throughput(Throughput::Elements(RECORDS as u64));

    // Every iteration gets a fresh batch of new submissions: a batch seen before would take the
    // redelivery path (its verdicts already stored), which `redelivered` measures.
    let cold = fixture(Duration::ZERO);
    let cold = &cold;
    group.bench_function(BenchmarkId::new("accepted_100", "cold_cache"), |b| {
        b.to_async(&runtime).iter_batched(
            batch,
            |records| async move { black_box(cold.processor.process(&records, deadline()).await) },
            BatchSize::SmallInput,
        );
    });

    let warm = fixture(Duration::from_secs(3600));
    runtime.block_on(warm.processor.process(&records, deadline()));
    let warm = &warm;
    group.bench_function(BenchmarkId::new("accepted_100", "warm_cache"), |b| {
        b.to_async(&runtime).iter_batched(
            batch,
            |records| async move { black_box(warm.processor.process(&records, deadline()).await) },
            BatchSize::SmallInput,
        );
    });
    group.bench_function(BenchmarkId::new("accepted_100", "redelivered"), |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(warm.processor.process(&records, deadline()).await) });
    });

    {
        let _logs = tracing::subscriber::set_default(lambda_json_logs());
        group.bench_function(
            BenchmarkId::new("accepted_100", "warm_cache_json_logs"),
            |b| {
                b.to_async(&runtime).iter_batched(
                    batch,
                    |records| async move {
                        black_box(warm.processor.process(&records, deadline()).await)
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }

    let slow = fixture_with_store_latency(Duration::from_secs(3600), Duration::from_millis(5));
    runtime.block_on(slow.processor.process(&records, deadline()));
    let calls_before = store_calls(&slow.store);
    runtime.block_on(slow.processor.process(&batch(), deadline()));
    eprintln!(
        "processor, {RECORDS} new accepted records: {} store write requests",
        store_calls(&slow.store) - calls_before
    );
    let slow = &slow;
    group.bench_function(
        BenchmarkId::new("accepted_100_new", "store_latency_5ms"),
        |b| {
            b.to_async(&runtime).iter_batched(
                batch,
                |records| async move {
                    black_box(slow.processor.process(&records, deadline()).await)
                },
                BatchSize::SmallInput,
            );
        },
    );
    group.finish();

    report_cpu_per_record(&runtime, "no log subscriber", None);
    let _logs = tracing::subscriber::set_default(lambda_json_logs());
    report_cpu_per_record(&runtime, "Lambda JSON logs at info", Some(2.0));
}

/// The Lambda's log format (shared::telemetry under Lambda) at `info`, each line written to
/// /dev/null with its own write(2), as under Lambda each goes to stderr before the call returns.
fn lambda_json_logs() -> impl tracing::Subscriber + Send + Sync {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null opens for writing");
    shared::telemetry::lambda_json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        Arc::new(null),
    )
}

/// CPU time per record by this thread's CPU clock (the current-thread runtime runs the whole
/// batch on this thread), over enough batches that the clock's granularity does not matter.
/// `goal_us` is the bound for the configuration as deployed (JSON logs at info).
///
/// The processor's own CPU: its users cached (warmed by one batch), its puts taken by a
/// [`DiscardingStore`], so that what is counted is decoding, deciding, building the records and
/// outcomes, and logging, not a memory table's growth.
fn report_cpu_per_record(runtime: &tokio::runtime::Runtime, logs: &str, goal_us: Option<f64>) {
    let directory = Arc::new(MemoryUserDirectory::new(
        (0..RECORDS).map(|i| User::active(user(i))),
    ));
    let processor = Processor::new(
        Ports {
            users: directory,
            store: Arc::new(DiscardingStore),
            rejections: Arc::new(MemoryQueue::new("rejections", QueueSettings::default())),
        },
        UserCache::new(Duration::from_secs(3600)),
    );
    runtime.block_on(processor.process(&batch(), deadline()));
    // Seven runs of 1,000 fresh batches (made before the clock starts); the median run is the
    // figure, the others show how much a shared machine moves it.
    let (runs, rounds) = (7, 1_000);
    let mut per_record_us = Vec::with_capacity(runs);
    for _ in 0..runs {
        let batches: Vec<Vec<SqsMessage>> = (0..rounds).map(|_| batch()).collect();
        let (Some(before), started) = (thread_cpu(), Instant::now()) else {
            eprintln!("no /proc/thread-self/schedstat: no CPU-time figure");
            return;
        };
        for records in &batches {
            black_box(runtime.block_on(processor.process(records, deadline())));
        }
        let wall = started.elapsed();
        let Some(after) = thread_cpu() else { return };
        let records = (rounds * RECORDS) as f64;
        per_record_us.push((
            (after - before).as_secs_f64() * 1e6 / records,
            wall.as_secs_f64() * 1e6 / records,
        ));
    }
    per_record_us.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, median_wall) = per_record_us[runs / 2];
    let verdict = goal_us.map_or_else(String::new, |goal| {
        let met = if median <= goal { "met" } else { "NOT met" };
        format!(" (goal <= {goal} us: {met})")
    });
    eprintln!(
        "processor, warm cache, {logs}: {median:.2} us CPU per record ({median_wall:.2} us wall), \
         the median of {runs} runs of {rounds} batches of {RECORDS} (runs from {:.2} to {:.2} us){verdict}",
        per_record_us[0].0,
        per_record_us[runs - 1].0,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = batch_of_100
}
criterion_main!(benches);
