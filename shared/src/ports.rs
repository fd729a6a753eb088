//! The traits the handlers talk through. Each has an AWS adapter (`aws`), an in-memory adapter
//! (`memory`) and, in the tests crate, fault-injecting wrappers.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::board::{BoardChange, BoardPage, BoardRef, RankKey, Standing};
use crate::ids::{SubmissionId, UserId};
use crate::message::{QueuedRequest, Rejection};
use crate::quota::QuotaWindow;
use crate::record::{SubmissionKey, SubmissionRecord};
use crate::users::DirectoryEntry;

/// How a port call failed. Adapters retry transient failures themselves; what reaches a handler
/// has already been retried as far as the deadline allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("{service} throttled the request: {detail}")]
    Throttled {
        service: &'static str,
        detail: String,
    },
    #[error("{service} did not answer in time: {detail}")]
    Timeout {
        service: &'static str,
        detail: String,
    },
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    #[error("{service} refused the request: {detail}")]
    Refused {
        service: &'static str,
        detail: String,
    },
}

impl PortError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, PortError::Refused { .. })
    }
}

/// Per-item result of a batch call: the ids that did not go through (after retries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub failed: Vec<SubmissionId>,
}

impl BatchReport {
    pub fn all_failed<'a>(ids: impl IntoIterator<Item = &'a SubmissionId>) -> Self {
        Self {
            failed: ids.into_iter().copied().collect(),
        }
    }
}

/// Where ingest puts accepted requests. `Ok` means the request's one message is durably
/// enqueued; an error means it was not, or (a timeout after the send landed) cannot be told.
#[async_trait]
pub trait SubmissionQueue: Send + Sync {
    /// Sends one request as one message, retrying transient failures until `deadline`.
    async fn enqueue(&self, request: &QueuedRequest, deadline: Instant) -> Result<(), PortError>;
}

/// What storing new records found: ids neither `existing` nor `failed` were stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Ids that already had a verdict: the stored records, which stand.
    pub existing: HashMap<SubmissionId, SubmissionRecord>,
    /// Ids whose put did not go through (after retries): neither stored nor found.
    pub failed: Vec<SubmissionId>,
}

/// The submissions table: one record per submission, keyed by its player and its id
/// ([`SubmissionKey`]).
#[async_trait]
pub trait SubmissionStore: Send + Sync {
    /// Stores each record whose id has no verdict yet (no item, or only a `failed` marker) and
    /// leaves every stored verdict standing, returning it instead: conditional writes, so the
    /// first verdict wins however deliveries race. Retries transient failures until `deadline`.
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<PutReport, PortError>;

    /// Marks the rejections of `keys` notified at `at` (the outbox), leaving ids already marked
    /// as they are; reports the ids whose mark did not go through.
    async fn mark_notified(
        &self,
        keys: &[SubmissionKey],
        at: time::OffsetDateTime,
        deadline: Instant,
    ) -> Result<BatchReport, PortError>;

    /// Writes up to [`crate::limits::STORE_WRITE_BATCH`] records unconditionally, replacing what
    /// is stored: an operator's revocation and test fixtures, never the pipeline. Retries
    /// unprocessed items until `deadline`; reports the ids still unwritten.
    async fn write(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<BatchReport, PortError>;

    /// Reads one record.
    async fn get(&self, key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError>;

    /// Reads the records that exist among `keys`, strongly consistent, retrying until
    /// `deadline`; fails as a whole rather than leave a record out.
    async fn get_many(
        &self,
        keys: &[SubmissionKey],
        deadline: Instant,
    ) -> Result<HashMap<SubmissionId, SubmissionRecord>, PortError>;
}

/// The rank index: every board's entries in board order (see [`crate::board`]), fed with the
/// changes of the submissions table and read by the leaderboard API. Every operation costs a
/// bounded number of index steps, logarithmic in the board's size, whatever the rank.
#[async_trait]
pub trait RankIndex: Send + Sync {
    /// Applies the changes in order and says of each whether it changed its board. Applying a
    /// change again changes nothing, so a change delivered twice is harmless. An error means
    /// some changes may have been applied and others not: apply them all again.
    async fn apply(&self, changes: &[BoardChange]) -> Result<Vec<bool>, PortError>;

    /// Up to `limit` entries of `board` in rank order, starting after `after` (or at the top),
    /// with where the next page starts if more follow.
    async fn page(
        &self,
        board: &BoardRef,
        after: Option<&RankKey>,
        limit: usize,
    ) -> Result<BoardPage, PortError>;

    /// The player's entry and rank with up to `around` entries above and below; `None` if the
    /// player has no entry on the board.
    async fn standing(
        &self,
        board: &BoardRef,
        user_id: &UserId,
        around: usize,
    ) -> Result<Option<Standing>, PortError>;
}

/// The users directory, read by the processor to authorize submissions.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Looks up every id at once; ids that are not in the directory are absent from the map. An
    /// entry that cannot be read is reported as such for its own id, not as a failed call.
    async fn lookup(&self, ids: &[UserId]) -> Result<HashMap<UserId, DirectoryEntry>, PortError>;
}

/// Where the processor hands rejections for notification (at most 10 a call).
#[async_trait]
pub trait RejectionSink: Send + Sync {
    async fn send(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError>;
}

/// Publishes rejection notifications to subscribers (at most 10 a call).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn publish(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError>;
}

/// Per-user submission counts, one set of admitted ids per user and window (see [`crate::quota`]).
#[async_trait]
pub trait QuotaCounter: Send + Sync {
    /// Counts `ids`, in order, against `window` and returns those within `limit`. Counting is
    /// idempotent: an id admitted before is admitted again without taking another place, and an
    /// id refused once stays refused. Refused ids are not counted.
    async fn admit(
        &self,
        window: &QuotaWindow,
        limit: u32,
        ids: &[SubmissionId],
    ) -> Result<HashSet<SubmissionId>, PortError>;

    /// [`QuotaCounter::admit`] for several windows (a processor batch's users), one answer per
    /// window in order. By default each window is counted on its own, all at once; an adapter
    /// that can count windows together in fewer calls does so.
    async fn admit_all(
        &self,
        limit: u32,
        windows: &[(QuotaWindow, Vec<SubmissionId>)],
    ) -> Vec<Result<HashSet<SubmissionId>, PortError>> {
        futures::future::join_all(
            windows
                .iter()
                .map(|(window, ids)| self.admit(window, limit, ids)),
        )
        .await
    }
}
