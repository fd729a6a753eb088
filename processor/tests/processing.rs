//! The processor's behaviour over in-memory and fault-injecting ports.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use processor::{BatchSummary, Ports, Processor, Quota, UserCache, decide};
use shared::faults::{FaultPlan, Faulty, Times, throttled};
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::memory::{
    MemoryQueue, MemoryQuotaCounter, MemoryStore, MemoryUserDirectory, QueueSettings,
};
use shared::message::{
    MESSAGE_VERSION, Principal, QueuedItem, QueuedRequest, QueuedSubmission,
    REQUEST_MESSAGE_VERSION, Rejection, decode, encode,
};
use shared::ports::SubmissionStore;
use shared::quota::QuotaPolicy;
use shared::record::{FailureReason, Outcome, SubmissionKey};
use shared::rejection::RejectionReason;
use shared::retry::Backoff;
use shared::submission::{ClientRef, HeroId, Score, ScoreSubmission};
use shared::users::{User, UserStatus};
use time::OffsetDateTime;
use tokio::time::Instant;

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn submission_from(name: &str, score: u32) -> QueuedSubmission {
    QueuedSubmission {
        v: MESSAGE_VERSION,
        submission_id: SubmissionId::new_unique(),
        correlation_id: CorrelationId::generate(),
        received_at: OffsetDateTime::now_utc(),
        principal: Principal {
            subject: user(name),
            token_id: None,
            scopes: vec![],
        },
        submission: ScoreSubmission {
            hero_id: HeroId::parse("storm").unwrap(),
            score: Score::new(score).unwrap(),
            achieved_at: None,
            client_ref: None,
        },
    }
}

/// A submission whose id the client's `clientRef` derived, as a client retry carries it again.
fn derived_submission_from(name: &str, client_ref: &str, score: u32) -> QueuedSubmission {
    let mut message = submission_from(name, score);
    message.submission_id = SubmissionId::from_client_ref(&user(name), client_ref);
    message.submission.client_ref = Some(ClientRef::parse(client_ref).unwrap());
    message
}

fn sqs_record(message_id: &str, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.body = Some(body.to_owned());
    record
}

fn records(messages: &[QueuedSubmission]) -> Vec<SqsMessage> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| sqs_record(&format!("m{i}"), &encode(m)))
        .collect()
}

struct Fixture {
    directory: Arc<MemoryUserDirectory>,
    store: Arc<MemoryStore>,
    rejections: Arc<MemoryQueue>,
    store_faults: Arc<FaultPlan>,
    directory_faults: Arc<FaultPlan>,
    sink_faults: Arc<FaultPlan>,
    quotas: Arc<MemoryQuotaCounter>,
    quota_faults: Arc<FaultPlan>,
    processor: Processor,
}

fn fixture_with_ttl(ttl: Duration) -> Fixture {
    fixture_with(ttl, None)
}

/// A fixture whose processor lets each user make `limit` submissions per hour.
fn fixture_with_quota(limit: u32) -> Fixture {
    let policy = QuotaPolicy::new(limit, Duration::from_secs(3600)).unwrap();
    fixture_with(Duration::from_secs(60), Some(policy))
}

fn fixture_with(ttl: Duration, quota: Option<QuotaPolicy>) -> Fixture {
    let no_permission = User {
        user_id: user("nobody"),
        status: UserStatus::Active,
        permissions: vec![],
    };
    let directory = Arc::new(MemoryUserDirectory::new([
        User::active(user("alice")),
        User::suspended(user("mallory")),
        no_permission,
    ]));
    let store = Arc::new(MemoryStore::new());
    let rejections = Arc::new(MemoryQueue::new("rejections", QueueSettings::default()));
    let (store_faults, directory_faults, sink_faults) =
        (FaultPlan::new(), FaultPlan::new(), FaultPlan::new());
    let ports = Ports {
        users: Arc::new(Faulty::new(directory.clone(), directory_faults.clone())),
        store: Arc::new(Faulty::new(store.clone(), store_faults.clone())),
        rejections: Arc::new(Faulty::new(rejections.clone(), sink_faults.clone())),
    };
    let quotas = Arc::new(MemoryQuotaCounter::new());
    let quota_faults = FaultPlan::new();
    let mut processor = Processor::new(ports, UserCache::new(ttl)).with_retry(quick_retry());
    if let Some(policy) = quota {
        processor = processor.with_quota(Quota {
            policy,
            counter: Arc::new(Faulty::new(quotas.clone(), quota_faults.clone())),
        });
    }
    Fixture {
        directory,
        store,
        rejections,
        store_faults,
        directory_faults,
        sink_faults,
        quotas,
        quota_faults,
        processor,
    }
}

/// Attempts the fixture's processor makes at an item within one invocation.
const ATTEMPTS: u32 = 3;

fn quick_retry() -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        max_attempts: ATTEMPTS,
    }
}

fn fixture() -> Fixture {
    fixture_with_ttl(Duration::from_secs(60))
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

impl Fixture {
    async fn process(&self, records: &[SqsMessage]) -> BatchSummary {
        self.processor.process(records, deadline()).await
    }

    async fn outcome(&self, message: &QueuedSubmission) -> Option<Outcome> {
        self.outcome_of(&message.principal.subject, message.submission_id)
            .await
    }

    async fn outcome_of(&self, user: &UserId, id: SubmissionId) -> Option<Outcome> {
        let key = SubmissionKey::new(user.clone(), id);
        self.store.get(&key).await.unwrap().map(|r| r.outcome)
    }

    async fn sent_rejections(&self) -> Vec<Rejection> {
        self.rejections
            .receive(100, Duration::ZERO)
            .await
            .iter()
            .map(|m| decode::<Rejection>(Some(&m.body)).unwrap())
            .collect()
    }
}

#[test]
fn decisions_follow_the_directory_entry() {
    assert_eq!(decide(Some(&User::active(user("a")))), Outcome::Accepted);
    assert_eq!(
        decide(None),
        Outcome::Rejected(RejectionReason::UnknownUser)
    );
    assert_eq!(
        decide(Some(&User::suspended(user("a")))),
        Outcome::Rejected(RejectionReason::SuspendedUser)
    );
    let no_permission = User {
        permissions: vec!["profile:read".into()],
        ..User::active(user("a"))
    };
    assert_eq!(
        decide(Some(&no_permission)),
        Outcome::Rejected(RejectionReason::MissingPermission)
    );
    let suspended_without_permission = User {
        permissions: vec![],
        ..User::suspended(user("a"))
    };
    assert_eq!(
        decide(Some(&suspended_without_permission)),
        Outcome::Rejected(RejectionReason::SuspendedUser),
        "suspension is reported before permissions"
    );
}

#[tokio::test]
async fn an_active_users_submission_is_stored_as_accepted_and_not_sent_on() {
    let f = fixture();
    let message = submission_from("alice", 10);
    let summary = f.process(&records(std::slice::from_ref(&message))).await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!(f.outcome(&message).await, Some(Outcome::Accepted));
    assert!(f.sent_rejections().await.is_empty());
}

#[tokio::test]
async fn the_batch_names_the_requests_of_its_accepted_submissions_and_no_others() {
    // GIVEN two accepted submissions, a rejected one between them, and one whose store put
    // keeps failing
    let f = fixture();
    let messages = [
        submission_from("alice", 1),
        submission_from("mallory", 2),
        submission_from("alice", 3),
        submission_from("alice", 4),
    ];
    f.store_faults
        .fail_item(messages[3].submission_id, Times::Always);
    // WHEN the batch is processed
    let summary = f.process(&records(&messages)).await;
    // THEN the batch's summary (its log line) names the accepted ones' requests, in order
    assert_eq!(
        summary.accepted_requests,
        [
            messages[0].correlation_id.clone(),
            messages[2].correlation_id.clone()
        ]
    );
    assert_eq!(summary.accepted, 2);
    assert_eq!(summary.failed_message_ids, ["m3"]);
}

#[tokio::test]
async fn each_rejection_is_stored_with_its_reason_and_sent_once() {
    let f = fixture();
    let messages = [
        submission_from("mallory", 1),
        submission_from("ghost", 2),
        submission_from("nobody", 3),
    ];
    let summary = f.process(&records(&messages)).await;
    assert!(summary.failed_message_ids.is_empty());
    let expected = [
        RejectionReason::SuspendedUser,
        RejectionReason::UnknownUser,
        RejectionReason::MissingPermission,
    ];
    for (message, reason) in messages.iter().zip(expected) {
        assert_eq!(f.outcome(message).await, Some(Outcome::Rejected(reason)));
    }
    let mut sent = f.sent_rejections().await;
    sent.sort_by_key(|r| r.score);
    assert_eq!(sent.iter().map(|r| r.reason).collect::<Vec<_>>(), expected);
    assert_eq!(
        sent[0].correlation_id, messages[0].correlation_id,
        "the correlation id travels on"
    );
    assert_eq!(sent[0].user_id, user("mallory"));
}

#[tokio::test]
async fn a_hundred_records_take_a_hundred_conditional_puts_and_one_lookup_then_none_when_cached() {
    let f = fixture();
    let batch: Vec<_> = (0..100)
        .map(|i| submission_from(if i % 2 == 0 { "alice" } else { "mallory" }, i))
        .collect();
    let summary = f.process(&records(&batch)).await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!((summary.accepted, summary.rejected), (50, 50));
    assert_eq!(f.store.item_writes(), 100, "one conditional put per record");
    assert_eq!(f.store.write_calls(), 0, "no unconditional batch write");
    assert_eq!(f.directory.lookup_calls(), 1);
    assert_eq!(f.store.len(), 100);

    let again: Vec<_> = (0..100).map(|i| submission_from("alice", i)).collect();
    f.process(&records(&again)).await;
    assert_eq!(
        f.directory.lookup_calls(),
        1,
        "warm invocations use the cached entries"
    );
}

#[tokio::test]
async fn an_unreadable_directory_entry_holds_back_only_its_users_records() {
    // GIVEN a batch of 100 where two records belong to a user whose entry cannot be read
    let f = fixture();
    f.directory
        .corrupt(user("bob"), "attribute `status` has an invalid value");
    let mut batch: Vec<_> = (0..98).map(|i| submission_from("alice", i)).collect();
    batch.insert(10, submission_from("bob", 1));
    batch.push(submission_from("bob", 2));
    let sqs = records(&batch);

    // WHEN it is processed
    let summary = f.process(&sqs).await;

    // THEN only bob's two records go back to SQS, named, and the other 98 are stored
    assert_eq!(summary.failed_message_ids, ["m10", "m99"]);
    assert_eq!(summary.unreadable_user, 2);
    assert_eq!(summary.accepted, 98);
    assert_eq!(f.store.len(), 98);
    assert_eq!(f.outcome(&batch[10]).await, None);

    // AND once the entry is fixed, the retried records go through (the bad entry was not cached)
    f.directory.upsert(User::active(user("bob")));
    let retried = [sqs[10].clone(), sqs[99].clone()];
    let summary = f.process(&retried).await;
    assert!(summary.failed_message_ids.is_empty(), "{summary:?}");
    assert_eq!(f.outcome(&batch[99]).await, Some(Outcome::Accepted));
}

#[tokio::test]
async fn a_zero_ttl_looks_users_up_every_time() {
    let f = fixture_with_ttl(Duration::ZERO);
    for _ in 0..2 {
        f.process(&records(&[submission_from("alice", 1)])).await;
    }
    assert_eq!(f.directory.lookup_calls(), 2);
}

#[tokio::test]
async fn a_malformed_body_fails_only_its_own_record() {
    let f = fixture();
    let good = submission_from("alice", 5);
    let batch = vec![
        sqs_record("bad-json", "{not json"),
        sqs_record("good", &encode(&good)),
        sqs_record(
            "bad-version",
            &encode(&good).replacen(r#""v":1"#, r#""v":9"#, 1),
        ),
    ];
    let summary = f.process(&batch).await;
    assert_eq!(summary.failed_message_ids, ["bad-json", "bad-version"]);
    assert_eq!(summary.malformed, 2);
    assert_eq!(f.outcome(&good).await, Some(Outcome::Accepted));
}

#[tokio::test]
async fn unwritten_items_fail_only_their_records() {
    let f = fixture();
    let batch: Vec<_> = (0..30).map(|i| submission_from("mallory", i)).collect();
    f.store_faults
        .fail_item(batch[3].submission_id, Times::Always);
    f.store_faults
        .fail_item(batch[27].submission_id, Times::Always);
    let summary = f.process(&records(&batch)).await;
    assert_eq!(summary.failed_message_ids, ["m3", "m27"]);
    assert_eq!(f.store.len(), 28);
    let sent = f.sent_rejections().await;
    assert_eq!(
        sent.len(),
        28,
        "a rejection is only sent once its record is stored"
    );
    assert!(
        sent.iter()
            .all(|r| r.submission_id != batch[3].submission_id)
    );
}

#[tokio::test]
async fn a_failed_store_call_is_tried_again_within_the_invocation() {
    let f = fixture();
    let batch: Vec<_> = (0..30).map(|i| submission_from("alice", i)).collect();
    f.store_faults
        .fail_next_calls(ATTEMPTS - 1, throttled("dynamodb"));
    let summary = f.process(&records(&batch)).await;
    assert!(summary.failed_message_ids.is_empty(), "{summary:?}");
    assert_eq!(f.store.len(), 30);
}

#[tokio::test]
async fn a_store_that_keeps_failing_fails_exactly_the_unwritten_records() {
    let f = fixture();
    let batch: Vec<_> = (0..30).map(|i| submission_from("alice", i)).collect();
    f.store_faults
        .fail_item(batch[7].submission_id, Times::Always);
    let summary = f.process(&records(&batch)).await;
    assert_eq!(summary.failed_message_ids, ["m7"]);
    assert_eq!(f.store.len(), 29);
}

#[tokio::test]
async fn a_directory_outage_fails_every_parsed_record() {
    let f = fixture();
    f.directory_faults.fail_next_calls(1, throttled("dynamodb"));
    let batch = vec![
        sqs_record("a", &encode(&submission_from("alice", 1))),
        sqs_record("b", &encode(&submission_from("mallory", 1))),
    ];
    let summary = f.process(&batch).await;
    assert_eq!(summary.failed_message_ids, ["a", "b"]);
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn an_unsent_rejection_fails_its_record_and_the_retry_converges() {
    let f = fixture();
    let message = submission_from("mallory", 1);
    f.sink_faults.fail_next_calls(ATTEMPTS, throttled("sqs"));
    let batch = records(std::slice::from_ref(&message));
    assert_eq!(f.process(&batch).await.failed_message_ids, ["m0"]);
    assert!(f.sent_rejections().await.is_empty());
    // SQS delivers the record again: the stored rejection, still unnotified, goes out.
    let again = f.process(&batch).await;
    assert!(again.failed_message_ids.is_empty());
    assert_eq!(again.already_decided, 1);
    assert_eq!(f.sent_rejections().await.len(), 1);
    assert_eq!(f.store.len(), 1);
}

#[tokio::test]
async fn processing_a_record_again_leaves_the_same_stored_state() {
    let f = fixture();
    let batch = records(&[submission_from("alice", 1), submission_from("mallory", 2)]);
    f.process(&batch).await;
    let mut first = f.store.records();
    f.process(&batch).await;
    let mut second = f.store.records();
    first.sort_by_key(|r| r.submission_id);
    second.sort_by_key(|r| r.submission_id);
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_duplicate_in_one_batch_is_written_and_notified_once() {
    let f = fixture();
    let message = submission_from("mallory", 1);
    let batch = vec![
        sqs_record("first", &encode(&message)),
        sqs_record("retry", &encode(&message)),
    ];
    let summary = f.process(&batch).await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!(f.store.len(), 1);
    assert_eq!(f.sent_rejections().await.len(), 1);
}

#[tokio::test]
async fn a_store_that_hangs_past_the_deadline_fails_the_records_instead_of_the_invocation() {
    let f = fixture();
    f.store_faults.slow_down(Duration::from_secs(60));
    let batch = records(&[submission_from("alice", 1), submission_from("mallory", 2)]);
    let deadline = Instant::now() + Duration::from_millis(200);
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        f.processor.process(&batch, deadline),
    )
    .await
    .expect("the processor gives up at its deadline");
    assert_eq!(summary.failed_message_ids, ["m0", "m1"]);
    assert!(
        f.sent_rejections().await.is_empty(),
        "nothing is notified before it is stored"
    );
}

#[tokio::test]
async fn a_directory_that_hangs_past_the_deadline_fails_the_batch() {
    let f = fixture();
    f.directory_faults.slow_down(Duration::from_secs(60));
    let batch = records(&[submission_from("alice", 1)]);
    let deadline = Instant::now() + Duration::from_millis(200);
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        f.processor.process(&batch, deadline),
    )
    .await
    .expect("the processor gives up at its deadline");
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert!(f.store.is_empty());
}

/// `count` submissions by `name`, received one millisecond apart in that order.
fn submissions_in_order(name: &str, count: usize) -> Vec<QueuedSubmission> {
    let start = OffsetDateTime::now_utc();
    (0..count)
        .map(|i| QueuedSubmission {
            received_at: start + Duration::from_millis(i as u64),
            ..submission_from(name, i as u32)
        })
        .collect()
}

#[tokio::test]
async fn submissions_over_the_quota_are_stored_and_sent_as_rate_limited() {
    let f = fixture_with_quota(3);
    let messages = submissions_in_order("alice", 5);
    // Delivered out of order: the earliest received are the ones within the quota.
    let mut shuffled = messages.clone();
    shuffled.reverse();
    let summary = f.process(&records(&shuffled)).await;
    assert_eq!((summary.accepted, summary.rejected), (3, 2));
    assert_eq!(summary.rate_limited, 2);
    assert!(summary.failed_message_ids.is_empty());
    for message in &messages[..3] {
        assert_eq!(f.outcome(message).await, Some(Outcome::Accepted));
    }
    let limited = Outcome::Rejected(RejectionReason::RateLimited);
    for message in &messages[3..] {
        assert_eq!(f.outcome(message).await, Some(limited));
    }
    let mut sent: Vec<SubmissionId> = f
        .sent_rejections()
        .await
        .into_iter()
        .inspect(|r| assert_eq!(r.reason, RejectionReason::RateLimited))
        .map(|r| r.submission_id)
        .collect();
    sent.sort();
    let mut expected: Vec<SubmissionId> = messages[3..].iter().map(|m| m.submission_id).collect();
    expected.sort();
    assert_eq!(sent, expected);
    // One counting call for the user's window.
    assert_eq!(f.quotas.admit_calls(), 1);
}

#[tokio::test]
async fn the_quota_is_per_user_and_refused_users_do_not_use_it() {
    let f = fixture_with_quota(2);
    let mut messages = submissions_in_order("alice", 2);
    messages.extend(submissions_in_order("mallory", 3));
    messages.extend(submissions_in_order("nobody", 3));
    let summary = f.process(&records(&messages)).await;
    assert_eq!(summary.accepted, 2);
    assert_eq!(summary.rate_limited, 0);
    let policy = QuotaPolicy::new(2, Duration::from_secs(3600)).unwrap();
    let mallory = policy.window_of(&user("mallory"), messages[2].received_at);
    assert!(f.quotas.counted(&mallory).is_empty());
    // Alice's quota is spent; the next one is refused.
    let later = submissions_in_order("alice", 1);
    let summary = f.process(&records(&later)).await;
    assert_eq!(summary.rate_limited, 1);
}

#[tokio::test]
async fn a_redelivered_batch_gets_the_same_verdicts() {
    let f = fixture_with_quota(2);
    let messages = submissions_in_order("alice", 4);
    let batch = records(&messages);
    // The first delivery is counted, but the store fails, so SQS delivers everything again.
    for message in &messages {
        f.store_faults
            .fail_item(message.submission_id, Times::Next(ATTEMPTS));
    }
    let first = f.process(&batch).await;
    assert_eq!(first.failed_message_ids.len(), 4);
    assert!(f.store.is_empty());
    let again = f.process(&batch).await;
    assert!(again.failed_message_ids.is_empty());
    assert_eq!((again.accepted, again.rate_limited), (2, 2));
    for message in &messages[..2] {
        assert_eq!(f.outcome(message).await, Some(Outcome::Accepted));
    }
    // A third delivery, one record at a time, changes nothing either.
    for record in &batch {
        f.process(std::slice::from_ref(record)).await;
    }
    let accepted = f
        .store
        .records()
        .iter()
        .filter(|r| r.outcome == Outcome::Accepted)
        .count();
    assert_eq!(accepted, 2);
}

#[tokio::test]
async fn a_quota_outage_fails_the_allowed_records_and_nothing_is_written_for_them() {
    let f = fixture_with_quota(10);
    let alice = submission_from("alice", 1);
    let mallory = submission_from("mallory", 2);
    f.quota_faults.fail_next_calls(1, throttled("dynamodb"));
    let summary = f.process(&records(&[alice.clone(), mallory.clone()])).await;
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert_eq!(f.outcome(&alice).await, None);
    // The suspended user's rejection needs no quota and completes.
    assert_eq!(
        f.outcome(&mallory).await,
        Some(Outcome::Rejected(RejectionReason::SuspendedUser))
    );
    let retry = f.process(&records(std::slice::from_ref(&alice))).await;
    assert!(retry.failed_message_ids.is_empty());
    assert_eq!(f.outcome(&alice).await, Some(Outcome::Accepted));
}

#[tokio::test]
async fn the_batch_summary_becomes_one_metric_per_figure() {
    let f = fixture_with_quota(1);
    let mut messages = submissions_in_order("alice", 3);
    messages.push(submission_from("mallory", 1));
    let mut batch = records(&messages);
    batch.push(sqs_record("poison", "not json"));
    let summary = f.process(&batch).await;
    let metrics: Vec<(&str, f64)> = summary
        .metrics()
        .iter()
        .map(|m| (m.name, m.value))
        .collect();
    assert_eq!(
        metrics,
        [
            ("Records", 5.0),
            ("Submissions", 4.0),
            ("Accepted", 1.0),
            ("Rejected", 3.0),
            ("RateLimited", 2.0),
            ("AlreadyDecided", 0.0),
            ("IdempotencyConflicts", 0.0),
            ("Malformed", 1.0),
            ("UnreadableUserEntries", 0.0),
            ("MarkedFailed", 0.0),
            ("FailedRecords", 1.0),
        ]
    );
}

#[tokio::test]
async fn a_quota_counter_that_hangs_past_the_deadline_fails_its_records() {
    let f = fixture_with_quota(10);
    f.quota_faults.slow_down(Duration::from_secs(60));
    let batch = records(&[submission_from("alice", 1)]);
    let deadline = Instant::now() + Duration::from_millis(200);
    let summary = tokio::time::timeout(
        Duration::from_secs(10),
        f.processor.process(&batch, deadline),
    )
    .await
    .expect("the processor gives up at its deadline");
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn a_stored_verdict_stands_when_a_retry_lands_in_a_later_window() {
    let f = fixture_with_quota(1);
    // Retries come back with the same id only when the client's key derived it.
    let first: Vec<QueuedSubmission> = submissions_in_order("alice", 2)
        .into_iter()
        .enumerate()
        .map(|(i, m)| QueuedSubmission {
            submission_id: SubmissionId::from_client_ref(&user("alice"), &format!("run-{i}")),
            ..m
        })
        .collect();
    let (accepted, limited) = (&first[0], &first[1]);
    let summary = f.process(&records(&first)).await;
    assert_eq!((summary.accepted, summary.rate_limited), (1, 1));

    // An hour later the next window fills up, then the client retries the accepted submission
    // (same id, new receivedAt): it stays accepted instead of being refused there.
    let later = |message: &QueuedSubmission, hours: i64| QueuedSubmission {
        received_at: message.received_at + time::Duration::hours(hours),
        ..message.clone()
    };
    let filler = later(&submissions_in_order("alice", 1)[0], 1);
    f.process(&records(&[filler])).await;
    f.process(&records(&[later(accepted, 1)])).await;
    assert_eq!(f.outcome(accepted).await, Some(Outcome::Accepted));
    // Two hours later the window is empty, and a retry of the refused one stays refused.
    f.process(&records(&[later(limited, 2)])).await;
    assert_eq!(
        f.outcome(limited).await,
        Some(Outcome::Rejected(RejectionReason::RateLimited))
    );
    let policy = QuotaPolicy::new(1, Duration::from_secs(3600)).unwrap();
    let empty_window = policy.window_of(&user("alice"), later(limited, 2).received_at);
    assert!(
        f.quotas.counted(&empty_window).is_empty(),
        "a decided submission takes no place in a later window"
    );
}

#[tokio::test]
async fn a_failed_read_of_earlier_verdicts_fails_only_the_allowed_records() {
    let f = fixture_with_quota(10);
    let alice = derived_submission_from("alice", "run-1", 1);
    let mallory = submission_from("mallory", 2);
    // The first store call of the batch is the read of earlier verdicts (of derived ids).
    f.store_faults.fail_next_calls(1, throttled("dynamodb"));
    let summary = f.process(&records(&[alice.clone(), mallory.clone()])).await;
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert_eq!(f.outcome(&alice).await, None);
    assert_eq!(f.quotas.admit_calls(), 0);
    assert_eq!(
        f.outcome(&mallory).await,
        Some(Outcome::Rejected(RejectionReason::SuspendedUser))
    );
}

#[tokio::test]
async fn only_derived_ids_have_their_earlier_verdicts_read() {
    // GIVEN a batch of fresh ids (no clientRef, no Idempotency-Key) and two derived ones
    let f = fixture_with_quota(10);
    let mut batch = submissions_in_order("alice", 5);
    batch.push(derived_submission_from("alice", "run-1", 7));
    batch.push(derived_submission_from("alice", "run-2", 8));

    // WHEN it is processed, and then delivered again
    let summary = f.process(&records(&batch)).await;
    let reads_first = f.store.consistent_reads();
    let again = f.process(&records(&batch)).await;

    // THEN only the derived ids were read, each time; the fresh ones kept their place in the
    // window the second time without a read, and every verdict stands
    assert_eq!(summary.accepted, 7);
    assert_eq!(reads_first, 2);
    assert_eq!(f.store.consistent_reads(), 4);
    assert_eq!((again.accepted, again.already_decided), (7, 7));
    let policy = QuotaPolicy::new(10, Duration::from_secs(3600)).unwrap();
    let window = policy.window_of(&user("alice"), batch[0].received_at);
    assert_eq!(f.quotas.counted(&window).len(), 7, "no id counted twice");
    for message in &batch {
        assert_eq!(f.outcome(message).await, Some(Outcome::Accepted));
    }
}

#[tokio::test]
async fn a_batch_of_fresh_ids_makes_no_read_of_earlier_verdicts() {
    // GIVEN a store whose first call fails
    let f = fixture_with_quota(10);
    f.store_faults.fail_next_calls(1, throttled("dynamodb"));

    // WHEN a batch of fresh ids is processed
    let summary = f.process(&records(&submissions_in_order("alice", 3))).await;

    // THEN the failed call was a put, tried again, not a read that fails the records
    assert!(summary.failed_message_ids.is_empty(), "{summary:?}");
    assert_eq!(summary.accepted, 3);
    assert_eq!(f.store.consistent_reads(), 0);
}

fn at_receive(mut record: SqsMessage, count: u32) -> SqsMessage {
    record
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), count.to_string());
    record
}

#[tokio::test]
async fn a_stored_verdict_stands_when_the_submission_comes_again_after_a_suspension() {
    // GIVEN alice's submission stored as accepted
    let f = fixture_with_ttl(Duration::ZERO);
    let message = submission_from("alice", 10);
    let batch = records(std::slice::from_ref(&message));
    f.process(&batch).await;

    // WHEN alice is suspended and the same submission arrives again (a redelivery, a retry)
    f.directory.upsert(User::suspended(user("alice")));
    let again = f.process(&batch).await;

    // THEN the first verdict stands and nothing is handed on for notification
    assert!(again.failed_message_ids.is_empty());
    assert_eq!((again.accepted, again.already_decided), (1, 1));
    assert_eq!(f.outcome(&message).await, Some(Outcome::Accepted));
    assert!(f.sent_rejections().await.is_empty());
    assert_eq!(f.store.verdict_changes(), 0);
}

#[tokio::test]
async fn a_reused_id_with_another_score_is_refused_as_an_idempotency_conflict() {
    // GIVEN a stored submission
    let f = fixture();
    let first = submission_from("alice", 10);
    f.process(&records(std::slice::from_ref(&first))).await;

    // WHEN the same id arrives with another score
    let other = QueuedSubmission {
        submission: ScoreSubmission {
            score: Score::new(99).unwrap(),
            ..first.submission.clone()
        },
        ..first.clone()
    };
    let summary = f.process(&records(std::slice::from_ref(&other))).await;

    // THEN the first score stays stored, and the conflict is handed on with the refused score
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!((summary.conflicts, summary.accepted), (1, 0));
    let stored = f.store.get(&first.key()).await.unwrap().unwrap();
    assert_eq!(stored.score.get(), 10);
    let sent = f.sent_rejections().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].reason, RejectionReason::IdempotencyConflict);
    assert_eq!(sent[0].score.get(), 99);
}

#[tokio::test]
async fn a_rejection_already_notified_is_not_handed_on_again() {
    let f = fixture();
    let message = submission_from("mallory", 1);
    let batch = records(std::slice::from_ref(&message));
    f.process(&batch).await;
    let first = f.sent_rejections().await;
    assert_eq!(first.len(), 1);
    // The notifier published it and marked the record.
    f.store
        .mark_notified(&[message.key()], OffsetDateTime::now_utc(), deadline())
        .await
        .unwrap();
    let again = f.process(&batch).await;
    assert!(again.failed_message_ids.is_empty());
    assert_eq!((again.rejected, again.already_decided), (1, 1));
    assert!(f.sent_rejections().await.is_empty());
}

#[tokio::test]
async fn a_handed_on_rejection_is_the_same_on_every_hand_over() {
    let f = fixture();
    let message = submission_from("mallory", 1);
    let batch = records(std::slice::from_ref(&message));
    f.process(&batch).await;
    let first = f.sent_rejections().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    f.process(&batch).await;
    let second = f.sent_rejections().await;
    assert_eq!(first, second, "the stored rejection time, not a new one");
}

#[tokio::test]
async fn a_request_message_fans_out_and_goes_back_once_if_any_submission_failed() {
    // GIVEN one message holding a request of three submissions, one of which cannot be stored
    let f = fixture();
    let template = submission_from("alice", 1);
    let request = QueuedRequest {
        v: REQUEST_MESSAGE_VERSION,
        correlation_id: template.correlation_id.clone(),
        received_at: template.received_at,
        principal: template.principal.clone(),
        submissions: (0..3)
            .map(|i| QueuedItem {
                submission_id: SubmissionId::new_unique(),
                submission: submission_from("alice", i).submission,
            })
            .collect(),
    };
    let ids: Vec<SubmissionId> = request.submission_ids().collect();
    f.store_faults.fail_item(ids[1], Times::Always);

    // WHEN it is processed
    let summary = f.process(&[sqs_record("m0", &encode(&request))]).await;

    // THEN the two others are stored and the record is handed back once
    assert_eq!(summary.submissions, 3);
    assert_eq!(summary.failed_message_ids, ["m0"]);
    assert_eq!(
        f.outcome_of(&request.principal.subject, ids[0]).await,
        Some(Outcome::Accepted)
    );
    assert_eq!(f.outcome_of(&request.principal.subject, ids[1]).await, None);
    assert_eq!(
        f.outcome_of(&request.principal.subject, ids[2]).await,
        Some(Outcome::Accepted)
    );
}

#[tokio::test]
async fn on_the_last_receive_an_unfinished_submission_is_marked_failed_and_a_redrive_decides_it() {
    // GIVEN a processor that knows the redrive limit, and bob's directory entry unreadable
    let f = fixture();
    let f = Fixture {
        processor: Processor::new(
            Ports {
                users: f.directory.clone(),
                store: f.store.clone(),
                rejections: f.rejections.clone(),
            },
            UserCache::new(Duration::ZERO),
        )
        .with_max_receive_count(3),
        ..f
    };
    f.directory
        .corrupt(user("bob"), "attribute `status` has an invalid value");
    let message = submission_from("bob", 5);
    let record = records(std::slice::from_ref(&message)).remove(0);

    // WHEN it fails on an earlier receive, nothing is marked; on the last, it is marked failed
    let early = f.process(&[at_receive(record.clone(), 2)]).await;
    assert_eq!(
        (early.marked_failed, early.failed_message_ids.len()),
        (0, 1)
    );
    assert_eq!(f.outcome(&message).await, None);
    let last = f.process(&[at_receive(record.clone(), 3)]).await;
    assert_eq!((last.marked_failed, last.failed_message_ids.len()), (1, 1));
    assert_eq!(
        f.outcome(&message).await,
        Some(Outcome::Failed(FailureReason::UnreadableUserEntry))
    );

    // AND once the entry is fixed, a redriven delivery replaces the marker with the verdict
    f.directory.upsert(User::active(user("bob")));
    let redriven = f.process(&[at_receive(record, 1)]).await;
    assert!(redriven.failed_message_ids.is_empty());
    assert_eq!(f.outcome(&message).await, Some(Outcome::Accepted));
    assert_eq!(
        f.store.verdict_changes(),
        0,
        "a failed marker is not a verdict"
    );
}

#[tokio::test]
async fn two_payloads_under_one_id_in_one_batch_store_the_first_and_refuse_the_second() {
    let f = fixture();
    let first = submission_from("alice", 10);
    let second = QueuedSubmission {
        submission: ScoreSubmission {
            score: Score::new(11).unwrap(),
            ..first.submission.clone()
        },
        ..first.clone()
    };
    let summary = f.process(&records(&[first.clone(), second])).await;
    assert!(summary.failed_message_ids.is_empty());
    assert_eq!((summary.accepted, summary.conflicts), (1, 1));
    assert_eq!(
        f.store
            .get(&first.key())
            .await
            .unwrap()
            .unwrap()
            .score
            .get(),
        10
    );
    let sent = f.sent_rejections().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].reason, sent[0].score.get()),
        (RejectionReason::IdempotencyConflict, 11)
    );
}
