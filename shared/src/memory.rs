//! In-memory adapters for every port: the local stack and unit tests run on these.
//!
//! [`MemoryQueue`] behaves like an SQS standard queue where it matters to the pipeline: messages
//! are received in batches, a received message is invisible until deleted or its visibility
//! timeout ends, and a message received more than `max_receive_count` times moves to a
//! dead-letter list instead of being delivered again.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::board::{
    BoardChange, BoardPage, BoardRef, RankKey, RankedEntry, Standing, StoredChange,
};
use crate::ids::{SubmissionId, UserId};
use crate::message::{QueuedRequest, Rejection, encode};
use crate::ports::{
    BatchReport, Notifier, PortError, PutReport, QuotaCounter, RankIndex, RejectionSink,
    SubmissionQueue, SubmissionStore, UserDirectory,
};
use crate::quota::{QuotaWindow, admit_into};
use crate::record::{SubmissionKey, SubmissionRecord};
use crate::users::{DirectoryEntry, UnreadableUser, User};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Redrive and visibility settings of a [`MemoryQueue`].
#[derive(Clone, Copy, Debug)]
pub struct QueueSettings {
    /// How long a received message stays invisible before it can be received again.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the dead-letter list (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        }
    }
}

/// One message as held by the queue and handed to a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    /// How many times it has been received, this delivery included.
    pub receive_count: u32,
    pub sent_at: OffsetDateTime,
}

/// Counts of messages by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: usize,
    pub in_flight: usize,
    pub dead_letters: usize,
}

impl QueueDepth {
    /// Nothing left to deliver (dead letters aside).
    pub fn is_drained(&self) -> bool {
        self.visible == 0 && self.in_flight == 0
    }
}

#[derive(Default)]
struct QueueState {
    next_id: u64,
    visible: VecDeque<QueuedMessage>,
    in_flight: HashMap<String, (QueuedMessage, Instant)>,
    dead_letters: Vec<QueuedMessage>,
}

pub struct MemoryQueue {
    name: String,
    settings: QueueSettings,
    state: Mutex<QueueState>,
    changed: Notify,
}

impl MemoryQueue {
    pub fn new(name: impl Into<String>, settings: QueueSettings) -> Self {
        Self {
            name: name.into(),
            settings,
            state: Mutex::new(QueueState::default()),
            changed: Notify::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> QueueSettings {
        self.settings
    }

    /// Sends one raw message body; returns its message id.
    pub fn push(&self, body: String) -> String {
        let message_id = {
            let mut state = lock(&self.state);
            state.next_id += 1;
            let message_id = format!("{}-{:08}", self.name, state.next_id);
            state.visible.push_back(QueuedMessage {
                message_id: message_id.clone(),
                body,
                receive_count: 0,
                sent_at: OffsetDateTime::now_utc(),
            });
            message_id
        };
        self.changed.notify_waiters();
        message_id
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first one (long polling).
    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<QueuedMessage> {
        let until = Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (batch, next_return) = self.try_receive(max);
            if !batch.is_empty() {
                return batch;
            }
            let now = Instant::now();
            if now >= until {
                return batch;
            }
            let wake = next_return.map_or(until, |t| t.min(until));
            let _ = tokio::time::timeout_at(wake, changed).await;
        }
    }

    fn try_receive(&self, max: usize) -> (Vec<QueuedMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let expired: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, (_, visible_at))| *visible_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((message, _)) = state.in_flight.remove(&id) {
                state.visible.push_back(message);
            }
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(mut message) = state.visible.pop_front() else {
                break;
            };
            if message.receive_count >= self.settings.max_receive_count {
                state.dead_letters.push(message);
                continue;
            }
            message.receive_count += 1;
            let visible_at = now + self.settings.visibility_timeout;
            state
                .in_flight
                .insert(message.message_id.clone(), (message.clone(), visible_at));
            batch.push(message);
        }
        let next_return = state.in_flight.values().map(|(_, at)| *at).min();
        (batch, next_return)
    }

    /// Deletes a received message (the consumer finished it).
    pub fn delete(&self, message_id: &str) {
        lock(&self.state).in_flight.remove(message_id);
        self.changed.notify_waiters();
    }

    /// Makes a received message visible again after `delay` (ChangeMessageVisibility).
    pub fn release(&self, message_id: &str, delay: Duration) {
        if let Some((_, visible_at)) = lock(&self.state).in_flight.get_mut(message_id) {
            *visible_at = Instant::now() + delay;
        }
        self.changed.notify_waiters();
    }

    pub fn depth(&self) -> QueueDepth {
        let state = lock(&self.state);
        QueueDepth {
            visible: state.visible.len(),
            in_flight: state.in_flight.len(),
            dead_letters: state.dead_letters.len(),
        }
    }

    pub fn dead_letters(&self) -> Vec<QueuedMessage> {
        lock(&self.state).dead_letters.clone()
    }

    /// Moves every dead letter back to the queue as a fresh message (receive count 0), as an
    /// SQS redrive (StartMessageMoveTask) does. Returns how many were moved.
    pub fn redrive(&self) -> usize {
        let moved = {
            let mut state = lock(&self.state);
            let dead: Vec<QueuedMessage> = state.dead_letters.drain(..).collect();
            let moved = dead.len();
            for mut message in dead {
                message.receive_count = 0;
                state.visible.push_back(message);
            }
            moved
        };
        self.changed.notify_waiters();
        moved
    }

    /// Waits until the queue's depth changes or `wait` passes.
    pub async fn wait_for_change(&self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.changed.notified()).await;
    }
}

#[async_trait]
impl SubmissionQueue for MemoryQueue {
    async fn enqueue(&self, request: &QueuedRequest, _deadline: Instant) -> Result<(), PortError> {
        self.push(encode(request));
        Ok(())
    }
}

#[async_trait]
impl RejectionSink for MemoryQueue {
    async fn send(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        for rejection in rejections {
            self.push(encode(rejection));
        }
        Ok(BatchReport::default())
    }
}

/// The submissions table in memory.
#[derive(Default)]
pub struct MemoryStore {
    table: RwLock<Table>,
    write_calls: AtomicU64,
    /// Single-item writes (PutItem, UpdateItem), each one DynamoDB request.
    item_writes: AtomicU64,
    /// Keys read by `get_many` (strongly consistent: one read unit each on DynamoDB).
    consistent_reads: AtomicU64,
}

#[derive(Default)]
struct Table {
    /// Keyed as the table is: the player, then the submission id.
    records: HashMap<SubmissionKey, SubmissionRecord>,
    /// Writes that replaced a stored record with one of another outcome.
    verdict_changes: u64,
    /// Where each change goes, as a DynamoDB stream carries it (old and new image).
    subscribers: Vec<tokio::sync::mpsc::UnboundedSender<StoredChange>>,
}

impl Table {
    /// Puts a whole record, as PutItem does, and hands the change to the subscribers.
    fn put(&mut self, record: SubmissionRecord) {
        // The change is only made (a copy of the record) when someone follows the table.
        let change = (!self.subscribers.is_empty()).then(|| record.clone());
        let outcome = record.outcome;
        let old = self.records.insert(record.key(), record);
        if let Some(old) = &old
            && old.outcome.is_verdict()
            && old.outcome != outcome
        {
            self.verdict_changes += 1;
        }
        if let Some(new) = change {
            self.publish(StoredChange {
                old,
                new: Some(new),
            });
        }
    }

    fn publish(&mut self, change: StoredChange) {
        // Sent under the table's lock, so each subscriber sees one item's changes in order.
        self.subscribers
            .retain(|subscriber| subscriber.send(change.clone()).is_ok());
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self) -> Vec<SubmissionRecord> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every change from now on, in the order it was made: the in-memory stand-in for the
    /// table's stream. A dropped receiver unsubscribes.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<StoredChange> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.table
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribers
            .push(sender);
        receiver
    }

    /// How many writes replaced a stored verdict with another outcome (a changed verdict).
    pub fn verdict_changes(&self) -> u64 {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verdict_changes
    }

    /// How many single-item writes (`put_new` and `mark_notified` items, each a PutItem or
    /// UpdateItem on DynamoDB) have been made.
    pub fn item_writes(&self) -> u64 {
        self.item_writes.load(Ordering::Relaxed)
    }

    /// How many keys `get_many` has read (each a strongly consistent read unit on DynamoDB).
    pub fn consistent_reads(&self) -> u64 {
        self.consistent_reads.load(Ordering::Relaxed)
    }

    /// How many `write` calls (each one BatchWriteItem's worth) have been made.
    pub fn write_calls(&self) -> u64 {
        self.write_calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl SubmissionStore for MemoryStore {
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        _deadline: Instant,
    ) -> Result<PutReport, PortError> {
        self.item_writes
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let mut report = PutReport::default();
        for record in records {
            match table.records.get(&record.key()) {
                Some(stored) if stored.outcome.is_verdict() => {
                    report.existing.insert(record.submission_id, stored.clone());
                }
                _ => table.put(record.clone()),
            }
        }
        Ok(report)
    }

    async fn mark_notified(
        &self,
        keys: &[SubmissionKey],
        at: OffsetDateTime,
        _deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        self.item_writes
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if let Some(record) = table.records.get_mut(key)
                && record.notified_at.is_none()
            {
                let old = record.clone();
                record.notified_at = Some(at);
                let change = StoredChange {
                    old: Some(old),
                    new: Some(record.clone()),
                };
                table.publish(change);
            }
        }
        Ok(BatchReport::default())
    }

    async fn write(
        &self,
        records: &[SubmissionRecord],
        _deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        if records.len() > crate::limits::STORE_WRITE_BATCH {
            return Err(PortError::Refused {
                service: "store",
                detail: format!(
                    "{} records in one write; at most {}",
                    records.len(),
                    crate::limits::STORE_WRITE_BATCH
                ),
            });
        }
        self.write_calls.fetch_add(1, Ordering::Relaxed);
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        for record in records {
            table.put(record.clone());
        }
        Ok(BatchReport::default())
    }

    async fn get(&self, key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError> {
        Ok(self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .get(key)
            .cloned())
    }

    async fn get_many(
        &self,
        keys: &[SubmissionKey],
        _deadline: Instant,
    ) -> Result<HashMap<SubmissionId, SubmissionRecord>, PortError> {
        self.consistent_reads
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .filter_map(|key| {
                let record = table.records.get(key)?;
                Some((key.submission_id, record.clone()))
            })
            .collect())
    }
}

/// The rank index in memory: per board, the entries in rank-key order. The reference the Redis
/// adapter is tested against; ranks are counted by walking the order, which is fine for the
/// local stack and tests but linear in the rank (the Redis index is logarithmic).
#[derive(Default)]
pub struct MemoryRankIndex {
    boards: Mutex<HashMap<String, MemoryBoard>>,
}

#[derive(Default)]
struct MemoryBoard {
    order: BTreeSet<RankKey>,
    players: HashMap<UserId, RankKey>,
    /// Per revoked player: no entry received at or before this enters again.
    revoked_through: HashMap<UserId, OffsetDateTime>,
}

impl MemoryBoard {
    fn apply(&mut self, change: &BoardChange) -> bool {
        match change {
            BoardChange::Offer { entry, .. } => {
                if self
                    .revoked_through
                    .get(&entry.user_id)
                    .is_some_and(|through| entry.received_at <= *through)
                {
                    return false;
                }
                let key = entry.rank_key();
                match self.players.get(&entry.user_id) {
                    Some(current) if *current <= key => false,
                    current => {
                        if let Some(current) = current {
                            self.order.remove(current);
                        }
                        self.order.insert(key.clone());
                        self.players.insert(entry.user_id.clone(), key);
                        true
                    }
                }
            }
            BoardChange::Revoke {
                user_id, through, ..
            } => {
                let mut changed = false;
                let kept = self
                    .revoked_through
                    .entry(user_id.clone())
                    .or_insert(*through);
                if *kept < *through {
                    *kept = *through;
                }
                let through = *kept;
                if let Some(current) = self.players.get(user_id)
                    && current.entry().received_at <= through
                {
                    self.order.remove(current);
                    self.players.remove(user_id);
                    changed = true;
                }
                changed
            }
        }
    }

    fn ranked(&self, skip: usize, take: usize) -> Vec<RankedEntry> {
        self.order
            .iter()
            .enumerate()
            .skip(skip)
            .take(take)
            .map(|(place, key)| RankedEntry {
                rank: place as u64 + 1,
                entry: key.entry(),
            })
            .collect()
    }
}

impl MemoryRankIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn boards(&self) -> MutexGuard<'_, HashMap<String, MemoryBoard>> {
        self.boards.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RankIndex for MemoryRankIndex {
    async fn apply(&self, changes: &[BoardChange]) -> Result<Vec<bool>, PortError> {
        let mut boards = self.boards();
        Ok(changes
            .iter()
            .map(|change| {
                boards
                    .entry(change.board().key())
                    .or_default()
                    .apply(change)
            })
            .collect())
    }

    async fn page(
        &self,
        board: &BoardRef,
        after: Option<&RankKey>,
        limit: usize,
    ) -> Result<BoardPage, PortError> {
        let boards = self.boards();
        let (Some(stored), 1..) = (boards.get(&board.key()), limit) else {
            return Ok(BoardPage::default());
        };
        let skip = after.map_or(0, |after| stored.order.range(..=after.clone()).count());
        Ok(BoardPage::from_read(stored.ranked(skip, limit + 1), limit))
    }

    async fn standing(
        &self,
        board: &BoardRef,
        user_id: &UserId,
        around: usize,
    ) -> Result<Option<Standing>, PortError> {
        let boards = self.boards();
        let Some(stored) = boards.get(&board.key()) else {
            return Ok(None);
        };
        let Some(key) = stored.players.get(user_id) else {
            return Ok(None);
        };
        let place = stored.order.range(..key.clone()).count();
        let first = place.saturating_sub(around);
        let entries = stored.ranked(first, place - first + around + 1);
        let player = entries[place - first].clone();
        Ok(Some(Standing { player, entries }))
    }
}

/// The users directory in memory.
#[derive(Default)]
pub struct MemoryUserDirectory {
    users: RwLock<HashMap<UserId, DirectoryEntry>>,
    lookup_calls: AtomicU64,
}

impl MemoryUserDirectory {
    pub fn new(users: impl IntoIterator<Item = User>) -> Self {
        let directory = Self::default();
        for user in users {
            directory.upsert(user);
        }
        directory
    }

    pub fn upsert(&self, user: User) {
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.user_id.clone(), Ok(user));
    }

    /// Replaces a user's entry with one that cannot be read, as a hand-written item would be.
    pub fn corrupt(&self, user_id: UserId, reason: impl Into<String>) {
        let entry = Err(UnreadableUser {
            user_id: user_id.clone(),
            reason: reason.into(),
        });
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user_id, entry);
    }

    pub fn lookup_calls(&self) -> u64 {
        self.lookup_calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl UserDirectory for MemoryUserDirectory {
    async fn lookup(&self, ids: &[UserId]) -> Result<HashMap<UserId, DirectoryEntry>, PortError> {
        self.lookup_calls.fetch_add(1, Ordering::Relaxed);
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        Ok(ids
            .iter()
            .filter_map(|id| users.get(id).map(|u| (id.clone(), u.clone())))
            .collect())
    }
}

/// Per-user quota windows in memory, forgetting each window once it expires.
#[derive(Default)]
pub struct MemoryQuotaCounter {
    windows: Mutex<HashMap<QuotaWindow, HashSet<SubmissionId>>>,
    admit_calls: AtomicU64,
}

impl MemoryQuotaCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids a window has admitted.
    pub fn counted(&self, window: &QuotaWindow) -> HashSet<SubmissionId> {
        lock(&self.windows).get(window).cloned().unwrap_or_default()
    }

    /// How many windows are held.
    pub fn window_count(&self) -> usize {
        lock(&self.windows).len()
    }

    pub fn admit_calls(&self) -> u64 {
        self.admit_calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl QuotaCounter for MemoryQuotaCounter {
    async fn admit(
        &self,
        window: &QuotaWindow,
        limit: u32,
        ids: &[SubmissionId],
    ) -> Result<HashSet<SubmissionId>, PortError> {
        self.admit_calls.fetch_add(1, Ordering::Relaxed);
        let mut windows = lock(&self.windows);
        if !windows.contains_key(window) {
            // Expiry, as DynamoDB's TTL would do it, whenever a window is opened.
            let now = OffsetDateTime::now_utc().unix_timestamp();
            windows.retain(|w, _| w.expires_at() > now);
        }
        let counted = windows.entry(window.clone()).or_default();
        let (admitted, added) = admit_into(counted, limit, ids);
        counted.extend(added);
        Ok(admitted)
    }
}

/// Told about each notification as it is published.
pub type PublishListener = Box<dyn Fn(&Rejection) + Send + Sync>;

/// Records published notifications; optionally tells a listener about each one.
#[derive(Default)]
pub struct MemoryNotifier {
    published: Mutex<Vec<Rejection>>,
    publish_calls: AtomicU64,
    listener: Option<PublishListener>,
}

impl MemoryNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_listener(listener: impl Fn(&Rejection) + Send + Sync + 'static) -> Self {
        Self {
            listener: Some(Box::new(listener)),
            ..Self::default()
        }
    }

    pub fn published(&self) -> Vec<Rejection> {
        lock(&self.published).clone()
    }

    pub fn publish_calls(&self) -> u64 {
        self.publish_calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        self.publish_calls.fetch_add(1, Ordering::Relaxed);
        if let Some(listener) = &self.listener {
            rejections.iter().for_each(listener);
        }
        lock(&self.published).extend_from_slice(rejections);
        Ok(BatchReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

    fn queue(max_receive_count: u32) -> MemoryQueue {
        MemoryQueue::new(
            "q",
            QueueSettings {
                visibility_timeout: Duration::from_millis(20),
                max_receive_count,
            },
        )
    }

    #[tokio::test]
    async fn messages_arrive_in_batches_of_at_most_the_requested_size() {
        let q = queue(3);
        for i in 0..5 {
            q.push(format!("m{i}"));
        }
        let first = q.receive(3, Duration::ZERO).await;
        assert_eq!(
            first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["m0", "m1", "m2"]
        );
        assert_eq!(q.receive(10, Duration::ZERO).await.len(), 2);
        assert_eq!(
            q.depth(),
            QueueDepth {
                visible: 0,
                in_flight: 5,
                dead_letters: 0
            }
        );
    }

    #[tokio::test]
    async fn a_deleted_message_never_comes_back() {
        let q = queue(3);
        q.push("m".into());
        let m = q.receive(1, Duration::ZERO).await.remove(0);
        q.delete(&m.message_id);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(q.receive(1, Duration::ZERO).await.is_empty());
        assert!(q.depth().is_drained());
    }

    #[tokio::test]
    async fn an_undeleted_message_comes_back_after_the_visibility_timeout() {
        let q = queue(3);
        q.push("m".into());
        let first = q.receive(1, Duration::ZERO).await.remove(0);
        assert!(
            q.receive(1, Duration::ZERO).await.is_empty(),
            "invisible while in flight"
        );
        let again = q.receive(1, Duration::from_secs(1)).await.remove(0);
        assert_eq!(again.message_id, first.message_id);
        assert_eq!(again.receive_count, 2);
    }

    #[tokio::test]
    async fn a_message_received_too_often_moves_to_the_dead_letters() {
        let q = queue(2);
        q.push("poison".into());
        for _ in 0..2 {
            let m = q.receive(1, Duration::from_secs(1)).await.remove(0);
            q.release(&m.message_id, Duration::ZERO);
        }
        assert!(q.receive(1, Duration::from_millis(50)).await.is_empty());
        let dead = q.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "poison");
        assert_eq!(dead[0].receive_count, 2);
    }

    #[tokio::test]
    async fn a_long_poll_wakes_up_when_a_message_arrives() {
        let q = std::sync::Arc::new(queue(3));
        let sender = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sender.push("late".into());
        });
        let got = q.receive(10, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1);
    }

    fn stored(hero: &str, score: u32, received_second: u8, outcome: Outcome) -> SubmissionRecord {
        let mut record = crate::record::example_record("alice", hero, score, outcome);
        record.received_at += Duration::from_secs(received_second.into());
        record
    }

    #[tokio::test]
    async fn every_change_reaches_the_subscribers_with_its_old_and_new_image_in_order() {
        let store = MemoryStore::new();
        let mut changes = store.subscribe();
        let rejected = stored(
            "storm",
            5,
            0,
            Outcome::Rejected(crate::rejection::RejectionReason::SuspendedUser),
        );
        let accepted = stored("storm", 50, 1, Outcome::Accepted);
        store
            .put_new(&[rejected.clone(), accepted.clone()], Instant::now())
            .await
            .unwrap();
        // A put that meets a verdict changes nothing, so nothing is published.
        store
            .put_new(std::slice::from_ref(&accepted), Instant::now())
            .await
            .unwrap();
        let at = OffsetDateTime::now_utc();
        store
            .mark_notified(&[rejected.key()], at, Instant::now())
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Ok(change) = changes.try_recv() {
            seen.push(change);
        }
        let notified = SubmissionRecord {
            notified_at: Some(at),
            ..rejected.clone()
        };
        assert_eq!(
            seen,
            [
                StoredChange {
                    old: None,
                    new: Some(rejected.clone())
                },
                StoredChange {
                    old: None,
                    new: Some(accepted)
                },
                StoredChange {
                    old: Some(rejected),
                    new: Some(notified)
                },
            ]
        );
        drop(changes);
        store
            .write(&[stored("storm", 1, 2, Outcome::Accepted)], Instant::now())
            .await
            .unwrap();
        assert!(
            store.table.read().unwrap().subscribers.is_empty(),
            "a dropped receiver unsubscribes"
        );
    }
}
