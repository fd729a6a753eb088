//! The processor: authorizes each queued submission against the users directory, stores every
//! submission as one item carrying its outcome, hands rejections to the rejections queue, and
//! reports back to SQS only the records whose work did not complete.

pub mod cache;
pub mod ranker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::future::join_all;
use shared::ids::{CorrelationId, SubmissionId, UserId};
use shared::lambda::{batch_response, by_deadline};
use shared::limits::QUEUE_SEND_BATCH;
use shared::message::{MESSAGE_VERSION, QueuedSubmission, Rejection, decode_submissions};
use shared::metrics::Metric;
use shared::ports::{
    BatchReport, PortError, QuotaCounter, RejectionSink, SubmissionStore, UserDirectory,
};
use shared::quota::{QuotaPolicy, QuotaWindow};
use shared::record::{FailureReason, Outcome, SubmissionKey, SubmissionRecord};
use shared::rejection::RejectionReason;
use shared::retry::Backoff;
use shared::users::{User, UserStatus};
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{Instrument, info_span};

pub use cache::UserCache;

/// The ports the processor acts through.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserDirectory>,
    pub store: Arc<dyn SubmissionStore>,
    pub rejections: Arc<dyn RejectionSink>,
}

/// The per-user quota: the policy and the counter that enforces it.
#[derive(Clone)]
pub struct Quota {
    pub policy: QuotaPolicy,
    pub counter: Arc<dyn QuotaCounter>,
}

/// Built once per cold start; the user cache lives across warm invocations.
pub struct Processor {
    ports: Ports,
    cache: UserCache,
    quota: Option<Quota>,
    retry: Backoff,
    max_receive_count: Option<u32>,
}

/// The verdict on one submission, from the user's directory entry alone.
pub fn decide(user: Option<&User>) -> Outcome {
    match user {
        None => Outcome::Rejected(RejectionReason::UnknownUser),
        Some(user) if user.status == UserStatus::Suspended => {
            Outcome::Rejected(RejectionReason::SuspendedUser)
        }
        Some(user) if !user.may_submit_scores() => {
            Outcome::Rejected(RejectionReason::MissingPermission)
        }
        Some(_) => Outcome::Accepted,
    }
}

/// The span of one submission's own lines.
fn submission_span(message: &QueuedSubmission) -> tracing::Span {
    info_span!(
        "submission",
        correlation_id = %message.correlation_id,
        submission_id = %message.submission_id,
        user_id = %message.principal.subject,
    )
}

/// The correlation ids of a batch's requests, as one space-separated log field.
struct CorrelationIds<'a>(&'a [CorrelationId]);

impl std::fmt::Display for CorrelationIds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, id) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            f.write_str(id.as_str())?;
        }
        Ok(())
    }
}

/// What became of one batch; `failed_message_ids` go back to SQS for retry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// SQS records (each one request).
    pub records: usize,
    /// Submissions in the records that could be read.
    pub submissions: usize,
    /// Submissions finished as accepted (stored now or before).
    pub accepted: usize,
    /// Submissions finished as rejected (stored now or before, and handed on if not notified).
    pub rejected: usize,
    /// Of the rejected submissions, those over their user's quota.
    pub rate_limited: usize,
    /// Of the finished submissions, those whose verdict was already stored (a redelivery or a
    /// client retry): the stored verdict stood.
    pub already_decided: usize,
    /// Submissions whose id was stored with another payload: refused as `idempotency_conflict`.
    pub conflicts: usize,
    pub malformed: usize,
    /// Submissions held back because their user's directory entry cannot be read.
    pub unreadable_user: usize,
    /// Submissions marked `failed` on their message's last receive.
    pub marked_failed: usize,
    pub failed_message_ids: Vec<String>,
    /// The correlation ids of the requests with a submission finished as accepted, in batch
    /// order: the batch line names them, so each accepted outcome is traceable without a line
    /// of its own.
    pub accepted_requests: Vec<CorrelationId>,
}

impl BatchSummary {
    /// The batch's figures as metrics (see `shared::metrics`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::count("Records", self.records),
            Metric::count("Submissions", self.submissions),
            Metric::count("Accepted", self.accepted),
            Metric::count("Rejected", self.rejected),
            Metric::count("RateLimited", self.rate_limited),
            Metric::count("AlreadyDecided", self.already_decided),
            Metric::count("IdempotencyConflicts", self.conflicts),
            Metric::count("Malformed", self.malformed),
            Metric::count("UnreadableUserEntries", self.unreadable_user),
            Metric::count("MarkedFailed", self.marked_failed),
            Metric::count("FailedRecords", self.failed_message_ids.len()),
        ]
    }

    pub fn into_response(self) -> SqsBatchResponse {
        batch_response(self.failed_message_ids)
    }
}

struct Parsed<'a> {
    message_id: &'a str,
    /// This delivery is the message's last: SQS parks it if it fails now.
    last_receive: bool,
    message: QueuedSubmission,
}

/// The verdicts of a batch as far as they could be decided.
struct Decided {
    /// Per submission (in `parsed` order): the verdict, or why it could not be decided.
    outcomes: Vec<Result<Outcome, FailureReason>>,
    /// Verdicts already stored, read while deciding (the quota reads them): no put needed.
    stored: HashMap<SubmissionId, SubmissionRecord>,
}

impl Processor {
    pub fn new(ports: Ports, cache: UserCache) -> Self {
        Self {
            ports,
            cache,
            quota: None,
            retry: Backoff::default(),
            max_receive_count: None,
        }
    }

    /// Enforces a per-user quota on submissions the users directory allows.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The submissions queue's redrive limit: on a message's last receive, submissions that
    /// cannot be finished are marked `failed` before SQS parks the message.
    pub fn with_max_receive_count(mut self, max_receive_count: u32) -> Self {
        self.max_receive_count = Some(max_receive_count);
        self
    }

    /// How items that failed inside a call are tried again within the invocation.
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// Handles one SQS batch; work still unfinished at `deadline` is reported failed.
    pub async fn process(&self, records: &[SqsMessage], deadline: Instant) -> BatchSummary {
        let mut summary = self.process_submissions(records, deadline).await;
        // A record holds a whole request: it goes back to SQS once if any of its submissions did.
        let mut seen = HashSet::new();
        summary
            .failed_message_ids
            .retain(|id| seen.insert(id.clone()));
        tracing::info!(
            records = summary.records,
            submissions = summary.submissions,
            accepted = summary.accepted,
            rejected = summary.rejected,
            rate_limited = summary.rate_limited,
            already_decided = summary.already_decided,
            conflicts = summary.conflicts,
            malformed = summary.malformed,
            unreadable_user = summary.unreadable_user,
            marked_failed = summary.marked_failed,
            failed = summary.failed_message_ids.len(),
            accepted_requests = %CorrelationIds(&summary.accepted_requests),
            "batch processed"
        );
        summary
    }

    async fn process_submissions(&self, records: &[SqsMessage], deadline: Instant) -> BatchSummary {
        let mut summary = BatchSummary {
            records: records.len(),
            ..BatchSummary::default()
        };
        let parsed = parse_all(records, self.max_receive_count, &mut summary);
        summary.submissions = parsed.len();
        let decided = self.decide_all(&parsed, &mut summary, deadline).await;

        // One new record per distinct id with a verdict and nothing stored yet; a duplicate in
        // the same batch (a redelivery beside its original) shares its first copy's fate.
        let decided_at = OffsetDateTime::now_utc();
        let mut seen: HashSet<SubmissionId> = HashSet::with_capacity(parsed.len());
        let mut new_records: Vec<SubmissionRecord> = Vec::with_capacity(parsed.len());
        for (p, outcome) in parsed.iter().zip(&decided.outcomes) {
            let id = p.message.submission_id;
            if seen.insert(id)
                && let Ok(outcome) = outcome
                && !decided.stored.contains_key(&id)
            {
                new_records.push(SubmissionRecord::new(&p.message, *outcome, decided_at));
            }
        }
        let (stored, unwritten) = self.put_all(&new_records, deadline).await;

        // What each distinct id ended as: the verdict already stored, or its new record.
        let mut finals: HashMap<SubmissionId, (SubmissionRecord, bool)> =
            HashMap::with_capacity(parsed.len());
        finals.extend(
            stored
                .into_iter()
                .chain(decided.stored)
                .map(|(id, record)| (id, (record, true))),
        );
        for record in new_records {
            let id = record.submission_id;
            if !unwritten.contains(&id) && !finals.contains_key(&id) {
                finals.insert(id, (record, false));
            }
        }

        // The outbox: rejections not yet notified are handed on (again, if a crash or a failed
        // send came between the put and the hand-over), and so is each idempotency conflict: a
        // submission whose id holds another payload, stored before or earlier in this batch.
        let mut to_send: Vec<Rejection> = finals
            .values()
            .filter_map(|(record, _)| record.unnotified_rejection())
            .collect();
        let mut conflicted: HashSet<usize> = HashSet::new();
        for (index, p) in parsed.iter().enumerate() {
            if let Some((record, _)) = finals.get(&p.message.submission_id)
                && !record.same_payload(&p.message)
            {
                conflicted.insert(index);
                to_send.push(conflict(&p.message));
            }
        }
        let unsent = self.send_all(to_send, deadline).await;

        let mut give_up: Vec<(&QueuedSubmission, FailureReason)> = Vec::new();
        for (index, (p, outcome)) in parsed.iter().zip(&decided.outcomes).enumerate() {
            let message = &p.message;
            let id = message.submission_id;
            let unfinished = match outcome {
                Err(reason) => Some(*reason),
                Ok(_) if unwritten.contains(&id) => Some(FailureReason::StoreUnavailable),
                Ok(_) if unsent.contains(&id) => None,
                Ok(_) => {
                    let finished = &finals[&id];
                    self.count_finished(
                        &mut summary,
                        message,
                        finished,
                        conflicted.contains(&index),
                    );
                    continue;
                }
            };
            submission_span(message).in_scope(|| {
                tracing::warn!(
                    message_id = p.message_id,
                    last_receive = p.last_receive,
                    "submission not finished; SQS will deliver it again"
                )
            });
            summary.failed_message_ids.push(p.message_id.to_owned());
            if let (Some(reason), true) = (unfinished, p.last_receive) {
                give_up.push((message, reason));
            }
        }
        summary.marked_failed = self.mark_failed(&give_up, deadline).await;
        summary
    }

    /// Counts one finished submission by what it ended as. An accepted one is named by its
    /// request's correlation id on the batch line; the others get a line of their own.
    fn count_finished(
        &self,
        summary: &mut BatchSummary,
        message: &QueuedSubmission,
        (record, existed): &(SubmissionRecord, bool),
        conflicted: bool,
    ) {
        if conflicted {
            summary.conflicts += 1;
            submission_span(message).in_scope(|| {
                tracing::warn!(
                    stored_outcome = ?record.outcome,
                    "another submission is stored under this id; refused as idempotency_conflict"
                )
            });
            return;
        }
        if *existed {
            summary.already_decided += 1;
        }
        match record.outcome {
            Outcome::Accepted => {
                summary.accepted += 1;
                // Consecutive submissions of one request share its correlation id.
                if summary.accepted_requests.last() != Some(&message.correlation_id) {
                    summary
                        .accepted_requests
                        .push(message.correlation_id.clone());
                }
            }
            Outcome::Rejected(reason) => {
                summary.rejected += 1;
                if reason == RejectionReason::RateLimited {
                    summary.rate_limited += 1;
                }
                submission_span(message).in_scope(
                    || tracing::info!(%reason, already_decided = existed, "submission rejected"),
                );
            }
            Outcome::Failed(_) => {}
        }
    }

    /// Looks the batch's users up, decides each submission, and applies the quota. A user
    /// whose directory entry cannot be read holds back only their own submissions.
    async fn decide_all(
        &self,
        parsed: &[Parsed<'_>],
        summary: &mut BatchSummary,
        deadline: Instant,
    ) -> Decided {
        let user_ids: Vec<UserId> = parsed
            .iter()
            .map(|p| p.message.principal.subject.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let lookup = self.cache.resolve(&user_ids, self.ports.users.as_ref());
        let users = match by_deadline(deadline, "users directory", lookup).await {
            Ok(users) => users,
            Err(error) => {
                tracing::warn!(%error, submissions = parsed.len(), "users directory lookup failed; the batch will be retried");
                return Decided {
                    outcomes: vec![Err(FailureReason::DirectoryUnavailable); parsed.len()],
                    stored: HashMap::new(),
                };
            }
        };
        let mut outcomes: Vec<Result<Outcome, FailureReason>> = parsed
            .iter()
            .map(|p| match users.get(&p.message.principal.subject) {
                Some(Some(Err(unreadable))) => {
                    summary.unreadable_user += 1;
                    tracing::error!(
                        message_id = p.message_id,
                        correlation_id = %p.message.correlation_id,
                        submission_id = %p.message.submission_id,
                        error = %unreadable,
                        "the user's directory entry is unreadable; the record will be retried and then moved to the dead-letter queue"
                    );
                    Err(FailureReason::UnreadableUserEntry)
                }
                Some(Some(Ok(user))) => Ok(decide(Some(user))),
                _ => Ok(decide(None)),
            })
            .collect();
        let stored = self.apply_quota(parsed, &mut outcomes, deadline).await;
        Decided { outcomes, stored }
    }

    /// Counts the submissions the directory allowed against their users' quotas, one call per
    /// user and window, and turns those over the limit into `rate_limited` rejections. A
    /// submission already stored keeps its verdict without being counted again (a client retry
    /// can arrive in a later window); those stored records are returned. Submissions that could
    /// not be counted become `Err(QuotaUnavailable)`: their records are retried.
    async fn apply_quota(
        &self,
        parsed: &[Parsed<'_>],
        outcomes: &mut [Result<Outcome, FailureReason>],
        deadline: Instant,
    ) -> HashMap<SubmissionId, SubmissionRecord> {
        let Some(quota) = &self.quota else {
            return HashMap::new();
        };
        let allowed: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, outcome)| **outcome == Ok(Outcome::Accepted))
            .map(|(index, _)| index)
            .collect();
        if allowed.is_empty() {
            return HashMap::new();
        }
        // Only a derived id can come back in a later window (a client retry is a new message).
        // A fresh id comes again only in its own message, counted against the same window,
        // which admits it again without taking another place; its stored verdict is then kept
        // by the conditional put. So only derived ids are read (a consistent read each).
        let derived: Vec<SubmissionKey> = allowed
            .iter()
            .map(|&i| &parsed[i].message)
            .filter(|message| message.submission_id.is_derived())
            .map(QueuedSubmission::key)
            .collect();
        let stored: HashMap<SubmissionId, SubmissionRecord> = match self
            .earlier_verdicts(&derived, deadline)
            .await
        {
            Ok(stored) => stored
                .into_iter()
                .filter(|(_, record)| record.outcome.is_verdict())
                .collect(),
            Err(error) => {
                tracing::warn!(%error, records = derived.len(), "reading earlier verdicts failed; the records will be retried");
                for &i in &allowed {
                    outcomes[i] = Err(FailureReason::StoreUnavailable);
                }
                return HashMap::new();
            }
        };
        let mut windows: HashMap<QuotaWindow, Vec<&QueuedSubmission>> = HashMap::new();
        for &i in &allowed {
            let message = &parsed[i].message;
            if stored.contains_key(&message.submission_id) {
                continue;
            }
            let window = quota
                .policy
                .window_of(&message.principal.subject, message.received_at);
            windows.entry(window).or_default().push(message);
        }
        // Earliest first in each window, so the submissions that made the quota run out are the
        // ones refused.
        let windows: Vec<(QuotaWindow, Vec<SubmissionId>)> = windows
            .into_iter()
            .map(|(window, mut messages)| {
                messages.sort_by_key(|m| (m.received_at, m.submission_id));
                messages.dedup_by_key(|m| m.submission_id);
                (window, messages.iter().map(|m| m.submission_id).collect())
            })
            .collect();
        // All the batch's windows in one port call: an adapter that can count them together
        // (the cache's, one script per hash slot) saves a round trip and a script per user.
        let counting = async { Ok(quota.counter.admit_all(quota.policy.limit, &windows).await) };
        let results = match by_deadline(deadline, "quota counter", counting).await {
            Ok(results) => results,
            Err(error) => windows.iter().map(|_| Err(error.clone())).collect(),
        };
        let mut over_limit = HashSet::new();
        let mut uncounted = HashSet::new();
        for ((window, ids), result) in windows.into_iter().zip(results) {
            match result {
                Ok(admitted) => {
                    over_limit.extend(ids.into_iter().filter(|id| !admitted.contains(id)))
                }
                Err(error) => {
                    tracing::warn!(%error, user_id = %window.user_id, records = ids.len(), "quota count failed; the records will be retried");
                    uncounted.extend(ids);
                }
            }
        }
        for &i in &allowed {
            let id = parsed[i].message.submission_id;
            if uncounted.contains(&id) {
                outcomes[i] = Err(FailureReason::QuotaUnavailable);
            } else if over_limit.contains(&id) {
                outcomes[i] = Ok(Outcome::Rejected(RejectionReason::RateLimited));
            }
        }
        stored
    }

    /// The stored records of `keys` (no call when there are none to read).
    async fn earlier_verdicts(
        &self,
        keys: &[SubmissionKey],
        deadline: Instant,
    ) -> Result<HashMap<SubmissionId, SubmissionRecord>, PortError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        by_deadline(deadline, "store", self.ports.store.get_many(keys, deadline)).await
    }

    /// Stores the new records with conditional puts, trying the items that failed again while
    /// time is left. Returns the verdicts found already stored, and the ids still unwritten.
    async fn put_all(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> (
        HashMap<SubmissionId, SubmissionRecord>,
        HashSet<SubmissionId>,
    ) {
        let mut existing = HashMap::new();
        let mut round = 0;
        // The first round puts them all; later rounds only those that failed (copied then).
        let mut retrying: Option<Vec<SubmissionRecord>> = None;
        loop {
            let pending = retrying.as_deref().unwrap_or(records);
            if pending.is_empty() {
                return (existing, HashSet::new());
            }
            let putting = self.ports.store.put_new(pending, deadline);
            let failed: HashSet<SubmissionId> = match by_deadline(deadline, "store", putting).await
            {
                Ok(report) => {
                    existing.extend(report.existing);
                    report.failed.into_iter().collect()
                }
                Err(error) => {
                    tracing::warn!(%error, records = pending.len(), "store put failed");
                    pending.iter().map(|r| r.submission_id).collect()
                }
            };
            round += 1;
            if failed.is_empty() || !self.retry.pause(round, deadline).await {
                return (existing, failed);
            }
            let again = pending
                .iter()
                .filter(|r| failed.contains(&r.submission_id))
                .cloned()
                .collect();
            retrying = Some(again);
        }
    }

    /// Sends rejections in chunks of 10 (one SendMessageBatch each), all chunks at once, trying
    /// failed entries again while time is left. Returns the ids still unsent.
    async fn send_all(
        &self,
        mut pending: Vec<Rejection>,
        deadline: Instant,
    ) -> HashSet<SubmissionId> {
        let mut round = 0;
        loop {
            if pending.is_empty() {
                return HashSet::new();
            }
            let calls = pending.chunks(QUEUE_SEND_BATCH).map(|chunk| {
                let span = info_span!("send_rejections", count = chunk.len());
                async move {
                    let result = by_deadline(
                        deadline,
                        "rejections queue",
                        self.ports.rejections.send(chunk),
                    )
                    .await;
                    failed_ids(
                        result,
                        chunk.iter().map(|r| &r.submission_id),
                        "rejection send",
                    )
                }
                .instrument(span)
            });
            let failed: HashSet<SubmissionId> =
                join_all(calls).await.into_iter().flatten().collect();
            round += 1;
            if failed.is_empty() || !self.retry.pause(round, deadline).await {
                return failed;
            }
            pending.retain(|r| failed.contains(&r.submission_id));
        }
    }

    /// On a message's last receive, marks the submissions it could not finish `failed` (where no
    /// verdict is stored), so their owners see why; SQS then parks the message. Returns how many
    /// were marked. A marker that cannot be written leaves the submission `pending` while parked.
    async fn mark_failed(
        &self,
        give_up: &[(&QueuedSubmission, FailureReason)],
        deadline: Instant,
    ) -> usize {
        if give_up.is_empty() {
            return 0;
        }
        let now = OffsetDateTime::now_utc();
        let mut seen = HashSet::new();
        let markers: Vec<SubmissionRecord> = give_up
            .iter()
            .filter(|(m, _)| seen.insert(m.submission_id))
            .map(|(m, reason)| SubmissionRecord::new(m, Outcome::Failed(*reason), now))
            .collect();
        let count = markers.len();
        let (existing, unwritten) = self.put_all(&markers, deadline).await;
        for (message, reason) in give_up {
            if unwritten.contains(&message.submission_id) {
                tracing::error!(
                    submission_id = %message.submission_id,
                    correlation_id = %message.correlation_id,
                    %reason,
                    "last receive: the failed marker could not be stored; the submission stays pending while parked"
                );
            } else {
                tracing::error!(
                    submission_id = %message.submission_id,
                    correlation_id = %message.correlation_id,
                    %reason,
                    "last receive: marked failed; SQS parks the message in the dead-letter queue"
                );
            }
        }
        count - unwritten.len() - existing.len()
    }
}

/// The notification of a submission refused because its id is stored with another payload: it
/// names the refused payload, and the time its request was received (the same on every delivery).
fn conflict(message: &QueuedSubmission) -> Rejection {
    Rejection {
        v: MESSAGE_VERSION,
        submission_id: message.submission_id,
        user_id: message.principal.subject.clone(),
        hero_id: message.submission.hero_id.clone(),
        score: message.submission.score,
        reason: RejectionReason::IdempotencyConflict,
        rejected_at: message.received_at,
        correlation_id: message.correlation_id.clone(),
    }
}

/// The ids of a chunk that did not go through: the report's, or all of them when the call failed.
fn failed_ids<'a>(
    result: Result<BatchReport, PortError>,
    chunk: impl Iterator<Item = &'a SubmissionId>,
    what: &str,
) -> Vec<SubmissionId> {
    match result {
        Ok(report) => {
            if !report.failed.is_empty() {
                tracing::warn!(
                    failed = report.failed.len(),
                    "{what} left items undone; they will be retried"
                );
            }
            report.failed
        }
        Err(error) => {
            tracing::warn!(%error, "{what} failed; the chunk will be retried");
            chunk.copied().collect()
        }
    }
}

/// Every submission of every record: a record holds one request, of one or more submissions.
fn parse_all<'a>(
    records: &'a [SqsMessage],
    max_receive_count: Option<u32>,
    summary: &mut BatchSummary,
) -> Vec<Parsed<'a>> {
    let mut parsed = Vec::with_capacity(records.len());
    for record in records {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let received: Option<u32> = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok());
        let last_receive =
            matches!((received, max_receive_count), (Some(n), Some(max)) if n >= max);
        match decode_submissions(record.body.as_deref()) {
            Ok(messages) => parsed.extend(messages.into_iter().map(|message| Parsed {
                message_id,
                last_receive,
                message,
            })),
            Err(error) => {
                summary.malformed += 1;
                tracing::error!(
                    message_id,
                    %error,
                    "malformed message; it will be retried and then moved to the dead-letter queue"
                );
                summary.failed_message_ids.push(message_id.to_owned());
            }
        }
    }
    parsed
}
