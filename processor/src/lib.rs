//! The processor: authorizes each queued submission against the users directory, stores every
//! submission as one item carrying its outcome, hands rejections to the rejections queue, and
//! reports back to SQS only the records whose work did not complete.

pub mod cache;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::future::join_all;
use shared::ids::{SubmissionId, UserId};
use shared::lambda::batch_response;
use shared::limits::{QUEUE_SEND_BATCH, STORE_WRITE_BATCH};
use shared::message::{MESSAGE_VERSION, QueuedSubmission, Rejection, decode};
use shared::metrics::Metric;
use shared::ports::{
    BatchReport, PortError, QuotaCounter, RejectionSink, SubmissionStore, UserDirectory,
};
use shared::quota::{QuotaPolicy, QuotaWindow};
use shared::record::{Outcome, SubmissionRecord};
use shared::rejection::RejectionReason;
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

/// What became of one batch; `failed_message_ids` go back to SQS for retry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    /// Records finished as accepted (stored).
    pub accepted: usize,
    /// Records finished as rejected (stored and handed to the rejections queue).
    pub rejected: usize,
    /// Of the rejected records, those over their user's quota.
    pub rate_limited: usize,
    pub malformed: usize,
    /// Records held back because their user's directory entry cannot be read.
    pub unreadable_user: usize,
    pub failed_message_ids: Vec<String>,
}

impl BatchSummary {
    /// The batch's figures as metrics (see `shared::metrics`).
    pub fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::count("Records", self.records),
            Metric::count("Accepted", self.accepted),
            Metric::count("Rejected", self.rejected),
            Metric::count("RateLimited", self.rate_limited),
            Metric::count("Malformed", self.malformed),
            Metric::count("UnreadableUserEntries", self.unreadable_user),
            Metric::count("FailedRecords", self.failed_message_ids.len()),
        ]
    }

    pub fn into_response(self) -> SqsBatchResponse {
        batch_response(self.failed_message_ids)
    }
}

struct Parsed<'a> {
    message_id: &'a str,
    message: QueuedSubmission,
}

impl Processor {
    pub fn new(ports: Ports, cache: UserCache) -> Self {
        Self {
            ports,
            cache,
            quota: None,
        }
    }

    /// Enforces a per-user quota on submissions the users directory allows.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Handles one SQS batch; work still unfinished at `deadline` is reported failed.
    pub async fn process(&self, records: &[SqsMessage], deadline: Instant) -> BatchSummary {
        let mut summary = BatchSummary {
            records: records.len(),
            ..BatchSummary::default()
        };
        let mut parsed = parse_all(records, &mut summary);

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
                tracing::warn!(%error, records = parsed.len(), "users directory lookup failed; the batch will be retried");
                summary
                    .failed_message_ids
                    .extend(parsed.iter().map(|p| p.message_id.to_owned()));
                return summary;
            }
        };

        // A user whose directory entry cannot be read holds back only their own records: they
        // are retried (and finally parked) while the rest of the batch goes on.
        parsed.retain(|p| match users.get(&p.message.principal.subject) {
            Some(Some(Err(unreadable))) => {
                summary.unreadable_user += 1;
                tracing::error!(
                    message_id = p.message_id,
                    correlation_id = %p.message.correlation_id,
                    submission_id = %p.message.submission_id,
                    error = %unreadable,
                    "the user's directory entry is unreadable; the record will be retried and then moved to the dead-letter queue"
                );
                summary.failed_message_ids.push(p.message_id.to_owned());
                false
            }
            _ => true,
        });
        let rejected_at = OffsetDateTime::now_utc();
        let mut outcomes: Vec<Outcome> = parsed
            .iter()
            .map(|p| {
                let entry = users
                    .get(&p.message.principal.subject)
                    .and_then(Option::as_ref);
                decide(entry.and_then(|e| e.as_ref().ok()))
            })
            .collect();
        let uncounted = self.apply_quota(&parsed, &mut outcomes, deadline).await;
        // A redelivered duplicate in the same batch carries the same id: write and notify it once.
        let mut records_by_id: HashMap<SubmissionId, SubmissionRecord> = HashMap::new();
        let mut rejections: Vec<Rejection> = Vec::new();
        for (p, outcome) in parsed.iter().zip(&outcomes) {
            let message = &p.message;
            if records_by_id.contains_key(&message.submission_id)
                || uncounted.contains(&message.submission_id)
            {
                continue;
            }
            if let Outcome::Rejected(reason) = *outcome {
                rejections.push(rejection(message, reason, rejected_at));
            }
            records_by_id.insert(
                message.submission_id,
                SubmissionRecord::new(message, *outcome),
            );
        }

        let records: Vec<SubmissionRecord> = records_by_id.into_values().collect();
        let unwritten = self.write_all(&records, deadline).await;
        // Only rejections whose record is stored are notified; the rest come back with their record.
        rejections.retain(|r| !unwritten.contains(&r.submission_id));
        let unsent = self.send_all(&rejections, deadline).await;

        for (p, outcome) in parsed.iter().zip(outcomes) {
            let message = &p.message;
            let _span = info_span!(
                "submission",
                correlation_id = %message.correlation_id,
                submission_id = %message.submission_id,
                user_id = %message.principal.subject,
            )
            .entered();
            let id = message.submission_id;
            if uncounted.contains(&id) || unwritten.contains(&id) || unsent.contains(&id) {
                tracing::warn!(
                    message_id = p.message_id,
                    "submission not finished; SQS will deliver it again"
                );
                summary.failed_message_ids.push(p.message_id.to_owned());
                continue;
            }
            match outcome {
                Outcome::Accepted => {
                    summary.accepted += 1;
                    tracing::info!("submission stored as accepted");
                }
                Outcome::Rejected(reason) => {
                    summary.rejected += 1;
                    if reason == RejectionReason::RateLimited {
                        summary.rate_limited += 1;
                    }
                    tracing::info!(%reason, "submission stored as rejected and sent for notification");
                }
            }
        }
        tracing::info!(
            records = summary.records,
            accepted = summary.accepted,
            rejected = summary.rejected,
            rate_limited = summary.rate_limited,
            malformed = summary.malformed,
            unreadable_user = summary.unreadable_user,
            failed = summary.failed_message_ids.len(),
            "batch processed"
        );
        summary
    }

    /// Counts the submissions the directory allowed against their users' quotas, one call per
    /// user and window, and turns those over the limit into `rate_limited` rejections. A
    /// submission already stored as accepted or rate limited keeps that verdict without being
    /// counted again (a client retry can arrive in a later window). Returns the ids that could
    /// not be decided: their records are retried.
    async fn apply_quota(
        &self,
        parsed: &[Parsed<'_>],
        outcomes: &mut [Outcome],
        deadline: Instant,
    ) -> HashSet<SubmissionId> {
        let Some(quota) = &self.quota else {
            return HashSet::new();
        };
        let allowed: Vec<&QueuedSubmission> = parsed
            .iter()
            .zip(outcomes.iter())
            .filter(|(_, outcome)| **outcome == Outcome::Accepted)
            .map(|(p, _)| &p.message)
            .collect();
        if allowed.is_empty() {
            return HashSet::new();
        }
        let ids: Vec<SubmissionId> = allowed.iter().map(|m| m.submission_id).collect();
        let reading = self.ports.store.get_many(&ids, deadline);
        let stored = match by_deadline(deadline, "store", reading).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, records = ids.len(), "reading earlier verdicts failed; the records will be retried");
                return ids.into_iter().collect();
            }
        };
        let mut over_limit = HashSet::new();
        let mut windows: HashMap<QuotaWindow, Vec<&QueuedSubmission>> = HashMap::new();
        for message in allowed {
            match stored.get(&message.submission_id).map(|r| r.outcome) {
                Some(Outcome::Accepted) => continue,
                Some(Outcome::Rejected(RejectionReason::RateLimited)) => {
                    over_limit.insert(message.submission_id);
                    continue;
                }
                // Never stored, or refused by the directory before: count it.
                _ => {}
            }
            let window = quota
                .policy
                .window_of(&message.principal.subject, message.received_at);
            windows.entry(window).or_default().push(message);
        }
        let calls = windows
            .into_iter()
            .map(|(window, mut messages)| async move {
                // Earliest first, so the submissions that made the quota run out are the ones refused.
                messages.sort_by_key(|m| (m.received_at, m.submission_id));
                let ids: Vec<SubmissionId> = messages.iter().map(|m| m.submission_id).collect();
                let counting = quota.counter.admit(&window, quota.policy.limit, &ids);
                let result = by_deadline(deadline, "quota counter", counting).await;
                (window, ids, result)
            });
        let mut uncounted = HashSet::new();
        for (window, ids, result) in join_all(calls).await {
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
        for (p, outcome) in parsed.iter().zip(outcomes.iter_mut()) {
            if over_limit.contains(&p.message.submission_id) {
                *outcome = Outcome::Rejected(RejectionReason::RateLimited);
            }
        }
        uncounted
    }

    /// Writes records in chunks of 25 (one BatchWriteItem each), all chunks at once.
    async fn write_all(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> HashSet<SubmissionId> {
        let calls = records.chunks(STORE_WRITE_BATCH).map(|chunk| async move {
            let result =
                by_deadline(deadline, "store", self.ports.store.write(chunk, deadline)).await;
            failed_ids(
                result,
                chunk.iter().map(|r| &r.submission_id),
                "store write",
            )
        });
        join_all(calls).await.into_iter().flatten().collect()
    }

    /// Sends rejections in chunks of 10 (one SendMessageBatch each), all chunks at once.
    async fn send_all(&self, rejections: &[Rejection], deadline: Instant) -> HashSet<SubmissionId> {
        let calls = rejections.chunks(QUEUE_SEND_BATCH).map(|chunk| {
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
        join_all(calls).await.into_iter().flatten().collect()
    }
}

/// Runs a port call, giving up when the invocation's deadline comes: the records it concerns are
/// then reported failed, instead of Lambda stopping the whole invocation.
async fn by_deadline<T>(
    deadline: Instant,
    service: &'static str,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(PortError::Timeout {
                service,
                detail: "no answer before the invocation's deadline".to_owned(),
            })
        })
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

fn parse_all<'a>(records: &'a [SqsMessage], summary: &mut BatchSummary) -> Vec<Parsed<'a>> {
    let mut parsed = Vec::with_capacity(records.len());
    for record in records {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        match decode::<QueuedSubmission>(record.body.as_deref()) {
            Ok(message) => parsed.push(Parsed {
                message_id,
                message,
            }),
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

fn rejection(
    message: &QueuedSubmission,
    reason: RejectionReason,
    rejected_at: OffsetDateTime,
) -> Rejection {
    Rejection {
        v: MESSAGE_VERSION,
        submission_id: message.submission_id,
        user_id: message.principal.subject.clone(),
        hero_id: message.submission.hero_id.clone(),
        score: message.submission.score,
        reason,
        rejected_at,
        correlation_id: message.correlation_id.clone(),
    }
}
