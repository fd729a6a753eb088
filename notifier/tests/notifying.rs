//! The notifier's behaviour over in-memory and fault-injecting ports.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use notifier::RejectionNotifier;
use shared::faults::{FaultPlan, Faulty, Times, throttled};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::memory::MemoryNotifier;
use shared::message::{MESSAGE_VERSION, Rejection, encode};
use shared::rejection::RejectionReason;
use shared::submission::{HeroId, Score};
use time::OffsetDateTime;

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
    let sink = Arc::new(MemoryNotifier::new());
    let faults = FaultPlan::new();
    let handler = RejectionNotifier::new(Arc::new(Faulty::new(sink.clone(), faults.clone())));
    (sink, faults, handler)
}

#[tokio::test]
async fn every_rejection_is_published_ten_at_a_time() {
    let (sink, _, handler) = notifier();
    let batch: Vec<_> = (0..25).map(|i| rejection("mallory", i)).collect();
    let summary = handler.handle(&records(&batch)).await;
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
        .handle(&[record("bad", r#"{"v":1}"#), record("good", &encode(&good))])
        .await;
    assert_eq!(summary.failed_message_ids, ["bad"]);
    assert_eq!(sink.published(), [good]);
}

#[tokio::test]
async fn a_failed_entry_fails_only_its_record() {
    let (sink, faults, handler) = notifier();
    let batch: Vec<_> = (0..5).map(|i| rejection("mallory", i)).collect();
    faults.fail_item(batch[2].submission_id, Times::Next(1));
    let summary = handler.handle(&records(&batch)).await;
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
            .handle(&records(&batch))
            .await
            .failed_message_ids
            .len(),
        3
    );
    assert!(
        handler
            .handle(&records(&batch))
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
        .handle(&[record("a", &encode(&r)), record("b", &encode(&r))])
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
    let summary = handler.handle(&records).await;
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
            ("Malformed", 1.0),
            ("FailedRecords", 2.0),
        ]
    );
}
