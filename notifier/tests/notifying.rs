//! The notifier's behaviour over in-memory and fault-injecting ports.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use notifier::RejectionNotifier;
use shared::faults::{FaultPlan, Faulty, Times, throttled};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::memory::{MemoryNotifier, MemoryStore};
use shared::message::{MESSAGE_VERSION, Rejection, encode};
use shared::ports::SubmissionStore;
use shared::record::Outcome;
use shared::rejection::RejectionReason;
use shared::submission::{HeroId, Score};
use time::OffsetDateTime;
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + std::time::Duration::from_secs(10)
}

fn rejection(user: &str, score: u32) -> Rejection {
    Rejection {
        v: MESSAGE_VERSION,
        submission_id: SubmissionId::new_unique(),
        user_id: UserId::parse(user).unwrap(),
        hero_id: HeroId::parse("storm").unwrap(),
        score: Score::new(score).unwrap(),
        reason: RejectionReason::SuspendedUser,
        rejected_at: OffsetDateTime::now_utc(),
        correlation_id: CorrelationId::generate(),
    }
}

fn record(message_id: &str, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.body = Some(body.to_owned());
    record
}

fn records(rejections: &[Rejection]) -> Vec<SqsMessage> {
    rejections
        .iter()
        .enumerate()
        .map(|(i, r)| record(&format!("m{i}"), &encode(r)))
        .collect()
}

fn notifier() -> (Arc<MemoryNotifier>, Arc<FaultPlan>, RejectionNotifier) {
    let f = fixture();
    (f.sink, f.faults, f.handler)
}

struct Fixture {
    sink: Arc<MemoryNotifier>,
    faults: Arc<FaultPlan>,
    outbox: Arc<MemoryStore>,
    outbox_faults: Arc<FaultPlan>,
    handler: RejectionNotifier,
}

fn fixture() -> Fixture {
    let sink = Arc::new(MemoryNotifier::new());
    let faults = FaultPlan::new();
    let outbox = Arc::new(MemoryStore::new());
    let outbox_faults = FaultPlan::new();
    let handler = RejectionNotifier::new(
        Arc::new(Faulty::new(sink.clone(), faults.clone())),
        Arc::new(Faulty::new(outbox.clone(), outbox_faults.clone())),
    );
    Fixture {
        sink,
        faults,
        outbox,
        outbox_faults,
        handler,
    }
}

/// A rejected record in the outbox, not yet notified, and the rejection it hands on.
async fn stored_rejection(outbox: &MemoryStore, user: &str, score: u32) -> Rejection {
    let record = shared::record::SubmissionRecord {
        submission_id: SubmissionId::new_unique(),
        user_id: UserId::parse(user).unwrap(),
        hero_id: HeroId::parse("storm").unwrap(),
        score: Score::new(score).unwrap(),
        achieved_at: None,
        client_ref: None,
        received_at: OffsetDateTime::now_utc(),
        correlation_id: CorrelationId::generate(),
        outcome: Outcome::Rejected(RejectionReason::SuspendedUser),
        decided_at: OffsetDateTime::now_utc(),
        notified_at: None,
    };
    outbox
        .put_new(std::slice::from_ref(&record), deadline())
        .await
        .unwrap();
    record.unnotified_rejection().unwrap()
}

#[tokio::test]
async fn a_rejection_already_notified_is_not_published_again() {
    // GIVEN a rejection whose record is in the outbox
    let f = fixture();
    let rejection = stored_rejection(&f.outbox, "mallory", 1).await;
    let batch = records(std::slice::from_ref(&rejection));

    // WHEN it is delivered, then delivered again (a redelivery, or a second hand-over)
    let first = f.handler.handle(&batch, deadline()).await;
    let again = f.handler.handle(&batch, deadline()).await;

    // THEN it is published once, its record is marked, and the second delivery publishes nothing
    assert_eq!((first.published, first.already_notified), (1, 0));
    assert_eq!((again.published, again.already_notified), (0, 1));
    assert!(again.failed_message_ids.is_empty());
    assert_eq!(f.sink.published(), std::slice::from_ref(&rejection));
    let marked = f.outbox.get(&rejection.key()).await.unwrap().unwrap();
    assert!(marked.notified_at.is_some());
}

#[tokio::test]
async fn an_unreadable_outbox_fails_the_records_and_publishes_nothing() {
    let f = fixture();
    let rejection = stored_rejection(&f.outbox, "mallory", 1).await;
    f.outbox_faults.fail_next_calls(1, throttled("dynamodb"));
    let summary = f
        .handler
        .handle(&records(std::slice::from_ref(&rejection)), deadline())
        .await;
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert!(f.sink.published().is_empty());
    // The redelivery goes through.
    let summary = f
        .handler
        .handle(&records(std::slice::from_ref(&rejection)), deadline())
        .await;
    assert_eq!(summary.published, 1);
}

#[tokio::test]
async fn a_mark_that_keeps_failing_is_counted_and_does_not_fail_the_published_record() {
    let f = fixture();
    let rejection = stored_rejection(&f.outbox, "mallory", 1).await;
    f.outbox_faults
        .fail_item(rejection.submission_id, Times::Always);
    let summary = f
        .handler
        .handle(&records(std::slice::from_ref(&rejection)), deadline())
        .await;
    assert!(summary.failed_message_ids.is_empty(), "{summary:?}");
    assert_eq!((summary.published, summary.unmarked), (1, 1));
    assert_eq!(f.sink.published().len(), 1);
}

#[tokio::test]
async fn an_idempotency_conflict_is_published_without_the_outbox() {
    let f = fixture();
    let conflict = Rejection {
        reason: RejectionReason::IdempotencyConflict,
        ..stored_rejection(&f.outbox, "alice", 2).await
    };
    // The record under that id stays as it is: a conflict never marks it.
    let summary = f
        .handler
        .handle(&records(std::slice::from_ref(&conflict)), deadline())
        .await;
    assert_eq!(summary.published, 1);
    let record = f.outbox.get(&conflict.key()).await.unwrap().unwrap();
    assert_eq!(record.notified_at, None);
    assert_eq!(
        f.sink.published()[0].reason,
        RejectionReason::IdempotencyConflict
    );
}

#[tokio::test]
async fn every_rejection_is_published_ten_at_a_time() {
    let (sink, _, handler) = notifier();
    let batch: Vec<_> = (0..25).map(|i| rejection("mallory", i)).collect();
    let summary = handler.handle(&records(&batch), deadline()).await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!(summary.published, 25);
    assert_eq!(sink.publish_calls(), 3);
    let mut published = sink.published();
    published.sort_by_key(|r| r.score);
    assert_eq!(published, batch);
}

#[tokio::test]
async fn a_malformed_record_fails_alone() {
    let (sink, _, handler) = notifier();
    let good = rejection("mallory", 1);
    let summary = handler
        .handle(
            &[record("bad", r#"{"v":1}"#), record("good", &encode(&good))],
            deadline(),
        )
        .await;
    assert_eq!(summary.failed_message_ids, ["bad"]);
    assert_eq!(sink.published(), [good]);
}

#[tokio::test]
async fn a_failed_entry_fails_only_its_record() {
    let (sink, faults, handler) = notifier();
    let batch: Vec<_> = (0..5).map(|i| rejection("mallory", i)).collect();
    faults.fail_item(batch[2].submission_id, Times::Next(1));
    let summary = handler.handle(&records(&batch), deadline()).await;
    assert_eq!(summary.failed_message_ids, ["m2"]);
    assert_eq!(sink.published().len(), 4);
}

#[tokio::test]
async fn a_failed_call_fails_its_chunk_and_the_redelivery_succeeds() {
    let (sink, faults, handler) = notifier();
    let batch: Vec<_> = (0..3).map(|i| rejection("mallory", i)).collect();
    faults.fail_next_calls(1, throttled("sns"));
    assert_eq!(
        handler
            .handle(&records(&batch), deadline())
            .await
            .failed_message_ids
            .len(),
        3
    );
    assert!(
        handler
            .handle(&records(&batch), deadline())
            .await
            .failed_message_ids
            .is_empty()
    );
    assert_eq!(sink.published().len(), 3);
}

#[tokio::test]
async fn a_rejection_delivered_twice_in_a_batch_is_published_once() {
    let (sink, _, handler) = notifier();
    let r = rejection("mallory", 1);
    let summary = handler
        .handle(
            &[record("a", &encode(&r)), record("b", &encode(&r))],
            deadline(),
        )
        .await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!(sink.published().len(), 1);
}

#[tokio::test]
async fn the_summary_becomes_one_metric_per_figure() {
    let (_, faults, handler) = notifier();
    let batch: Vec<_> = (0..4).map(|i| rejection("mallory", i)).collect();
    faults.fail_item(batch[0].submission_id, Times::Always);
    let mut records = records(&batch);
    records.push(record("bad", "{}"));
    let summary = handler.handle(&records, deadline()).await;
    let metrics: Vec<(&str, f64)> = summary
        .metrics()
        .iter()
        .map(|m| (m.name, m.value))
        .collect();
    assert_eq!(
        metrics,
        [
            ("Records", 5.0),
            ("Published", 3.0),
            ("AlreadyNotified", 0.0),
            ("UnmarkedNotifications", 0.0),
            ("Malformed", 1.0),
            ("FailedRecords", 2.0),
        ]
    );
}
