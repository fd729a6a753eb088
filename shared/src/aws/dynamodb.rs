//! DynamoDB adapters: the submissions table ([`SubmissionStore`], plus a player's submissions for
//! the operator, and its
//! stream read back as changes) and the users table ([`UserDirectory`], plus operator methods). The table design and
//! the pure item mappings are in [`items`]; docs/DYNAMODB.md explains them.

mod items;
mod quotas;
mod stream;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    KeysAndAttributes, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use futures::StreamExt;
use futures::future::join_all;
use tokio::time::Instant;

pub use self::items::{
    Item, ItemError, STATUS_FAILED, attribute, item_to_record, item_to_user, record_to_item,
    submission_key_item, user_to_item,
};
use self::items::{text, user_status_text};
pub use self::quotas::{DynamoQuotaCounter, quota_attribute};
pub use self::stream::stored_change;
use super::{
    RETRY_BUDGET_WITHOUT_DEADLINE, Unfinished, build_error, retry_until_finished, sdk_error,
};
use crate::ids::{SubmissionId, UserId};
use crate::limits::{DIRECTORY_LOOKUP_BATCH, STORE_PUT_CONCURRENCY, STORE_WRITE_BATCH};
use crate::ports::{BatchReport, PortError, PutReport, SubmissionStore, UserDirectory};
use crate::record::{SubmissionKey, SubmissionRecord};
use crate::retry::Backoff;
use crate::users::{DirectoryEntry, UnreadableUser, User, UserStatus};

const SERVICE: &str = "dynamodb";

/// One record per submission id, the last one given winning: BatchWriteItem refuses a request
/// that names the same key twice, and a client retry can put the same id in one batch.
fn last_record_per_id(records: &[SubmissionRecord]) -> Vec<&SubmissionRecord> {
    let mut seen = HashSet::new();
    let mut unique: Vec<&SubmissionRecord> = records
        .iter()
        .rev()
        .filter(|record| seen.insert(record.submission_id))
        .collect();
    unique.reverse();
    unique
}

/// Distinct ids in first-seen order: BatchGetItem refuses duplicate keys.
fn distinct_user_ids(ids: &[UserId]) -> Vec<&UserId> {
    let mut seen = HashSet::new();
    ids.iter().filter(|id| seen.insert(*id)).collect()
}

fn malformed(what: String, error: ItemError) -> PortError {
    PortError::Refused {
        service: SERVICE,
        detail: format!("{what} is malformed: {error}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Submissions table

/// A single write still to do, or done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MarkState {
    Unsent,
    Sent,
}
use MarkState::{Sent, Unsent};

impl Unfinished for MarkState {
    fn is_finished(&self) -> bool {
        *self == Sent
    }
}

/// Put requests not yet processed.
#[derive(Clone, Debug)]
struct PendingWrites(Vec<WriteRequest>);

impl Unfinished for PendingWrites {
    fn is_finished(&self) -> bool {
        self.0.is_empty()
    }
}

fn submission_key(request: &WriteRequest) -> Option<&str> {
    request
        .put_request()?
        .item()
        .get(attribute::SUBMISSION_ID)?
        .as_s()
        .ok()
        .map(String::as_str)
}

#[derive(Clone, Debug)]
pub struct DynamoSubmissionStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
    pub backoff: Backoff,
}

impl DynamoSubmissionStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            backoff: Backoff::default(),
        }
    }

    async fn batch_write(&self, pending: PendingWrites) -> Result<PendingWrites, PortError> {
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.table_name, pending.0)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        let unprocessed = output
            .unprocessed_items()
            .and_then(|tables| tables.get(&self.table_name))
            .cloned()
            .unwrap_or_default();
        Ok(PendingWrites(unprocessed))
    }

    /// Every submission of a user: all pages of the user's partition of the table, in
    /// submission-id order, strongly consistent (a record written a moment ago is in it). A
    /// malformed item fails the whole call: an operator acting on the list must see it.
    pub async fn all_of_user(&self, user_id: &UserId) -> Result<Vec<SubmissionRecord>, PortError> {
        let mut records = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table_name)
                .key_condition_expression("#user = :user")
                .consistent_read(true)
                .expression_attribute_names("#user", attribute::USER_ID)
                .expression_attribute_values(":user", text(user_id.as_str()))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_error(SERVICE, e))?;
            for item in output.items() {
                records
                    .push(item_to_record(item).map_err(|e| {
                        malformed(format!("an item of {user_id}'s submissions"), e)
                    })?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => return Ok(records),
            }
        }
    }
}

/// Where one conditional put stands.
#[derive(Clone, Debug)]
enum PutState {
    Pending,
    Stored,
    /// A verdict was already stored; its item, as the failed condition returned it.
    Existing(Box<Item>),
}

impl Unfinished for PutState {
    fn is_finished(&self) -> bool {
        !matches!(self, PutState::Pending)
    }
}

impl DynamoSubmissionStore {
    /// One record: a PutItem that only writes where no verdict is stored (no item, or a `failed`
    /// marker). A failed condition returns the stored item (ALL_OLD) at no extra read.
    async fn put_one(&self, record: &SubmissionRecord, deadline: Instant) -> PutResult {
        let id = record.submission_id;
        let item = match record_to_item(record) {
            Ok(item) => item,
            Err(error) => {
                tracing::error!(submission_id = %id, %error, "record cannot be stored");
                return PutResult::Failed(id);
            }
        };
        let outcome = retry_until_finished(&self.backoff, deadline, PutState::Pending, |_| {
            self.conditional_put(item.clone())
        })
        .await;
        match outcome.work {
            PutState::Stored => PutResult::Stored,
            PutState::Existing(item) => match item_to_record(&item) {
                Ok(stored) => PutResult::Existing(Box::new(stored)),
                Err(error) => {
                    tracing::error!(submission_id = %id, %error, "the stored item cannot be read; the record will be retried");
                    PutResult::Failed(id)
                }
            },
            PutState::Pending => {
                tracing::warn!(submission_id = %id, error = ?outcome.error, "record not stored after retries");
                PutResult::Failed(id)
            }
        }
    }

    async fn conditional_put(&self, item: Item) -> Result<PutState, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id) OR #status = :failed")
            .expression_attribute_names("#id", attribute::SUBMISSION_ID)
            .expression_attribute_names("#status", attribute::STATUS)
            .expression_attribute_values(":failed", text(STATUS_FAILED))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutState::Stored),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => Ok(
                    PutState::Existing(Box::new(failed.item().cloned().unwrap_or_default())),
                ),
                _ => Err(sdk_error(SERVICE, error)),
            },
        }
    }

    /// One UpdateItem: sets `notifiedAt` where it is not set yet.
    async fn mark_one(&self, key: &SubmissionKey, at: &str) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .set_key(Some(submission_key_item(key)))
            .update_expression("SET #notified = :at")
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#notified)")
            .expression_attribute_names("#id", attribute::SUBMISSION_ID)
            .expression_attribute_names("#notified", attribute::NOTIFIED_AT)
            .expression_attribute_values(":at", text(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already marked (a duplicate delivery), or no record: nothing to mark either way.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(sdk_error(SERVICE, error)),
        }
    }
}

/// What became of one record's conditional put.
enum PutResult {
    Stored,
    Existing(Box<SubmissionRecord>),
    Failed(SubmissionId),
}

#[async_trait]
impl SubmissionStore for DynamoSubmissionStore {
    /// One conditional PutItem per record, [`STORE_PUT_CONCURRENCY`] at a time: conditions
    /// cannot ride in BatchWriteItem, and a transaction would cost two write units per item.
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<PutReport, PortError> {
        // The futures are made first and polled a bounded number at a time.
        let puts: Vec<_> = records
            .iter()
            .map(|record| self.put_one(record, deadline))
            .collect();
        let results: Vec<PutResult> = futures::stream::iter(puts)
            .buffer_unordered(STORE_PUT_CONCURRENCY)
            .collect()
            .await;
        let mut report = PutReport::default();
        for result in results {
            match result {
                PutResult::Stored => {}
                PutResult::Existing(stored) => {
                    report.existing.insert(stored.submission_id, *stored);
                }
                PutResult::Failed(id) => report.failed.push(id),
            }
        }
        Ok(report)
    }

    async fn mark_notified(
        &self,
        keys: &[SubmissionKey],
        at: time::OffsetDateTime,
        deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        let at = items::timestamp_text(attribute::NOTIFIED_AT, at)
            .map_err(|e| malformed("the notification time".to_owned(), e))?;
        let at = at.as_str();
        let marks: Vec<_> = keys
            .iter()
            .map(|key| async move {
                let id = key.submission_id;
                let outcome = retry_until_finished(&self.backoff, deadline, Unsent, |_| async {
                    self.mark_one(key, at).await.map(|()| Sent)
                })
                .await;
                if let Some(error) = &outcome.error
                    && !outcome.work.is_finished()
                {
                    tracing::warn!(submission_id = %id, %error, "the notification mark did not go through");
                }
                (id, outcome.work.is_finished())
            })
            .collect();
        let results: Vec<(SubmissionId, bool)> = futures::stream::iter(marks)
            .buffer_unordered(STORE_PUT_CONCURRENCY)
            .collect()
            .await;
        Ok(BatchReport {
            failed: results
                .into_iter()
                .filter(|(_, marked)| !marked)
                .map(|(id, _)| id)
                .collect(),
        })
    }

    async fn write(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        if records.len() > STORE_WRITE_BATCH {
            return Err(PortError::Refused {
                service: SERVICE,
                detail: format!(
                    "{} records in one write; at most {STORE_WRITE_BATCH}",
                    records.len()
                ),
            });
        }
        let unique = last_record_per_id(records);
        let mut failed = Vec::new();
        let mut requests = Vec::new();
        for record in &unique {
            match record_to_item(record) {
                Ok(item) => {
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| build_error(SERVICE, e))?;
                    requests.push(WriteRequest::builder().put_request(put).build());
                }
                Err(error) => {
                    tracing::error!(submission_id = %record.submission_id, %error, "record cannot be stored");
                    failed.push(record.submission_id);
                }
            }
        }
        if requests.is_empty() {
            return Ok(BatchReport { failed });
        }
        let outcome = retry_until_finished(
            &self.backoff,
            deadline,
            PendingWrites(requests),
            |pending| self.batch_write(pending),
        )
        .await;
        if outcome.work.is_finished() {
            return Ok(BatchReport { failed });
        }
        let unwritten: HashSet<&str> = outcome.work.0.iter().filter_map(submission_key).collect();
        failed.extend(
            unique
                .iter()
                .map(|record| record.submission_id)
                .filter(|id| unwritten.contains(id.to_string().as_str())),
        );
        tracing::warn!(
            table = %self.table_name,
            unwritten = failed.len(),
            of = unique.len(),
            error = ?outcome.error,
            "records were not written after retries"
        );
        match outcome.error {
            // Nothing was written: the caller learns why, not just which.
            Some(error) if failed.len() == unique.len() => Err(error),
            _ => Ok(BatchReport { failed }),
        }
    }

    async fn get(&self, key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError> {
        let id = key.submission_id;
        let output = self
            .client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(submission_key_item(key)))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        output
            .item()
            .map(|item| {
                item_to_record(item)
                    .map_err(|e| malformed(format!("the item of submission {id}"), e))
            })
            .transpose()
    }

    async fn get_many(
        &self,
        keys: &[SubmissionKey],
        deadline: Instant,
    ) -> Result<HashMap<SubmissionId, SubmissionRecord>, PortError> {
        // BatchGetItem refuses duplicate keys.
        let mut seen = HashSet::new();
        let distinct: Vec<&SubmissionKey> = keys.iter().filter(|key| seen.insert(*key)).collect();
        let reads = BatchGet {
            client: &self.client,
            table_name: &self.table_name,
            backoff: &self.backoff,
            // A record written a moment ago must be seen: its verdict stands.
            consistent: true,
        };
        let chunks = distinct.chunks(DIRECTORY_LOOKUP_BATCH).map(|chunk| {
            let keys = chunk.iter().map(|key| submission_key_item(key)).collect();
            reads.all(keys, deadline, "submissions")
        });
        let mut records = HashMap::new();
        for items in join_all(chunks).await {
            for item in items? {
                let record = item_to_record(&item)
                    .map_err(|e| malformed("a submissions-table item".to_owned(), e))?;
                records.insert(record.submission_id, record);
            }
        }
        Ok(records)
    }
}

// ---------------------------------------------------------------------------------------------
// Users table

/// Keys still to read and the items read so far, for one BatchGetItem chunk.
#[derive(Clone, Debug, Default)]
struct LookupRound {
    pending_keys: Vec<Item>,
    found: Vec<Item>,
}

impl Unfinished for LookupRound {
    fn is_finished(&self) -> bool {
        self.pending_keys.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct DynamoUserDirectory {
    pub client: aws_sdk_dynamodb::Client,
    pub table_name: String,
    pub backoff: Backoff,
}

impl DynamoUserDirectory {
    pub fn new(client: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            backoff: Backoff::default(),
        }
    }

    /// Creates or replaces a user.
    pub async fn put_user(&self, user: &User) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(user_to_item(user)))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        Ok(())
    }

    /// Suspends or reactivates an existing user; refused if the user is not in the directory.
    pub async fn set_status(&self, user_id: &UserId, status: UserStatus) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table_name)
            .key(attribute::USER_ID, text(user_id.as_str()))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(#userId)")
            .expression_attribute_names("#status", attribute::STATUS)
            .expression_attribute_names("#userId", attribute::USER_ID)
            .expression_attribute_values(":status", text(user_status_text(status)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(PortError::Refused {
                    service: SERVICE,
                    detail: format!("user {user_id:?} is not in the directory"),
                })
            }
            Err(error) => Err(sdk_error(SERVICE, error)),
        }
    }

    /// Every user in the directory (a paginated Scan: an operator's tool, not a request path).
    pub async fn list_users(&self) -> Result<Vec<User>, PortError> {
        let mut users = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table_name)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_error(SERVICE, e))?;
            for item in output.items() {
                users.push(
                    item_to_user(item)
                        .map_err(|e| malformed("a users-table item".to_owned(), e))?,
                );
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => return Ok(users),
            }
        }
    }

    /// Reads one chunk of at most [`DIRECTORY_LOOKUP_BATCH`] distinct ids.
    async fn lookup_chunk(
        &self,
        ids: &[&UserId],
        deadline: Instant,
    ) -> Result<Vec<(UserId, DirectoryEntry)>, PortError> {
        let keys = ids
            .iter()
            .map(|id| Item::from([(attribute::USER_ID.to_owned(), text(id.as_str()))]))
            .collect();
        let reads = BatchGet {
            client: &self.client,
            table_name: &self.table_name,
            backoff: &self.backoff,
            consistent: false,
        };
        // Reporting a user we could not read as absent would reject their scores as
        // `unknown_user`, so an incomplete lookup fails as a whole.
        let requested: HashMap<&str, &UserId> = ids.iter().map(|id| (id.as_str(), *id)).collect();
        reads
            .all(keys, deadline, "users")
            .await?
            .iter()
            .map(|item| {
                // The key is the one attribute an item surely has in the form asked for; an
                // unreadable rest is that user's problem, not the batch's.
                let key = item.get(attribute::USER_ID).and_then(|v| v.as_s().ok());
                let Some(user_id) = key.and_then(|k| requested.get(k.as_str())) else {
                    return Err(PortError::Refused {
                        service: SERVICE,
                        detail: format!(
                            "the users table answered with a key not asked for: {key:?}"
                        ),
                    });
                };
                let entry = item_to_user(item).map_err(|e| UnreadableUser {
                    user_id: (*user_id).clone(),
                    reason: e.to_string(),
                });
                Ok(((*user_id).clone(), entry))
            })
            .collect()
    }
}

/// BatchGetItem on one table, with unprocessed keys retried until the deadline.
struct BatchGet<'a> {
    client: &'a aws_sdk_dynamodb::Client,
    table_name: &'a str,
    backoff: &'a Backoff,
    consistent: bool,
}

impl BatchGet<'_> {
    /// Reads at most 100 distinct keys; fails as a whole if any stay unread.
    async fn all(
        &self,
        keys: Vec<Item>,
        deadline: Instant,
        what: &str,
    ) -> Result<Vec<Item>, PortError> {
        let total = keys.len();
        let round = LookupRound {
            pending_keys: keys,
            found: Vec::new(),
        };
        let outcome =
            retry_until_finished(self.backoff, deadline, round, |round| self.once(round)).await;
        if outcome.work.is_finished() {
            return Ok(outcome.work.found);
        }
        let unread = outcome.work.pending_keys.len();
        Err(outcome.error.unwrap_or(PortError::Throttled {
            service: SERVICE,
            detail: format!("{unread} of {total} {what} were still unprocessed after retries"),
        }))
    }

    async fn once(&self, round: LookupRound) -> Result<LookupRound, PortError> {
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(round.pending_keys))
            .consistent_read(self.consistent)
            .build()
            .map_err(|e| build_error(SERVICE, e))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(self.table_name, keys)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, e))?;
        let mut found = round.found;
        if let Some(items) = output
            .responses()
            .and_then(|tables| tables.get(self.table_name))
        {
            found.extend(items.iter().cloned());
        }
        let pending_keys = output
            .unprocessed_keys()
            .and_then(|tables| tables.get(self.table_name))
            .map(|unprocessed| unprocessed.keys().to_vec())
            .unwrap_or_default();
        Ok(LookupRound {
            pending_keys,
            found,
        })
    }
}

#[async_trait]
impl UserDirectory for DynamoUserDirectory {
    async fn lookup(&self, ids: &[UserId]) -> Result<HashMap<UserId, DirectoryEntry>, PortError> {
        let deadline = Instant::now() + RETRY_BUDGET_WITHOUT_DEADLINE;
        let distinct = distinct_user_ids(ids);
        let chunks = distinct
            .chunks(DIRECTORY_LOOKUP_BATCH)
            .map(|chunk| self.lookup_chunk(chunk, deadline));
        let mut users = HashMap::new();
        for chunk in join_all(chunks).await {
            users.extend(chunk?);
        }
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CorrelationId;
    use crate::record::Outcome;
    use crate::rejection::RejectionReason;
    use crate::submission::HeroId;
    use crate::submission::{ClientRef, Score};
    use time::macros::datetime;

    fn record(outcome: Outcome) -> SubmissionRecord {
        SubmissionRecord {
            submission_id: SubmissionId::new_unique(),
            user_id: UserId::parse("auth0|alice").unwrap(),
            hero_id: HeroId::parse("storm").unwrap(),
            score: Score::new(4200).unwrap(),
            achieved_at: Some(datetime!(2026-11-22 11:59:00.123 +01:00)),
            client_ref: Some(ClientRef::parse("run-7").unwrap()),
            received_at: datetime!(2026-11-22 12:00:00.5 UTC),
            correlation_id: CorrelationId::parse("req-1").unwrap(),
            outcome,
            decided_at: time::OffsetDateTime::now_utc(),
            notified_at: None,
        }
    }

    #[test]
    fn duplicate_records_in_one_write_keep_the_last_and_the_order() {
        let first = record(Outcome::Accepted);
        let other = record(Outcome::Accepted);
        let mut again = first.clone();
        again.outcome = Outcome::Rejected(RejectionReason::UnknownUser);
        let records = [first, other.clone(), again.clone()];
        let unique = last_record_per_id(&records);
        assert_eq!(unique, [&other, &again]);
    }

    #[test]
    fn duplicate_user_ids_are_looked_up_once() {
        let ids: Vec<UserId> = ["a", "b", "a", "c", "b"]
            .map(|id| UserId::parse(id).unwrap())
            .into();
        let distinct: Vec<&str> = distinct_user_ids(&ids)
            .into_iter()
            .map(UserId::as_str)
            .collect();
        assert_eq!(distinct, ["a", "b", "c"]);
    }

    #[test]
    fn unwritten_put_requests_name_their_submission() {
        let record = record(Outcome::Accepted);
        let put = PutRequest::builder()
            .set_item(Some(record_to_item(&record).unwrap()))
            .build()
            .unwrap();
        let request = WriteRequest::builder().put_request(put).build();
        assert_eq!(
            submission_key(&request),
            Some(record.submission_id.to_string().as_str())
        );
    }
}
