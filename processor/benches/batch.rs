//! The processor handling one SQS batch of 100 accepted submissions (100 distinct, active
//! users) over the in-memory adapters: decode, authorize against the users directory (through
//! the user cache), write 100 records in chunks of 25, nothing to hand to the rejections queue.
//!
//! Variants:
//! - `cold_cache`: the cache is off, so every batch looks its 100 users up (one call);
//! - `warm_cache`: every user is cached, as in a warm Lambda within the TTL (no lookup);
//! - `warm_cache_json_logs`: as warm, with the Lambda's JSON log format at `info` written to a
//!   sink, because the processor logs one line per submission and that is part of its CPU;
//!
//! Before timing, one batch is run on fresh adapters and the port calls it made are printed
//! (the goals: at most 4 write calls, at most 1 user lookup, 0 when cached). After timing,
//! 5,000 warm batches are run once more and timed by this thread's CPU clock
//! (`/proc/thread-self/schedstat`), for the per-record CPU figure.
//!
//! Run: `cargo bench -p score-processor --bench batch`. Per-record time is the reported time
//! divided by 100 (criterion's throughput line shows records per second).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsMessage;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use processor::{Ports, Processor, UserCache};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::memory::{MemoryQueue, MemoryStore, MemoryUserDirectory, QueueSettings};
use shared::message::{MESSAGE_VERSION, Principal, QueuedSubmission, encode};
use shared::submission::{HeroId, Score, ScoreSubmission};
use shared::users::User;
use time::OffsetDateTime;

const RECORDS: usize = 100;

fn user(i: usize) -> UserId {
    UserId::parse(format!("user-{i:03}")).unwrap()
}

fn batch() -> Vec<SqsMessage> {
    let now = OffsetDateTime::now_utc();
    (0..RECORDS)
        .map(|i| {
            let message = QueuedSubmission {
                v: MESSAGE_VERSION,
                submission_id: SubmissionId::new_unique(),
                correlation_id: CorrelationId::generate(),
                received_at: now,
                principal: Principal {
                    subject: user(i),
                    token_id: Some(format!("token-{i}")),
                    scopes: vec!["scores:write".to_owned()],
                },
                submission: ScoreSubmission {
                    hero_id: HeroId::parse("storm").unwrap(),
                    score: Score::new(i as u32 * 10).unwrap(),
                    achieved_at: Some(now - time::Duration::minutes(1)),
                    client_ref: None,
                },
            };
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("message-{i}"));
            record.receipt_handle = Some(format!("receipt-{i}"));
            record.body = Some(encode(&message));
            record
        })
        .collect()
}

struct Fixture {
    processor: Processor,
    store: Arc<MemoryStore>,
    directory: Arc<MemoryUserDirectory>,
    rejections: Arc<MemoryQueue>,
}

fn fixture(cache_ttl: Duration) -> Fixture {
    let directory = Arc::new(MemoryUserDirectory::new(
        (0..RECORDS).map(|i| User::active(user(i))),
    ));
    let store = Arc::new(MemoryStore::new());
    let rejections = Arc::new(MemoryQueue::new("rejections", QueueSettings::default()));
    let processor = Processor::new(
        Ports {
            users: directory.clone(),
            store: store.clone(),
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
    let (writes, lookups) = (f.store.write_calls(), f.directory.lookup_calls());
    let second = runtime.block_on(f.processor.process(records, deadline()));
    assert_eq!(second.accepted, RECORDS);
    let warm_lookups = f.directory.lookup_calls() - lookups;
    let warm_writes = f.store.write_calls() - writes;
    assert_eq!(f.store.len(), RECORDS);
    assert!(f.rejections.depth().is_drained());
    eprintln!(
        "processor, {RECORDS} accepted records: {writes} write calls and {lookups} user lookup \
         call(s) with a cold cache; {warm_writes} write calls and {warm_lookups} lookups with a \
         warm cache (goals: <= 4 writes, <= 1 lookup, 0 when cached: {})",
        if writes <= 4 && lookups <= 1 && warm_lookups == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
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

    let cold = fixture(Duration::ZERO);
    group.bench_function(BenchmarkId::new("accepted_100", "cold_cache"), |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(cold.processor.process(&records, deadline()).await) });
    });

    let warm = fixture(Duration::from_secs(3600));
    runtime.block_on(warm.processor.process(&records, deadline()));
    group.bench_function(BenchmarkId::new("accepted_100", "warm_cache"), |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(warm.processor.process(&records, deadline()).await) });
    });

    {
        let _logs = tracing::subscriber::set_default(lambda_json_logs());
        group.bench_function(
            BenchmarkId::new("accepted_100", "warm_cache_json_logs"),
            |b| {
                b.to_async(&runtime).iter(|| async {
                    black_box(warm.processor.process(&records, deadline()).await)
                });
            },
        );
    }
    group.finish();

    report_cpu_per_record(&runtime, &warm, &records, "no log subscriber");
    let _logs = tracing::subscriber::set_default(lambda_json_logs());
    report_cpu_per_record(&runtime, &warm, &records, "Lambda JSON logs at info");
}

/// The Lambda's log format (shared::telemetry under Lambda) at `info`, written to a sink.
fn lambda_json_logs() -> impl tracing::Subscriber + Send + Sync {
    shared::telemetry::lambda_json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        std::io::sink,
    )
}

/// CPU time per record by this thread's CPU clock (the current-thread runtime runs the whole
/// batch on this thread), over enough batches that the clock's granularity does not matter.
fn report_cpu_per_record(
    runtime: &tokio::runtime::Runtime,
    warm: &Fixture,
    records: &[SqsMessage],
    logs: &str,
) {
    let rounds = 5_000;
    let cpu_before = thread_cpu();
    let wall = Instant::now();
    for _ in 0..rounds {
        black_box(runtime.block_on(warm.processor.process(records, deadline())));
    }
    let wall = wall.elapsed();
    if let (Some(before), Some(after)) = (cpu_before, thread_cpu()) {
        let per_record = (after - before).as_secs_f64() * 1e6 / (rounds * RECORDS) as f64;
        eprintln!(
            "processor, warm cache, {logs}: {per_record:.2} us CPU per record ({:.2} us wall) \
             over {rounds} batches of {RECORDS} (goal <= 20 us: {})",
            wall.as_secs_f64() * 1e6 / (rounds * RECORDS) as f64,
            if per_record <= 20.0 { "met" } else { "NOT met" }
        );
    } else {
        eprintln!("no /proc/thread-self/schedstat: no CPU-time figure");
    }
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
