//! Fault-injecting wrappers for every port, for tests: whole calls that fail (throttling,
//! timeouts, outages) and single items that fail inside a successful batch call (failed batch
//! entries, UnprocessedItems). moto never produces these; the pipeline must survive them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use crate::board::{BoardChange, BoardPage, BoardRef, RankKey, Standing};
use crate::ids::{SubmissionId, UserId};
use crate::message::{QueuedRequest, Rejection};
use crate::ports::{
    BatchReport, Notifier, PortError, PutReport, QuotaCounter, RankIndex, RejectionSink,
    SubmissionQueue, SubmissionStore, UserDirectory,
};
use crate::quota::QuotaWindow;
use crate::record::{SubmissionKey, SubmissionRecord};
use crate::users::DirectoryEntry;

/// How often a planned item fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    Always,
    Next(u32),
}

/// What to break, shared between a test and the wrapper it installed.
#[derive(Default)]
pub struct FaultPlan {
    /// Set once anything is planned, so an idle plan costs one atomic load per call.
    armed: AtomicBool,
    calls_to_fail: AtomicU32,
    call_error: Mutex<Option<PortError>>,
    items: Mutex<HashMap<SubmissionId, Times>>,
    delay: Mutex<Option<std::time::Duration>>,
    random: Mutex<Option<RandomFaults>>,
    injected: AtomicU64,
}

/// Faults drawn at random: each call, and each item of a call, fails with probability `rate`.
struct RandomFaults {
    rate: f64,
    rng: StdRng,
}

impl FaultPlan {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The next `n` calls fail as a whole with `error`.
    pub fn fail_next_calls(&self, n: u32, error: PortError) {
        *self
            .call_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
        self.calls_to_fail.store(n, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Every call fails as a whole with `error` until [`FaultPlan::heal`].
    pub fn fail_all_calls(&self, error: PortError) {
        self.fail_next_calls(u32::MAX, error);
    }

    /// Each call fails as a whole with probability `rate` (throttled, timed out or unavailable,
    /// drawn at random), and each item of a call that goes through fails with probability
    /// `rate` (a failed batch entry or an unprocessed item). Seeded, so a run can be repeated.
    pub fn fail_at_random(&self, rate: f64, seed: u64) {
        *self.random.lock().unwrap_or_else(PoisonError::into_inner) = Some(RandomFaults {
            rate,
            rng: StdRng::seed_from_u64(seed),
        });
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Every call first waits `delay` (a slow or hanging service) until [`FaultPlan::heal`].
    pub fn slow_down(&self, delay: std::time::Duration) {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = Some(delay);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Calls succeed again, at full speed; item faults are forgotten.
    pub fn heal(&self) {
        self.calls_to_fail.store(0, Ordering::SeqCst);
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = None;
        *self.random.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The item with this id fails inside otherwise successful calls.
    pub fn fail_item(&self, id: SubmissionId, times: Times) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, times);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Applies the planned delay, then says whether the whole call fails.
    async fn call_fault(&self) -> Option<PortError> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let delay = *self.delay.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(delay) = delay {
            self.injected.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
        }
        if let Some(error) = self.random_call_fault() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Some(error);
        }
        let taken = self
            .calls_to_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                u32::MAX => Some(u32::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if !taken {
            return None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        self.call_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn random_call_fault(&self) -> Option<PortError> {
        let mut random = self.random.lock().unwrap_or_else(PoisonError::into_inner);
        let random = random.as_mut()?;
        if !random.rng.random_bool(random.rate) {
            return None;
        }
        let detail = "injected at random".to_owned();
        Some(match random.rng.random_range(0..3u8) {
            0 => PortError::Throttled {
                service: "random",
                detail,
            },
            1 => PortError::Timeout {
                service: "random",
                detail,
            },
            _ => PortError::Unavailable {
                service: "random",
                detail,
            },
        })
    }

    fn item_fails(&self, id: &SubmissionId) -> bool {
        if !self.armed.load(Ordering::Relaxed) {
            return false;
        }
        let random_failure = self
            .random
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .is_some_and(|r| r.rng.random_bool(r.rate));
        if random_failure {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let fails = match items.get_mut(id) {
            None => false,
            Some(Times::Always) => true,
            Some(Times::Next(0)) => false,
            Some(Times::Next(n)) => {
                *n -= 1;
                true
            }
        };
        if fails {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fails
    }

    /// Splits a batch into the items to pass on and the ids that fail here.
    fn split<'a, T>(
        &self,
        items: &'a [T],
        id: impl Fn(&T) -> SubmissionId,
    ) -> (Vec<T>, Vec<SubmissionId>)
    where
        T: Clone + 'a,
    {
        let mut pass = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for item in items {
            let item_id = id(item);
            if self.item_fails(&item_id) {
                failed.push(item_id);
            } else {
                pass.push(item.clone());
            }
        }
        (pass, failed)
    }
}

/// A port wrapped with a [`FaultPlan`].
pub struct Faulty<P: ?Sized> {
    inner: Arc<P>,
    plan: Arc<FaultPlan>,
}

impl<P: ?Sized> Faulty<P> {
    pub fn new(inner: Arc<P>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

fn merged(mut report: BatchReport, mut failed_here: Vec<SubmissionId>) -> BatchReport {
    report.failed.append(&mut failed_here);
    report
}

#[async_trait]
impl<P: SubmissionQueue + ?Sized> SubmissionQueue for Faulty<P> {
    async fn enqueue(&self, request: &QueuedRequest, deadline: Instant) -> Result<(), PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        // One request is one message: it fails as a whole, with the item fault of its first
        // submission (one random draw per message).
        if let Some(first) = request.submission_ids().next()
            && self.plan.item_fails(&first)
        {
            return Err(PortError::Unavailable {
                service: "sqs",
                detail: "the message failed (injected)".to_owned(),
            });
        }
        self.inner.enqueue(request, deadline).await
    }
}

#[async_trait]
impl<P: SubmissionStore + ?Sized> SubmissionStore for Faulty<P> {
    async fn put_new(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<PutReport, PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        let (pass, mut failed) = self.plan.split(records, |r| r.submission_id);
        let mut report = self.inner.put_new(&pass, deadline).await?;
        report.failed.append(&mut failed);
        Ok(report)
    }

    async fn mark_notified(
        &self,
        keys: &[SubmissionKey],
        at: time::OffsetDateTime,
        deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        let (pass, failed) = self.plan.split(keys, |key| key.submission_id);
        let report = self.inner.mark_notified(&pass, at, deadline).await?;
        Ok(merged(report, failed))
    }

    async fn write(
        &self,
        records: &[SubmissionRecord],
        deadline: Instant,
    ) -> Result<BatchReport, PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        let (pass, failed) = self.plan.split(records, |r| r.submission_id);
        let report = self.inner.write(&pass, deadline).await?;
        Ok(merged(report, failed))
    }

    async fn get(&self, key: &SubmissionKey) -> Result<Option<SubmissionRecord>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.get(key).await,
        }
    }

    async fn get_many(
        &self,
        keys: &[SubmissionKey],
        deadline: Instant,
    ) -> Result<HashMap<SubmissionId, SubmissionRecord>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.get_many(keys, deadline).await,
        }
    }
}

#[async_trait]
impl<P: UserDirectory + ?Sized> UserDirectory for Faulty<P> {
    async fn lookup(&self, ids: &[UserId]) -> Result<HashMap<UserId, DirectoryEntry>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.lookup(ids).await,
        }
    }
}

/// A failed call of the rank index applies nothing (the Redis adapter's calls are per board, so
/// a real failure may apply some changes; applying them again is what the port promises works).
#[async_trait]
impl<P: RankIndex + ?Sized> RankIndex for Faulty<P> {
    async fn apply(&self, changes: &[BoardChange]) -> Result<Vec<bool>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.apply(changes).await,
        }
    }

    async fn page(
        &self,
        board: &BoardRef,
        after: Option<&RankKey>,
        limit: usize,
    ) -> Result<BoardPage, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.page(board, after, limit).await,
        }
    }

    async fn standing(
        &self,
        board: &BoardRef,
        user_id: &UserId,
        around: usize,
    ) -> Result<Option<Standing>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.standing(board, user_id, around).await,
        }
    }
}

#[async_trait]
impl<P: RejectionSink + ?Sized> RejectionSink for Faulty<P> {
    async fn send(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        let (pass, failed) = self.plan.split(rejections, |r| r.submission_id);
        Ok(merged(self.inner.send(&pass).await?, failed))
    }
}

#[async_trait]
impl<P: Notifier + ?Sized> Notifier for Faulty<P> {
    async fn publish(&self, rejections: &[Rejection]) -> Result<BatchReport, PortError> {
        if let Some(error) = self.plan.call_fault().await {
            return Err(error);
        }
        let (pass, failed) = self.plan.split(rejections, |r| r.submission_id);
        Ok(merged(self.inner.publish(&pass).await?, failed))
    }
}

#[async_trait]
impl<P: QuotaCounter + ?Sized> QuotaCounter for Faulty<P> {
    async fn admit(
        &self,
        window: &QuotaWindow,
        limit: u32,
        ids: &[SubmissionId],
    ) -> Result<HashSet<SubmissionId>, PortError> {
        match self.plan.call_fault().await {
            Some(error) => Err(error),
            None => self.inner.admit(window, limit, ids).await,
        }
    }

    /// One fault for the whole call, as one failed request to the cache would be.
    async fn admit_all(
        &self,
        limit: u32,
        windows: &[(QuotaWindow, Vec<SubmissionId>)],
    ) -> Vec<Result<HashSet<SubmissionId>, PortError>> {
        match self.plan.call_fault().await {
            Some(error) => windows.iter().map(|_| Err(error.clone())).collect(),
            None => self.inner.admit_all(limit, windows).await,
        }
    }
}

/// A throttling error, as DynamoDB, SQS or SNS would send it.
pub fn throttled(service: &'static str) -> PortError {
    PortError::Throttled {
        service,
        detail: "injected throttling".to_owned(),
    }
}
